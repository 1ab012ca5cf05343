// The embedded suite "mini": a small real-data VTAB-1k-format suite that petl builds itself,
// deterministically, with no network: real Fashion-MNIST (Debian's dataset-fashion-mnist) plus
// procedurally rendered structured tasks in the spirit of VTAB's structured group.
// Written by `petl suite --out DIR` in the txt format (train800/val200/train800val200/test),
// with <task>/petl_task.json holding {"num_classes", "description", "suite", "version"}.
// The same renderers, driven by disjoint seeds, produce the upstream data used by
// `petl pretrain` to build the embedded backbone.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "datasets/image.h"

namespace petl::data {

struct MiniTaskSpec {
  std::string name;
  int num_classes;
  std::string description;
};
// The tasks of the mini suite, in table order.
const std::vector<MiniTaskSpec>& mini_suite_tasks();

struct SuiteOptions {
  std::string fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  int test_size = 1000;  // images per test split (>= 1000)
  bool progress = true;
};
// Writes the whole suite under out_dir (created). Deterministic: two builds are byte-identical.
void build_mini_suite(const std::string& out_dir, const SuiteOptions& opts = {});

// One rendered or real sample with every attribute the generator knows (e.g. "class",
// "x_bin", "y_bin", "orientation_bin", "count", "shape", "nearest_distance_bin").
struct SceneSample {
  Image8 image;  // RGB
  std::map<std::string, int> attributes;
};

// Upstream data for pretraining, disjoint from every downstream split: Fashion-MNIST training
// images whose indices the suite never uses, and procedural scenes drawn from seeds the suite
// never uses. `index` selects the sample deterministically.
SceneSample upstream_sample(const std::string& generator, uint64_t index, const SuiteOptions& opts = {});
// Names accepted by upstream_sample ("fashion", "sprites", "objects").
const std::vector<std::string>& upstream_generators();

// The attributes an upstream generator labels, in a fixed order, with their class counts, so a
// pretraining loop can build one classification head per attribute. Every SceneSample of that
// generator carries exactly these keys, each value in [0, num_classes).
//   fashion: class (10)
//   sprites: shape (6), x_bin (8), y_bin (8), orientation_bin (8), scale_bin (4)
//   objects: count (10: objects - 1), nearest_distance_bin (6), largest_colour (8),
//            largest_shape (3)
struct UpstreamAttribute {
  std::string name;
  int num_classes;
};
const std::vector<UpstreamAttribute>& upstream_attributes(const std::string& generator);
std::vector<std::string> attribute_names(const std::string& generator);
int attribute_num_classes(const std::string& generator, const std::string& attribute);

// Fashion-MNIST indices behind the suite's fashion_mnist lists, in list order: "train800" and
// "val200" index the 60k training file, "test" the 10k test file (the first test_size entries of
// its own fixed permutation). Depends on no file.
std::vector<int> mini_fashion_indices(const std::string& split, int test_size = 1000);
// Distinct upstream "fashion" images: the training images the suite never uses. Larger upstream
// indices wrap around.
constexpr int kUpstreamFashionDistinct = 59000;
// Training-file index behind upstream_sample("fashion", index); never a train800/val200 index.
int upstream_fashion_index(uint64_t index);

}  // namespace petl::data

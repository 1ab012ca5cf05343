// The embedded suite "mini" (see suite_mini.h): the suite writer and its public API. It writes
// real Fashion-MNIST read from Debian's gzip idx files plus four procedurally rendered structured
// tasks in the spirit of VTAB's dsprites_loc, dsprites_ori, clevr_count and clevr_dist, in the
// VTAB-1k "txt" format (docs/spec/vtab1k.md).
//
// Where each part lives (all in datasets/):
//   suite_random.h/.cpp    deterministic randomness: Rng, key streams, shuffles, balanced labels
//   suite_raster.h/.cpp    fixed-point maths (sine table, isqrt) and the supersampled Canvas
//   suite_sprites.h/.cpp   dSprites-like sprites (sprites_loc, sprites_ori)
//   suite_scenes.h/.cpp    CLEVR-like object scenes (objects_count, objects_dist)
//   fashion_mnist.h/.cpp   Fashion-MNIST gzip idx reader and fixed permutations
//   suite_mini.cpp         this file: the suite writer, mini_suite_tasks, mini_fashion_indices
//   suite_upstream.cpp     upstream (pretraining) data: upstream_sample and its attributes
//
// Determinism, on any machine and compiler:
//  - every random draw comes from our own xoshiro256**, seeded through splitmix64 from a
//    structured 64-bit key (stream << 48 | index); bounded integers use bitmask rejection (no
//    modulo bias, no std:: distributions, no std::shuffle);
//  - rendering is integer fixed-point arithmetic only (a sine table built from an integer Taylor
//    series, integer square roots), so no libm or FMA contraction can change a pixel;
//  - each image owns its generator, so images are rendered in parallel in any order.
// The PNG bytes are then identical for a given stb_image_write version.
//
// Disjointness from upstream (pretraining) data: the suite's Fashion-MNIST train/val images are
// positions [0, 1000) of a fixed permutation of the training file and upstream "fashion" uses
// positions [1000, 60000); downstream and upstream scenes draw from different key streams.
#include "datasets/suite_mini.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/progress.h"
#include "datasets/fashion_mnist.h"
#include "datasets/suite_random.h"
#include "datasets/suite_scenes.h"
#include "datasets/suite_sprites.h"

namespace petl::data {
namespace fs = std::filesystem;
using namespace suite;
namespace {

constexpr int kSuiteVersion = 1;

struct SplitSpec {
  const char* name;
  int size;
};

enum TaskId { kFashionTask = 0, kSpritesLoc, kSpritesOri, kObjectsCount, kObjectsDist };

Image8 render_task_image(int task, int label, Rng& rng) {
  switch (task) {
    case kSpritesLoc:
      return render_sprites_loc(label, rng);
    case kSpritesOri:
      return render_sprites_ori(label, rng);
    case kObjectsCount:
      return render_objects_count(label, rng);
    case kObjectsDist:
      return render_objects_dist(label, rng);
  }
  assert(false && "render_task_image: not a rendered task");
  return {};
}

// Runs fn(i) for i in [0, n) on all cores; the first exception is rethrown after the join.
template <typename Fn>
void parallel_for(int64_t n, Fn&& fn) {
  const int threads = int(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1, 16));
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;
  auto worker = [&] {
    for (;;) {
      if (failed) return;
      const int64_t i = next++;
      if (i >= n) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

void write_text_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  PETL_CHECK(out.good(), "build_mini_suite: cannot write ", path.string());
  out << text;
  out.close();
  PETL_CHECK(!out.fail(), "build_mini_suite: cannot write ", path.string());
}

std::string image_rel_path(const std::string& split, int index) {
  char name[32];
  std::snprintf(name, sizeof(name), "%06d.png", index);
  return "images/" + split + "/" + name;
}

// Per task and split, the list files train800/val200/test.txt, train800val200.txt and
// petl_task.json. Written last: a build that failed half-way has no lists.
void write_task_lists(const fs::path& out_dir, const std::vector<MiniTaskSpec>& tasks, const SplitSpec (&splits)[3],
                      const std::vector<std::vector<std::vector<int>>>& labels) {
  for (int t = 0; t < int(tasks.size()); ++t) {
    const fs::path task_dir = out_dir / tasks[t].name;
    std::string lines[3];
    for (int s = 0; s < 3; ++s) {
      std::ostringstream os;
      for (int i = 0; i < splits[s].size; ++i)
        os << image_rel_path(splits[s].name, i) << ' ' << labels[t][s][i] << '\n';
      lines[s] = os.str();
      write_text_file(task_dir / (std::string(splits[s].name) + ".txt"), lines[s]);
    }
    write_text_file(task_dir / "train800val200.txt", lines[0] + lines[1]);
    nlohmann::ordered_json meta;
    meta["num_classes"] = tasks[t].num_classes;
    meta["description"] = tasks[t].description;
    meta["suite"] = "mini";
    meta["version"] = kSuiteVersion;
    write_text_file(task_dir / "petl_task.json", meta.dump(2) + "\n");
  }
}

std::string suite_readme(const SuiteOptions& opts) {
  std::ostringstream md;
  md << "# petl embedded suite \"mini\" (version " << kSuiteVersion << ")\n\n"
     << "Written by `petl suite --out DIR`, deterministically (byte-identical on every machine for\n"
     << "a given stb_image_write), in the VTAB-1k \"txt\" format: per task\n"
     << "`train800.txt` (800), `val200.txt` (200), `train800val200.txt` (their 1000 lines, train800\n"
     << "first) and `test.txt` (" << opts.test_size << "), each line `images/<split>/NNNNNN.png <label>`,\n"
     << "plus `petl_task.json` {num_classes, description, suite, version}.\n\n"
     << "| task | classes | images | label |\n|---|---|---|---|\n"
     << "| fashion_mnist | 10 | 28x28 grey PNG | clothing class (real Fashion-MNIST) |\n"
     << "| sprites_loc | 8 | 64x64 RGB PNG | x-position bin of a white sprite's centre |\n"
     << "| sprites_ori | 8 | 64x64 RGB PNG | orientation bin (45 deg) of an asymmetric sprite |\n"
     << "| objects_count | 8 | 64x64 RGB PNG | number of objects - 3 (3..10 objects) |\n"
     << "| objects_dist | 6 | 64x64 RGB PNG | depth bin of the nearest object (0 = nearest) |\n\n"
     << "## How the tasks were made\n\n"
     << "- **fashion_mnist**: Debian's dataset-fashion-mnist (`" << opts.fashion_mnist_dir << "`).\n"
     << "  train800/val200 are positions 0..799 / 800..999 of a fixed permutation of the 60,000\n"
     << "  training images; test is the first " << opts.test_size << " of a fixed permutation of the\n"
     << "  10,000 test images. Pixels are copied unchanged (28x28 greyscale PNG).\n"
     << "- **sprites_loc**: one white square, ellipse or heart on black, bounding radius 6..11 px,\n"
     << "  any orientation; the centre's x in [13, 51] px is split into 8 equal bins and drawn from\n"
     << "  the central 70% of the label's bin; y is uniform in [13, 51] px.\n"
     << "- **sprites_ori**: one white arrow, L or T (no rotational symmetry), bounding radius\n"
     << "  9..12 px, centre uniform in [13, 51]^2 px; bin k covers 45k deg +- 22.5 deg\n"
     << "  (counter-clockwise, 0 = pointing right) and angles are drawn within +-15 deg of 45k.\n"
     << "- **objects_count**: 3..10 spheres (radially shaded discs with a highlight), cubes (three\n"
     << "  shaded faces) and cylinders in CLEVR's 8 colours, two sizes, matte or shiny, on a grey\n"
     << "  floor with a mild gradient and contact shadows. A pinhole camera at height 1: a floor\n"
     << "  point at depth z is on row -16 + 76/z and sizes shrink as 1/z. Contact rows uniform in\n"
     << "  [12, 52] px; layouts are rejection-sampled so objects do not occlude each other.\n"
     << "- **objects_dist**: 2..5 such objects; the label is the bin of the nearest object's floor\n"
     << "  contact row: 6 equal bins from row 60 (depth 1.0, bin 0) to row 15 (depth 2.45), i.e.\n"
     << "  equal steps of inverse depth; the nearest object's row is drawn from the central 70% of\n"
     << "  its bin and every other object lies at least 2 rows farther.\n\n"
     << "Labels of the rendered tasks are balanced by construction (i mod C, shuffled). Rendering\n"
     << "is integer fixed-point with 4x4 supersampling (box filter); randomness is xoshiro256**\n"
     << "seeded by splitmix64 from per-image keys (stream << 48 | index), bounded integers by\n"
     << "bitmask rejection.\n\n"
     << "## Upstream data (pretraining the embedded backbone)\n\n"
     << "`upstream_sample(generator, index)` never yields a suite image: \"fashion\" uses training\n"
     << "positions 1000..59999 of the same permutation, \"sprites\" and \"objects\" are rendered\n"
     << "from key streams the suite never uses (all six sprite shapes, any position, scale and\n"
     << "orientation; 1..10 objects at any depth).\n";
  return md.str();
}

}  // namespace

// ================================================================== public API

const std::vector<MiniTaskSpec>& mini_suite_tasks() {
  static const std::vector<MiniTaskSpec> tasks = {
      {"fashion_mnist", 10,
       "Fashion-MNIST clothing classes (real 28x28 greyscale images, Debian dataset-fashion-mnist)"},
      {"sprites_loc", 8, "dSprites-like: x-position bin (8 bins) of one white square/ellipse/heart on black"},
      {"sprites_ori", 8, "dSprites-like: orientation bin (8 bins of 45 degrees) of one white arrow/L/T on black"},
      {"objects_count", 8,
       "CLEVR-like: number of shaded spheres/cubes/cylinders on a grey floor, 3..10 (label = count - 3)"},
      {"objects_dist", 6,
       "CLEVR-like: depth bin (6 bins, 0 = nearest) of the nearest of 2..5 objects in a perspective scene"},
  };
  return tasks;
}

std::vector<int> mini_fashion_indices(const std::string& split, int test_size) {
  const auto& train = fashion_train_permutation();
  if (split == "train800") return {train.begin(), train.begin() + 800};
  if (split == "val200") return {train.begin() + 800, train.begin() + kFashionSuiteUsed};
  if (split == "test") {
    PETL_CHECK(test_size >= 1 && test_size <= kFashionTest, "mini_fashion_indices: test_size ", test_size,
               " is outside [1, ", kFashionTest, "]");
    const auto& test = fashion_test_permutation();
    return {test.begin(), test.begin() + test_size};
  }
  PETL_FAIL("mini_fashion_indices: unknown split '", split, "' (expected train800, val200 or test)");
}

void build_mini_suite(const std::string& out_dir, const SuiteOptions& opts) {
  PETL_CHECK(opts.test_size >= 1000 && opts.test_size <= kFashionTest, "build_mini_suite: test_size must be in [1000, ",
             kFashionTest, "], got ", opts.test_size);
  PETL_CHECK(!out_dir.empty(), "build_mini_suite: empty output directory");
  const auto fashion = load_fashion(opts.fashion_mnist_dir);
  const auto& tasks = mini_suite_tasks();
  const SplitSpec splits[3] = {{"train800", 800}, {"val200", 200}, {"test", opts.test_size}};

  // Labels first (they drive the renderers), then one job per image.
  struct Job {
    int task, split, index;
  };
  std::vector<std::vector<std::vector<int>>> labels(tasks.size(), std::vector<std::vector<int>>(3));
  std::vector<std::vector<int>> fashion_source(3);  // fashion_mnist: source index per image
  std::vector<Job> jobs;
  for (int t = 0; t < int(tasks.size()); ++t) {
    for (int s = 0; s < 3; ++s) {
      auto& l = labels[t][s];
      if (t == kFashionTask) {
        const std::vector<int> idx = mini_fashion_indices(splits[s].name, opts.test_size);
        const FashionSet& set = s == 2 ? fashion->test : fashion->train;
        for (int i : idx) l.push_back(set.labels[i]);
        fashion_source[s] = idx;
      } else {
        l = balanced_labels(splits[s].size, tasks[t].num_classes, stream_key(label_stream(t, s), 0));
      }
      std::error_code ec;
      const fs::path dir = fs::path(out_dir) / tasks[t].name / "images" / splits[s].name;
      fs::create_directories(dir, ec);
      PETL_CHECK(!ec, "build_mini_suite: cannot create ", dir.string(), ": ", ec.message());
      for (int i = 0; i < splits[s].size; ++i) jobs.push_back({t, s, i});
    }
  }

  ProgressBar bar("suite mini", int64_t(jobs.size()), opts.progress);
  parallel_for(int64_t(jobs.size()), [&](int64_t j) {
    const Job& job = jobs[size_t(j)];
    Image8 img;
    if (job.task == kFashionTask) {
      const FashionSet& set = job.split == 2 ? fashion->test : fashion->train;
      img = fashion_image(set, fashion_source[job.split][job.index], 1);
    } else {
      Rng rng(stream_key(image_stream(job.task, job.split), uint64_t(job.index)));
      img = render_task_image(job.task, labels[job.task][job.split][job.index], rng);
    }
    const fs::path path = fs::path(out_dir) / tasks[job.task].name / image_rel_path(splits[job.split].name, job.index);
    write_png(path.string(), img);
    bar.add();
  });
  bar.finish();

  write_task_lists(fs::path(out_dir), tasks, splits, labels);
  write_text_file(fs::path(out_dir) / "SUITE.md", suite_readme(opts));
}

}  // namespace petl::data

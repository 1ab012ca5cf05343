// Upstream (pretraining) data of the embedded suite (see suite_mini.h): Fashion-MNIST training
// images the suite never uses, and sprites and object scenes drawn from key streams it never uses.
#include <cassert>

#include "core/error.h"
#include "datasets/fashion_mnist.h"
#include "datasets/suite_mini.h"
#include "datasets/suite_random.h"
#include "datasets/suite_scenes.h"
#include "datasets/suite_sprites.h"

namespace petl::data {
using namespace suite;
namespace {

SceneSample upstream_fashion(uint64_t index, const SuiteOptions& opts) {
  SceneSample out;
  const auto fashion = load_fashion(opts.fashion_mnist_dir);
  const int i = upstream_fashion_index(index);
  out.image = fashion_image(fashion->train, i, 3);
  out.attributes["class"] = fashion->train.labels[i];
  return out;
}

// Every attribute drawn as a uniform bin first, then a value inside the bin.
SceneSample upstream_sprites(uint64_t index) {
  SceneSample out;
  Rng rng(stream_key(kStreamUpstreamSprites, index));
  Sprite s;
  s.shape = rng.pick(kNumSpriteShapes);
  const int xb = rng.pick(kPosBins), yb = rng.pick(kPosBins), ob = rng.pick(kOriBins), sb = rng.pick(kScaleBins);
  s.cx = rng.uniform(pos_bin_lo(xb), pos_bin_lo(xb + 1) - 1);
  s.cy = rng.uniform(pos_bin_lo(yb), pos_bin_lo(yb + 1) - 1);
  s.angle = ob * kOriBinWidth + int(rng.uniform(-kOriBinWidth / 2, kOriBinWidth / 2 - 1));
  const int64_t r_step = (kSpriteRHi - kSpriteRLo) / kScaleBins;
  s.r = rng.uniform(kSpriteRLo + sb * r_step, kSpriteRLo + (sb + 1) * r_step - 1);
  assert(pos_bin_of(s.cx) == xb && pos_bin_of(s.cy) == yb && ori_bin_of(s.angle) == ob);
  out.image = render_sprite(s);
  out.attributes = {{"shape", s.shape}, {"x_bin", xb}, {"y_bin", yb}, {"orientation_bin", ob}, {"scale_bin", sb}};
  return out;
}

// 1..10 objects anywhere on the floor.
SceneSample upstream_objects(uint64_t index) {
  SceneSample out;
  Rng rng(stream_key(kStreamUpstreamObjects, index));
  const int count = int(rng.uniform(1, 10));
  const Floor floor = draw_floor(rng);
  auto objects = make_scene(rng, kSpacingLoose, [count](Rng& r) {
    std::vector<int64_t> rows(count);
    for (auto& row : rows) row = r.uniform(kSceneFarY, kSceneNearY);
    return rows;
  });
  out.image = render_scene(objects, floor);
  size_t largest = 0, nearest = 0;
  for (size_t i = 1; i < objects.size(); ++i) {
    if (objects[i].rho > objects[largest].rho) largest = i;
    if (objects[i].ground_y > objects[nearest].ground_y) nearest = i;
  }
  out.attributes = {{"count", count - 1},
                    {"nearest_distance_bin", dist_bin_of(objects[nearest].ground_y)},
                    {"largest_colour", objects[largest].colour},
                    {"largest_shape", objects[largest].shape}};
  return out;
}

}  // namespace

const std::vector<std::string>& upstream_generators() {
  static const std::vector<std::string> names = {"fashion", "sprites", "objects"};
  return names;
}

const std::vector<UpstreamAttribute>& upstream_attributes(const std::string& generator) {
  static const std::vector<UpstreamAttribute> fashion = {{"class", 10}};
  static const std::vector<UpstreamAttribute> sprites = {{"shape", kNumSpriteShapes},
                                                         {"x_bin", kPosBins},
                                                         {"y_bin", kPosBins},
                                                         {"orientation_bin", kOriBins},
                                                         {"scale_bin", kScaleBins}};
  static const std::vector<UpstreamAttribute> objects = {{"count", 10},
                                                         {"nearest_distance_bin", kDistBins},
                                                         {"largest_colour", kNumColours},
                                                         {"largest_shape", kNumObjectShapes}};
  if (generator == "fashion") return fashion;
  if (generator == "sprites") return sprites;
  if (generator == "objects") return objects;
  PETL_FAIL("unknown upstream generator '", generator, "' (expected fashion, sprites or objects)");
}

std::vector<std::string> attribute_names(const std::string& generator) {
  std::vector<std::string> names;
  for (const auto& a : upstream_attributes(generator)) names.push_back(a.name);
  return names;
}

int attribute_num_classes(const std::string& generator, const std::string& attribute) {
  for (const auto& a : upstream_attributes(generator))
    if (a.name == attribute) return a.num_classes;
  PETL_FAIL("upstream generator '", generator, "' has no attribute '", attribute, "'");
}

int upstream_fashion_index(uint64_t index) {
  return fashion_train_permutation()[kFashionSuiteUsed + size_t(index % kUpstreamFashionDistinct)];
}

SceneSample upstream_sample(const std::string& generator, uint64_t index, const SuiteOptions& opts) {
  if (generator == "fashion") return upstream_fashion(index, opts);
  PETL_CHECK(generator == "sprites" || generator == "objects", "upstream_sample: unknown generator '", generator,
             "' (expected fashion, sprites or objects)");
  PETL_CHECK(index < (uint64_t(1) << kIndexBits), "upstream_sample: index ", index, " exceeds 2^48 for generator '",
             generator, "'");
  if (generator == "sprites") return upstream_sprites(index);
  return upstream_objects(index);
}

}  // namespace petl::data

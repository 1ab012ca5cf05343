// Internal to datasets/: real Fashion-MNIST for the embedded suite — Debian's gzip idx files,
// decoded once per directory, and the fixed permutations that split them into suite and upstream.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/image.h"
#include "datasets/suite_mini.h"

namespace petl::data::suite {

constexpr int kFashionTrain = 60000, kFashionTest = 10000, kFashionSide = 28;
// The suite's train800/val200 are positions [0, 1000) of the training permutation; upstream
// "fashion" uses positions [1000, 60000).
constexpr int kFashionSuiteUsed = 1000;
static_assert(kFashionTrain - kFashionSuiteUsed == kUpstreamFashionDistinct);

struct FashionSet {
  std::vector<uint8_t> images;  // n × 28 × 28
  std::vector<uint8_t> labels;  // n
};
struct FashionData {
  FashionSet train, test;
};

// Both files of dir ("train" and "t10k"), checked; decoded once per directory and kept for the
// process (read-only; upstream_sample is called once per pretraining sample).
std::shared_ptr<const FashionData> load_fashion(const std::string& dir);

// Fixed seeded permutations of [0, 60000) and [0, 10000); depend on no file.
const std::vector<int>& fashion_train_permutation();
const std::vector<int>& fashion_test_permutation();

// Image `index` of the set, its grey value copied into `channels` channels (1 or 3).
Image8 fashion_image(const FashionSet& set, int index, int channels);

}  // namespace petl::data::suite

// The embedded suite's deterministic randomness: key layout, splitmix64, xoshiro256** bounded
// draws, balanced labels (see suite_random.h).
#include "datasets/suite_random.h"

#include <cassert>

namespace petl::data::suite {

uint64_t stream_key(uint64_t stream, uint64_t index) {
  assert(stream < (uint64_t(1) << 16) && index < (uint64_t(1) << kIndexBits));
  return (stream << kIndexBits) | index;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t key) {
  uint64_t sm = kSuiteSeed ^ key;
  for (auto& word : s_) word = splitmix64(sm);
}

uint64_t Rng::below(uint64_t bound) {
  assert(bound > 0);
  uint64_t mask = bound - 1;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  for (;;) {
    const uint64_t x = next() & mask;
    if (x < bound) return x;
  }
}

int64_t Rng::uniform(int64_t lo, int64_t hi) {
  assert(lo <= hi);
  return lo + int64_t(below(uint64_t(hi - lo) + 1));
}

std::vector<int> balanced_labels(int n, int num_classes, uint64_t key) {
  std::vector<int> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = i % num_classes;
  Rng rng(key);
  shuffle_in_place(labels, rng);
  return labels;
}

int64_t inner_of_bin(Rng& rng, int64_t lo, int64_t width) {
  const int64_t edge = width * 38 / 256;
  return rng.uniform(lo + edge, lo + width - 1 - edge);
}

}  // namespace petl::data::suite

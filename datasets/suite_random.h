// Internal to datasets/: the embedded suite's deterministic randomness (xoshiro256** seeded by
// splitmix64 from structured 64-bit keys), its key streams, shuffles and balanced labels.
//
// Every random draw of the suite comes from Rng, seeded from a key (stream << 48 | index);
// bounded integers use bitmask rejection (no modulo bias, no std:: distributions, no
// std::shuffle), so a draw is the same on any machine and compiler.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace petl::data::suite {

constexpr uint64_t kSuiteSeed = 0x5045544C4D494E49ull;  // "PETLMINI"
constexpr int kIndexBits = 48;

// Key streams (16 bits each). Downstream images and labels depend on (task, split); upstream
// scenes have their own streams, so no upstream key equals a downstream key.
constexpr uint64_t kStreamFashionTrainPerm = 0x0301;
constexpr uint64_t kStreamFashionTestPerm = 0x0302;
constexpr uint64_t kStreamUpstreamSprites = 0x0401;
constexpr uint64_t kStreamUpstreamObjects = 0x0402;
inline uint64_t image_stream(int task, int split) { return 0x0100 + uint64_t(task) * 16 + split; }
inline uint64_t label_stream(int task, int split) { return 0x0200 + uint64_t(task) * 16 + split; }

// (stream << 48) | index; stream < 2^16 and index < 2^48.
uint64_t stream_key(uint64_t stream, uint64_t index);

uint64_t splitmix64(uint64_t& state);

// xoshiro256** (Blackman & Vigna), state filled by splitmix64 from the key.
class Rng {
 public:
  explicit Rng(uint64_t key);
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, bound): the smallest all-ones mask covering bound-1, then rejection.
  uint64_t below(uint64_t bound);
  // Uniform in [lo, hi], both inclusive.
  int64_t uniform(int64_t lo, int64_t hi);
  int pick(int n) { return int(below(uint64_t(n))); }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> s_{};
};

// Fisher–Yates with our own bounded integers.
template <typename T>
void shuffle_in_place(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// n labels as balanced as possible (i mod C), in a seeded random order.
std::vector<int> balanced_labels(int n, int num_classes, uint64_t key);

// A value in the inner part of [lo, lo + width): the central 70% (38/256 of the width off each
// end), keeping labels away from bin edges.
int64_t inner_of_bin(Rng& rng, int64_t lo, int64_t width);

}  // namespace petl::data::suite

// The embedded suite's integer raster: the fixed-point sine table, isqrt and the Canvas's
// box-filter downsampling (see suite_raster.h).
#include "datasets/suite_raster.h"

#include <array>

namespace petl::data::suite {

namespace {

// sin on [0, π/2] at 1025 points, Q14, from an integer Taylor series in Q30.
const std::array<int32_t, 1025>& quarter_sine_table() {
  static const std::array<int32_t, 1025> table = [] {
    std::array<int32_t, 1025> t{};
    constexpr int64_t kHalfPiQ30 = 1686629713;  // round(π/2 · 2^30)
    for (int a = 0; a <= 1024; ++a) {
      const int64_t x = kHalfPiQ30 * a / 1024;
      const int64_t x2 = x * x / (int64_t(1) << 30);
      int64_t term = x, sum = x;
      for (int k = 1; k <= 12; ++k) {
        term = term * x2 / (int64_t(1) << 30) / ((2 * k) * (2 * k + 1));
        sum += (k % 2) ? -term : term;
      }
      t[a] = int32_t((sum + (int64_t(1) << 15)) / (int64_t(1) << 16));
    }
    return t;
  }();
  return table;
}

}  // namespace

int64_t sin_q14(int angle) {
  const int a = ((angle % kTurn) + kTurn) % kTurn;
  const int quarter = a / 1024, r = a % 1024;
  const auto& t = quarter_sine_table();
  switch (quarter) {
    case 0:
      return t[r];
    case 1:
      return t[1024 - r];
    case 2:
      return -t[r];
    default:
      return -t[1024 - r];
  }
}
int64_t cos_q14(int angle) { return sin_q14(angle + kTurn / 4); }

uint64_t isqrt(uint64_t n) {
  uint64_t root = 0, bit = uint64_t(1) << 62;
  while (bit > n) bit >>= 2;
  while (bit) {
    if (n >= root + bit) {
      n -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return root;
}

Canvas::Canvas(int width, int height)
    : out_w_(width), out_h_(height), w_(width * kSS), h_(height * kSS), px_(size_t(w_) * h_ * 3, 0) {}

Image8 Canvas::downsample() const {
  Image8 img;
  img.width = out_w_;
  img.height = out_h_;
  img.channels = 3;
  img.pixels.resize(size_t(out_w_) * out_h_ * 3);
  for (int y = 0; y < out_h_; ++y)
    for (int x = 0; x < out_w_; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < kSS; ++dy)
          for (int dx = 0; dx < kSS; ++dx) sum += px_[(size_t(y * kSS + dy) * w_ + (x * kSS + dx)) * 3 + c];
        img.pixels[(size_t(y) * out_w_ + x) * 3 + c] = uint8_t((sum + kSS * kSS / 2) / (kSS * kSS));
      }
  return img;
}

}  // namespace petl::data::suite

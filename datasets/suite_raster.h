// Internal to datasets/: the embedded suite's integer raster — fixed-point maths (a sine table,
// integer square roots) and the 4×4-supersampled Canvas the renderers draw on.
//
// Rendering is integer fixed-point arithmetic only, so no libm or FMA contraction can change a
// pixel. Lengths on screen are Q8 output pixels (256 = one pixel); angles are 1/4096 of a full
// turn.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "datasets/image.h"

namespace petl::data::suite {

// ================================================================== fixed-point maths

constexpr int64_t kOne = 256;
constexpr int kTurn = 4096;
constexpr int64_t kQ14 = 16384;
constexpr int64_t kQ12 = 4096;

// sin and cos of angle (1/4096 turn), Q14, from a table built by an integer Taylor series.
int64_t sin_q14(int angle);
int64_t cos_q14(int angle);
uint64_t isqrt(uint64_t n);

inline int64_t frac(int64_t length, int num256) { return length * num256 / 256; }  // length · n/256
inline int64_t iabs(int64_t x) { return x < 0 ? -x : x; }
inline int clamp8(int64_t v) { return int(v < 0 ? 0 : v > 255 ? 255 : v); }

// ================================================================== supersampled canvas

constexpr int kSS = 4;          // 4×4 subsamples per output pixel (box-filtered: antialiasing)
constexpr int kSceneSize = 64;  // rendered tasks are 64×64 RGB

struct Rgb {
  int r = 0, g = 0, b = 0;
};
inline Rgb scale(Rgb c, int64_t num256, int64_t add = 0) {
  return {clamp8(c.r * num256 / 256 + add), clamp8(c.g * num256 / 256 + add), clamp8(c.b * num256 / 256 + add)};
}

class Canvas {
 public:
  Canvas(int width, int height);
  int sub_w() const { return w_; }
  int sub_h() const { return h_; }
  // Centre of subsample s, in Q8 output pixels.
  static int64_t centre(int s) { return int64_t(s) * (kOne / kSS) + kOne / (2 * kSS); }
  void set(int sx, int sy, Rgb c) {
    uint8_t* p = &px_[(size_t(sy) * w_ + sx) * 3];
    p[0] = uint8_t(c.r);
    p[1] = uint8_t(c.g);
    p[2] = uint8_t(c.b);
  }
  Rgb get(int sx, int sy) const {
    const uint8_t* p = &px_[(size_t(sy) * w_ + sx) * 3];
    return {p[0], p[1], p[2]};
  }
  // Calls fn(X, Y, sx, sy) for every subsample whose centre may lie in [x0, x1] × [y0, y1] (Q8).
  template <typename Fn>
  void for_box(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Fn&& fn) {
    const int sx0 = clamp_sub(x0 * kSS / kOne - 1, w_), sx1 = clamp_sub(x1 * kSS / kOne + 1, w_);
    const int sy0 = clamp_sub(y0 * kSS / kOne - 1, h_), sy1 = clamp_sub(y1 * kSS / kOne + 1, h_);
    for (int sy = sy0; sy <= sy1; ++sy)
      for (int sx = sx0; sx <= sx1; ++sx) fn(centre(sx), centre(sy), sx, sy);
  }
  // Box filter over each kSS×kSS block, rounded to nearest.
  Image8 downsample() const;

 private:
  static int clamp_sub(int64_t s, int n) { return int(s < 0 ? 0 : s >= n ? n - 1 : s); }
  int out_w_, out_h_, w_, h_;
  std::vector<uint8_t> px_;
};

}  // namespace petl::data::suite

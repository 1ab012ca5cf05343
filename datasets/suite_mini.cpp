// The embedded suite "mini" (see suite_mini.h): real Fashion-MNIST read from Debian's gzip idx
// files plus four procedurally rendered structured tasks in the spirit of VTAB's dsprites_loc,
// dsprites_ori, clevr_count and clevr_dist, written in the VTAB-1k "txt" format (docs/spec/vtab1k.md).
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

#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/progress.h"

namespace petl::data {
namespace fs = std::filesystem;
namespace {

constexpr int kSuiteVersion = 1;

// ================================================================== deterministic randomness

constexpr uint64_t kSuiteSeed = 0x5045544C4D494E49ull;  // "PETLMINI"
constexpr int kIndexBits = 48;

// Key streams (16 bits each). Downstream images and labels depend on (task, split); upstream
// scenes have their own streams, so no upstream key equals a downstream key.
constexpr uint64_t kStreamFashionTrainPerm = 0x0301;
constexpr uint64_t kStreamFashionTestPerm = 0x0302;
constexpr uint64_t kStreamUpstreamSprites = 0x0401;
constexpr uint64_t kStreamUpstreamObjects = 0x0402;
uint64_t image_stream(int task, int split) { return 0x0100 + uint64_t(task) * 16 + split; }
uint64_t label_stream(int task, int split) { return 0x0200 + uint64_t(task) * 16 + split; }

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

// xoshiro256** (Blackman & Vigna), state filled by splitmix64 from the key.
class Rng {
 public:
  explicit Rng(uint64_t key) {
    uint64_t sm = kSuiteSeed ^ key;
    for (auto& word : s_) word = splitmix64(sm);
  }
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
  uint64_t below(uint64_t bound) {
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
  // Uniform in [lo, hi], both inclusive.
  int64_t uniform(int64_t lo, int64_t hi) {
    assert(lo <= hi);
    return lo + int64_t(below(uint64_t(hi - lo) + 1));
  }
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
std::vector<int> balanced_labels(int n, int num_classes, uint64_t key) {
  std::vector<int> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = i % num_classes;
  Rng rng(key);
  shuffle_in_place(labels, rng);
  return labels;
}

// ================================================================== fixed-point maths
// Lengths on screen are Q8 output pixels (256 = one pixel); angles are 1/4096 of a full turn.

constexpr int64_t kOne = 256;
constexpr int kTurn = 4096;
constexpr int64_t kQ14 = 16384;
constexpr int64_t kQ12 = 4096;

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

int64_t sin_q14(int angle) {
  const int a = ((angle % kTurn) + kTurn) % kTurn;
  const int quarter = a / 1024, r = a % 1024;
  const auto& t = quarter_sine_table();
  switch (quarter) {
    case 0: return t[r];
    case 1: return t[1024 - r];
    case 2: return -t[r];
    default: return -t[1024 - r];
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

int64_t frac(int64_t length, int num256) { return length * num256 / 256; }  // length · n/256
int64_t iabs(int64_t x) { return x < 0 ? -x : x; }
int clamp8(int64_t v) { return int(v < 0 ? 0 : v > 255 ? 255 : v); }

// ================================================================== supersampled canvas

constexpr int kSS = 4;  // 4×4 subsamples per output pixel (box-filtered: antialiasing)

struct Rgb {
  int r = 0, g = 0, b = 0;
};
Rgb scale(Rgb c, int64_t num256, int64_t add = 0) {
  return {clamp8(c.r * num256 / 256 + add), clamp8(c.g * num256 / 256 + add),
          clamp8(c.b * num256 / 256 + add)};
}

class Canvas {
 public:
  Canvas(int width, int height)
      : out_w_(width), out_h_(height), w_(width * kSS), h_(height * kSS),
        px_(size_t(w_) * h_ * 3, 0) {}
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
  Image8 downsample() const {
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
            for (int dx = 0; dx < kSS; ++dx)
              sum += px_[(size_t(y * kSS + dy) * w_ + (x * kSS + dx)) * 3 + c];
          img.pixels[(size_t(y) * out_w_ + x) * 3 + c] = uint8_t((sum + kSS * kSS / 2) / (kSS * kSS));
        }
    return img;
  }

 private:
  static int clamp_sub(int64_t s, int n) { return int(s < 0 ? 0 : s >= n ? n - 1 : s); }
  int out_w_, out_h_, w_, h_;
  std::vector<uint8_t> px_;
};

constexpr int kSceneSize = 64;  // rendered tasks are 64×64 RGB

// ================================================================== sprites (dSprites-like)

enum SpriteShape { kSquare = 0, kEllipse, kHeart, kArrow, kEll, kTee, kNumSpriteShapes };

struct Sprite {
  int shape = kSquare;
  int64_t cx = 0, cy = 0;  // centre, Q8
  int64_t r = 0;           // bounding radius, Q8: the whole shape lies within it
  int angle = 0;           // 1/4096 turn, counter-clockwise as displayed; 0 points right
};

// Sprite centres lie in [13, 51] px on both axes, so a sprite of radius <= 12 px never leaves the
// image. Position bins split that range in 8.
constexpr int64_t kSpritePosLo = 13 * kOne, kSpritePosHi = 51 * kOne;
constexpr int kPosBins = 8;
int64_t pos_bin_lo(int bin) { return kSpritePosLo + (kSpritePosHi - kSpritePosLo) * bin / kPosBins; }
int pos_bin_of(int64_t p) {
  const int64_t b = (p - kSpritePosLo) * kPosBins / (kSpritePosHi - kSpritePosLo);
  return int(std::clamp<int64_t>(b, 0, kPosBins - 1));
}
// Orientation bins: 8 bins of 45° centred on multiples of 45° (bin 0 = pointing right).
constexpr int kOriBins = 8;
constexpr int kOriBinWidth = kTurn / kOriBins;  // 512
int ori_bin_of(int angle) {
  const int a = ((angle + kOriBinWidth / 2) % kTurn + kTurn) % kTurn;
  return a / kOriBinWidth;
}
// Scale: bounding radius in [6, 12] px, 4 bins for upstream labels.
constexpr int64_t kSpriteRLo = 6 * kOne, kSpriteRHi = 12 * kOne;
constexpr int kScaleBins = 4;

// (u, v): offsets along the sprite's forward and left axes (Q8); r: bounding radius (Q8).
bool sprite_contains(int shape, int64_t u, int64_t v, int64_t r) {
  const int64_t au = iabs(u), av = iabs(v);
  switch (shape) {
    case kSquare: {  // half side r/√2: the corners touch the bounding circle
      const int64_t h = frac(r, 181);
      return au <= h && av <= h;
    }
    case kEllipse: {  // semi-axes r (forward) and r/2
      const int64_t a = r, b = frac(r, 128);
      return u * u * b * b + v * v * a * a <= a * a * b * b;
    }
    case kHeart: {  // a diamond |u|+|v| <= d with two round lobes on its +u edges, tip at -u
      const int64_t d = frac(r, 181), lobe = frac(d, 181);
      if (au + av <= d) return true;
      const int64_t du = u - d / 2, dv = av - d / 2;
      return du * du + dv * dv <= lobe * lobe;
    }
    case kArrow: {  // shaft from the back to the middle, triangular head to the tip at +0.95 r
      const int64_t tip = frac(r, 243);
      if (u >= -tip && u <= frac(r, 26) && av <= frac(r, 56)) return true;
      return u >= 0 && u <= tip && av * tip <= frac(r, 140) * (tip - u);
    }
    case kEll: {  // long bar along u on the -v side, foot towards +v at the back
      const int64_t back = frac(r, 154), front = frac(r, 192), in = frac(r, 56);
      if (u >= -back && u <= front && v >= -back && v <= -in) return true;
      return u >= -back && u <= -in && v >= -back && v <= frac(r, 128);
    }
    case kTee: {  // cross bar at the front, stem towards the back
      const int64_t bar_lo = frac(r, 95), bar_hi = frac(r, 192);
      if (u >= bar_lo && u <= bar_hi && av <= frac(r, 166)) return true;
      return u >= -bar_hi && u <= bar_lo && av <= frac(r, 58);
    }
  }
  return false;
}

Image8 render_sprite(const Sprite& s) {
  Canvas canvas(kSceneSize, kSceneSize);
  const int64_t c = cos_q14(s.angle), sn = sin_q14(s.angle);
  const Rgb white{255, 255, 255};
  canvas.for_box(s.cx - s.r, s.cy - s.r, s.cx + s.r, s.cy + s.r,
                 [&](int64_t x, int64_t y, int sx, int sy) {
                   const int64_t dx = x - s.cx, dy = y - s.cy;  // y grows downwards
                   const int64_t u = (dx * c - dy * sn) / kQ14;
                   const int64_t v = (-dx * sn - dy * c) / kQ14;
                   if (sprite_contains(s.shape, u, v, s.r)) canvas.set(sx, sy, white);
                 });
  return canvas.downsample();
}

// Inner part of [lo, lo + width): the central 70%, keeping labels away from bin edges.
int64_t inner_of_bin(Rng& rng, int64_t lo, int64_t width) {
  return rng.uniform(lo + frac(width, 38), lo + width - 1 - frac(width, 38));
}

// sprites_loc: square / ellipse / heart, label = x bin of the centre.
Image8 render_sprites_loc(int label, Rng& rng) {
  Sprite s;
  s.shape = rng.pick(3);
  s.r = rng.uniform(kSpriteRLo, 11 * kOne);
  s.angle = rng.pick(kTurn);
  s.cx = inner_of_bin(rng, pos_bin_lo(label), pos_bin_lo(label + 1) - pos_bin_lo(label));
  s.cy = rng.uniform(kSpritePosLo, kSpritePosHi);
  return render_sprite(s);
}

// sprites_ori: arrow / L / T, label = orientation bin (central ±15° of each 45° bin).
Image8 render_sprites_ori(int label, Rng& rng) {
  Sprite s;
  s.shape = kArrow + rng.pick(3);
  s.r = rng.uniform(9 * kOne, kSpriteRHi);
  s.angle = label * kOriBinWidth + int(rng.uniform(-170, 170));
  s.cx = rng.uniform(kSpritePosLo, kSpritePosHi);
  s.cy = rng.uniform(kSpritePosLo, kSpritePosHi);
  return render_sprite(s);
}

// ================================================================== object scenes (CLEVR-like)
// A pinhole camera at height 1 looking over a grey floor: a floor point at depth z (Q12 world
// units) appears at screen row kHorizon + kFocal/z, and a world length L at depth z spans
// kFocal·L/z pixels. Farther objects are higher in the image and smaller.

constexpr int64_t kHorizonQ8 = -16 * kOne;
constexpr int64_t kFocalPx = 76;
constexpr int64_t kWorldRadiusQ12[2] = {369, 573};  // small 0.09, large 0.14
enum ObjectShape { kSphere = 0, kCube, kCylinder, kNumObjectShapes };
constexpr int kNumColours = 8;
const Rgb kPalette[kNumColours] = {  // CLEVR's gray, red, blue, green, brown, purple, cyan, yellow
    {87, 87, 87},   {173, 35, 35}, {42, 75, 215},  {29, 105, 20},
    {129, 74, 25},  {129, 38, 192}, {41, 208, 208}, {255, 238, 51}};
// Light from the upper left, in front (x right, y down, z towards the viewer), and the half
// vector between it and the view direction, Q12.
constexpr int64_t kLx = -1845, kLy = -2460, kLz = 2706;
constexpr int64_t kHx = -1012, kHy = -1349, kHz = 3733;

int64_t depth_from_ground_y(int64_t ground_y_q8) {
  return kFocalPx * kOne * kQ12 / (ground_y_q8 - kHorizonQ8);
}
int64_t ground_y_from_depth(int64_t z) { return kHorizonQ8 + kFocalPx * kOne * kQ12 / z; }

struct SceneObject {
  int shape = kSphere, colour = 0, size = 0, metal = 0;
  int64_t z = 0;                         // depth, Q12
  int64_t cx = 0, ground_y = 0, rho = 0;  // screen, Q8: centre x, floor contact row, radius
  // Bounding circle of every shape: centre (cx, ground_y - 1.05 rho), radius 1.3 rho.
  int64_t bound_cy() const { return ground_y - frac(rho, 269); }
  int64_t bound_r() const { return frac(rho, 333); }
};

struct Floor {
  int grey = 125, tilt = 0, tint = 0;
};

// Nearest-object depth bins (objects_dist, upstream nearest_distance_bin): 6 bins of equal
// height in screen rows of the floor contact (equal steps of inverse depth), from row 60 (depth
// 1.0, bin 0 = nearest) up to row 15 (depth 2.45); farther contacts fall in bin 5.
constexpr int kDistBins = 6;
constexpr int64_t kDistNearY = 60 * kOne, kDistFarY = 15 * kOne;
int64_t dist_bin_hi(int bin) { return kDistNearY - (kDistNearY - kDistFarY) * bin / kDistBins; }
int dist_bin_of(int64_t ground_y) {
  const int64_t b = (kDistNearY - ground_y) * kDistBins / (kDistNearY - kDistFarY);
  return int(std::clamp<int64_t>(b, 0, kDistBins - 1));
}
// Floor rows usable by any object: row 9.5 keeps the top of a large far object in the image.
constexpr int64_t kSceneFarY = 9 * kOne + kOne / 2, kSceneNearY = kDistNearY;

// Random attributes at the given floor row, at a random x with its bounding circle inside the
// image, away from the others (centre distance >= spacing/256 · sum of bounding radii).
bool place_object(Rng& rng, int64_t ground_y, int spacing, const std::vector<SceneObject>& placed,
                  SceneObject& o) {
  o.shape = rng.pick(kNumObjectShapes);
  o.colour = rng.pick(kNumColours);
  o.size = rng.pick(2);
  o.metal = rng.pick(2);
  o.z = depth_from_ground_y(ground_y);
  o.ground_y = ground_y_from_depth(o.z);
  o.rho = kFocalPx * kOne * kWorldRadiusQ12[o.size] / o.z;
  const int64_t margin = kOne / 2, br = o.bound_r();
  assert(o.bound_cy() - br >= margin / 2);
  for (int attempt = 0; attempt < 64; ++attempt) {
    o.cx = rng.uniform(margin + br, kSceneSize * kOne - margin - br);
    bool ok = true;
    for (const auto& p : placed) {
      const int64_t dx = o.cx - p.cx, dy = o.bound_cy() - p.bound_cy();
      const int64_t need = (br + p.bound_r()) * spacing / 256;
      if (dx * dx + dy * dy < need * need) {
        ok = false;
        break;
      }
    }
    if (ok) return true;
  }
  return false;
}

// Places objects at the floor rows drawn by draw_rows(rng) (one per object), redrawing the
// whole scene until every object fits.
template <typename DrawRows>
std::vector<SceneObject> make_scene(Rng& rng, int spacing, DrawRows&& draw_rows) {
  for (int attempt = 0; attempt < 10000; ++attempt) {
    const std::vector<int64_t> rows = draw_rows(rng);
    std::vector<SceneObject> objects;
    for (int64_t row : rows) {
      SceneObject o;
      if (!place_object(rng, row, spacing, objects, o)) break;
      objects.push_back(o);
    }
    if (objects.size() == rows.size()) return objects;
  }
  assert(false && "make_scene: no valid layout");
  return {};
}

Floor draw_floor(Rng& rng) {
  Floor f;
  f.grey = int(rng.uniform(110, 140));
  f.tilt = int(rng.uniform(-6, 6));
  f.tint = int(rng.uniform(-5, 5));
  return f;
}

void draw_sphere(Canvas& canvas, const SceneObject& o) {
  const int64_t cy = o.ground_y - o.rho, r = o.rho;
  const Rgb base = kPalette[o.colour];
  const int64_t spec_strength = o.metal ? 230 : 50;
  canvas.for_box(o.cx - r, cy - r, o.cx + r, cy + r, [&](int64_t x, int64_t y, int sx, int sy) {
    const int64_t dx = x - o.cx, dy = y - cy;
    if (dx * dx + dy * dy > r * r) return;
    const int64_t nx = dx * kQ12 / r, ny = dy * kQ12 / r;
    const int64_t nz = int64_t(isqrt(uint64_t(std::max<int64_t>(0, kQ12 * kQ12 - nx * nx - ny * ny))));
    const int64_t ndl = std::max<int64_t>(0, (nx * kLx + ny * kLy + nz * kLz) / kQ12);
    int64_t s = std::max<int64_t>(0, (nx * kHx + ny * kHy + nz * kHz) / kQ12);
    for (int i = 0; i < 5; ++i) s = s * s / kQ12;  // (n·h)^32
    const int64_t shade = 64 + ndl * 192 / kQ12;    // ambient 0.25 + diffuse 0.75
    canvas.set(sx, sy, scale(base, shade, s * spec_strength / kQ12));
  });
}

void draw_cube(Canvas& canvas, const SceneObject& o) {
  // Oblique view of an axis-aligned cube: front face, top face receding up-right, right face.
  const int64_t w = frac(o.rho, 205);  // half side 0.8 rho
  const int64_t ox = frac(w, 102), oy = frac(w, 115);  // receding edge: 0.4 w right, 0.45 w up
  const int64_t xl = o.cx - w - ox / 2, xr = o.cx + w - ox / 2;
  const int64_t yb = o.ground_y, yt = o.ground_y - 2 * w;
  const Rgb base = kPalette[o.colour];
  const int64_t gloss = o.metal ? 40 : 0;
  canvas.for_box(xl, yt - oy, xr + ox, yb, [&](int64_t x, int64_t y, int sx, int sy) {
    if (x >= xl && x <= xr && y >= yt && y <= yb) {  // front: lit at ~0.72, darker downwards
      canvas.set(sx, sy, scale(base, 195 - 30 * (y - yt) / (yb - yt), gloss / 4));
    } else if (y < yt && y >= yt - oy) {  // top: the brightest face
      const int64_t shift = (yt - y) * ox / oy;
      if (x - shift >= xl && x - shift <= xr) canvas.set(sx, sy, scale(base, 245, gloss));
    } else if (x > xr && x <= xr + ox) {  // right side, in shade
      const int64_t lift = (x - xr) * oy / ox;
      if (y + lift >= yt && y + lift <= yb) canvas.set(sx, sy, scale(base, 110));
    }
  });
}

void draw_cylinder(Canvas& canvas, const SceneObject& o) {
  const int64_t rc = frac(o.rho, 218), eb = frac(o.rho, 82);  // radius 0.85 rho, cap 0.32 rho
  const int64_t y_bottom = o.ground_y - eb, y_top = y_bottom - frac(o.rho, 384);
  const Rgb base = kPalette[o.colour];
  const int64_t spec_strength = o.metal ? 200 : 40;
  auto in_cap = [&](int64_t x, int64_t y, int64_t yc) {
    const int64_t dx = x - o.cx, dy = y - yc;
    return dx * dx * eb * eb + dy * dy * rc * rc <= rc * rc * eb * eb;
  };
  canvas.for_box(o.cx - rc, y_top - eb, o.cx + rc, o.ground_y,
                 [&](int64_t x, int64_t y, int sx, int sy) {
                   if (in_cap(x, y, y_top)) {
                     canvas.set(sx, sy, scale(base, 240));
                   } else if ((iabs(x - o.cx) <= rc && y >= y_top && y <= y_bottom) ||
                              in_cap(x, y, y_bottom)) {
                     const int64_t nx = std::clamp<int64_t>((x - o.cx) * kQ12 / rc, -kQ12, kQ12);
                     const int64_t nz = int64_t(isqrt(uint64_t(kQ12 * kQ12 - nx * nx)));
                     const int64_t ndl = std::max<int64_t>(0, (nx * kLx + nz * kLz) / kQ12);
                     int64_t s = std::max<int64_t>(0, (nx * kHx + nz * kHz) / kQ12);
                     for (int i = 0; i < 4; ++i) s = s * s / kQ12;  // (n·h)^16
                     canvas.set(sx, sy, scale(base, 64 + ndl * 192 / kQ12,
                                              s * spec_strength / kQ12));
                   }
                 });
}

Image8 render_scene(const std::vector<SceneObject>& objects, const Floor& floor) {
  Canvas canvas(kSceneSize, kSceneSize);
  // Contact shadows: an ellipse below-right of every object, marked once (overlapping shadows
  // do not darken twice).
  std::vector<uint8_t> shadow(size_t(canvas.sub_w()) * canvas.sub_h(), 0);
  for (const auto& o : objects) {
    const int64_t a = frac(o.rho, 294), b = frac(o.rho, 102);
    const int64_t ex = o.cx + frac(o.rho, 90), ey = o.ground_y - frac(o.rho, 30);
    canvas.for_box(ex - a, ey - b, ex + a, ey + b, [&](int64_t x, int64_t y, int sx, int sy) {
      const int64_t dx = x - ex, dy = y - ey;
      if (dx * dx * b * b + dy * dy * a * a <= a * a * b * b)
        shadow[size_t(sy) * canvas.sub_w() + sx] = 1;
    });
  }
  // Floor with a mild gradient: brighter near the camera (±12), a small left-right tilt and a
  // slight warm/cool tint.
  const int64_t half = kSceneSize * kOne / 2;
  std::vector<int64_t> col_term(canvas.sub_w());
  for (int sx = 0; sx < canvas.sub_w(); ++sx)
    col_term[sx] = (Canvas::centre(sx) - half) * floor.tilt / half;
  for (int sy = 0; sy < canvas.sub_h(); ++sy) {
    const int64_t row_grey = floor.grey + (Canvas::centre(sy) - half) * 12 / half;
    for (int sx = 0; sx < canvas.sub_w(); ++sx) {
      int64_t grey = row_grey + col_term[sx];
      if (shadow[size_t(sy) * canvas.sub_w() + sx]) grey = grey * 165 / 256;
      canvas.set(sx, sy, {clamp8(grey + floor.tint), clamp8(grey), clamp8(grey - floor.tint)});
    }
  }
  // Painter's algorithm: farthest first.
  std::vector<size_t> order(objects.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return objects[a].z > objects[b].z; });
  for (size_t i : order) {
    const auto& o = objects[i];
    if (o.shape == kSphere) draw_sphere(canvas, o);
    else if (o.shape == kCube) draw_cube(canvas, o);
    else draw_cylinder(canvas, o);
  }
  return canvas.downsample();
}

// Tight spacing for counting (bounding circles may overlap by 10% only: objects do not occlude
// each other), looser for the distance scenes and upstream scenes.
constexpr int kSpacingCount = 230, kSpacingLoose = 180;

// objects_count: 3..10 objects on floor rows 12..52, label = count - 3.
Image8 render_objects_count(int label, Rng& rng) {
  const int count = label + 3;
  const Floor floor = draw_floor(rng);
  auto objects = make_scene(rng, kSpacingCount, [count](Rng& r) {
    std::vector<int64_t> rows(count);
    for (auto& row : rows) row = r.uniform(12 * kOne, 52 * kOne);
    return rows;
  });
  return render_scene(objects, floor);
}

// objects_dist: 2..5 objects; the nearest one's contact row lies in the central 70% of the
// label's bin, every other object at least 2 rows higher (farther).
Image8 render_objects_dist(int label, Rng& rng) {
  const int count = int(rng.uniform(2, 5));
  const Floor floor = draw_floor(rng);
  auto objects = make_scene(rng, kSpacingLoose, [count, label](Rng& r) {
    const int64_t lo = dist_bin_hi(label + 1), width = dist_bin_hi(label) - lo;
    std::vector<int64_t> rows{inner_of_bin(r, lo, width)};
    for (int i = 1; i < count; ++i) rows.push_back(r.uniform(kSceneFarY, rows[0] - 2 * kOne));
    return rows;
  });
  return render_scene(objects, floor);
}

// ================================================================== Fashion-MNIST

constexpr int kFashionTrain = 60000, kFashionTest = 10000, kFashionSide = 28;
constexpr int kFashionSuiteUsed = 1000;  // positions [0, 1000) of the training permutation
static_assert(kFashionTrain - kFashionSuiteUsed == kUpstreamFashionDistinct);

struct FashionSet {
  std::vector<uint8_t> images;  // n × 28 × 28
  std::vector<uint8_t> labels;  // n
};
struct FashionData {
  FashionSet train, test;
};

std::vector<uint8_t> read_gzip_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  PETL_CHECK(f != nullptr, "Fashion-MNIST: cannot open ", path,
             " (expected Debian's dataset-fashion-mnist files; set SuiteOptions::fashion_mnist_dir)");
  std::vector<uint8_t> data;
  std::array<uint8_t, 1 << 16> buf{};
  for (;;) {
    const int n = gzread(f, buf.data(), unsigned(buf.size()));
    if (n < 0) {
      int errnum = 0;
      const std::string msg = gzerror(f, &errnum);
      gzclose(f);
      PETL_FAIL("Fashion-MNIST: cannot decompress ", path, ": ", msg);
    }
    if (n == 0) break;
    data.insert(data.end(), buf.begin(), buf.begin() + n);
  }
  gzclose(f);
  return data;
}

uint32_t read_be32(const std::vector<uint8_t>& d, size_t at) {
  return uint32_t(d[at]) << 24 | uint32_t(d[at + 1]) << 16 | uint32_t(d[at + 2]) << 8 | d[at + 3];
}

FashionSet read_fashion_set(const std::string& dir, const std::string& prefix, int expected) {
  FashionSet set;
  const std::string image_path = dir + "/" + prefix + "-images-idx3-ubyte.gz";
  const std::string label_path = dir + "/" + prefix + "-labels-idx1-ubyte.gz";
  std::vector<uint8_t> images = read_gzip_file(image_path);
  PETL_CHECK(images.size() >= 16 && read_be32(images, 0) == 0x00000803, image_path,
             ": not an idx3 ubyte file (magic 0x00000803 expected)");
  const uint32_t n = read_be32(images, 4), rows = read_be32(images, 8), cols = read_be32(images, 12);
  PETL_CHECK(n == uint32_t(expected) && rows == kFashionSide && cols == kFashionSide, image_path,
             ": expected ", expected, " images of 28x28, found ", n, " of ", rows, "x", cols);
  PETL_CHECK(images.size() == 16 + size_t(n) * rows * cols, image_path, ": expected ",
             16 + size_t(n) * rows * cols, " bytes, found ", images.size());
  set.images.assign(images.begin() + 16, images.end());
  std::vector<uint8_t> labels = read_gzip_file(label_path);
  PETL_CHECK(labels.size() >= 8 && read_be32(labels, 0) == 0x00000801, label_path,
             ": not an idx1 ubyte file (magic 0x00000801 expected)");
  PETL_CHECK(read_be32(labels, 4) == n && labels.size() == 8 + size_t(n), label_path,
             ": expected ", n, " labels, found header ", read_be32(labels, 4), " and ",
             labels.size() - 8, " bytes");
  set.labels.assign(labels.begin() + 8, labels.end());
  for (size_t i = 0; i < set.labels.size(); ++i)
    PETL_CHECK(set.labels[i] < 10, label_path, ": label ", int(set.labels[i]), " at ", i,
               " is outside [0, 10)");
  return set;
}

// Decoded once per directory and kept for the process (read-only; upstream_sample is called
// once per pretraining sample).
std::shared_ptr<const FashionData> load_fashion(const std::string& dir) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const FashionData>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dir);
  if (it != cache.end()) return it->second;
  auto data = std::make_shared<FashionData>();
  data->train = read_fashion_set(dir, "train", kFashionTrain);
  data->test = read_fashion_set(dir, "t10k", kFashionTest);
  cache[dir] = data;
  return data;
}

const std::vector<int>& fixed_permutation(int n, uint64_t stream) {
  static std::mutex mu;
  static std::map<std::pair<int, uint64_t>, std::vector<int>> perms;
  std::lock_guard<std::mutex> lock(mu);
  auto& perm = perms[{n, stream}];
  if (perm.empty()) {
    perm.resize(n);
    std::iota(perm.begin(), perm.end(), 0);
    Rng rng(stream_key(stream, 0));
    shuffle_in_place(perm, rng);
  }
  return perm;
}
const std::vector<int>& fashion_train_permutation() {
  return fixed_permutation(kFashionTrain, kStreamFashionTrainPerm);
}
const std::vector<int>& fashion_test_permutation() {
  return fixed_permutation(kFashionTest, kStreamFashionTestPerm);
}

Image8 fashion_image(const FashionSet& set, int index, int channels) {
  Image8 img;
  img.width = img.height = kFashionSide;
  img.channels = channels;
  const uint8_t* src = &set.images[size_t(index) * kFashionSide * kFashionSide];
  img.pixels.resize(size_t(kFashionSide) * kFashionSide * channels);
  for (int i = 0; i < kFashionSide * kFashionSide; ++i)
    for (int c = 0; c < channels; ++c) img.pixels[size_t(i) * channels + c] = src[i];
  return img;
}

// ================================================================== the suite

struct SplitSpec {
  const char* name;
  int size;
};

enum TaskId { kFashionTask = 0, kSpritesLoc, kSpritesOri, kObjectsCount, kObjectsDist };

Image8 render_task_image(int task, int label, Rng& rng) {
  switch (task) {
    case kSpritesLoc: return render_sprites_loc(label, rng);
    case kSpritesOri: return render_sprites_ori(label, rng);
    case kObjectsCount: return render_objects_count(label, rng);
    case kObjectsDist: return render_objects_dist(label, rng);
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
      {"sprites_loc", 8,
       "dSprites-like: x-position bin (8 bins) of one white square/ellipse/heart on black"},
      {"sprites_ori", 8,
       "dSprites-like: orientation bin (8 bins of 45 degrees) of one white arrow/L/T on black"},
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
    PETL_CHECK(test_size >= 1 && test_size <= kFashionTest, "mini_fashion_indices: test_size ",
               test_size, " is outside [1, ", kFashionTest, "]");
    const auto& test = fashion_test_permutation();
    return {test.begin(), test.begin() + test_size};
  }
  PETL_FAIL("mini_fashion_indices: unknown split '", split,
            "' (expected train800, val200 or test)");
}

int upstream_fashion_index(uint64_t index) {
  return fashion_train_permutation()[kFashionSuiteUsed + size_t(index % kUpstreamFashionDistinct)];
}

void build_mini_suite(const std::string& out_dir, const SuiteOptions& opts) {
  PETL_CHECK(opts.test_size >= 1000 && opts.test_size <= kFashionTest,
             "build_mini_suite: test_size must be in [1000, ", kFashionTest, "], got ",
             opts.test_size);
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
    const fs::path path =
        fs::path(out_dir) / tasks[job.task].name / image_rel_path(splits[job.split].name, job.index);
    write_png(path.string(), img);
    bar.add();
  });
  bar.finish();

  // Lists and metadata last: a build that failed half-way has no lists.
  for (int t = 0; t < int(tasks.size()); ++t) {
    const fs::path task_dir = fs::path(out_dir) / tasks[t].name;
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
  write_text_file(fs::path(out_dir) / "SUITE.md", suite_readme(opts));
}

// ================================================================== upstream data

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

SceneSample upstream_sample(const std::string& generator, uint64_t index, const SuiteOptions& opts) {
  SceneSample out;
  if (generator == "fashion") {
    const auto fashion = load_fashion(opts.fashion_mnist_dir);
    const int i = upstream_fashion_index(index);
    out.image = fashion_image(fashion->train, i, 3);
    out.attributes["class"] = fashion->train.labels[i];
    return out;
  }
  PETL_CHECK(generator == "sprites" || generator == "objects", "upstream_sample: unknown generator '",
             generator, "' (expected fashion, sprites or objects)");
  PETL_CHECK(index < (uint64_t(1) << kIndexBits), "upstream_sample: index ", index,
             " exceeds 2^48 for generator '", generator, "'");
  if (generator == "sprites") {
    // Every attribute drawn as a uniform bin first, then a value inside the bin.
    Rng rng(stream_key(kStreamUpstreamSprites, index));
    Sprite s;
    s.shape = rng.pick(kNumSpriteShapes);
    const int xb = rng.pick(kPosBins), yb = rng.pick(kPosBins), ob = rng.pick(kOriBins),
              sb = rng.pick(kScaleBins);
    s.cx = rng.uniform(pos_bin_lo(xb), pos_bin_lo(xb + 1) - 1);
    s.cy = rng.uniform(pos_bin_lo(yb), pos_bin_lo(yb + 1) - 1);
    s.angle = ob * kOriBinWidth + int(rng.uniform(-kOriBinWidth / 2, kOriBinWidth / 2 - 1));
    const int64_t r_step = (kSpriteRHi - kSpriteRLo) / kScaleBins;
    s.r = rng.uniform(kSpriteRLo + sb * r_step, kSpriteRLo + (sb + 1) * r_step - 1);
    assert(pos_bin_of(s.cx) == xb && pos_bin_of(s.cy) == yb && ori_bin_of(s.angle) == ob);
    out.image = render_sprite(s);
    out.attributes = {{"shape", s.shape},
                      {"x_bin", xb},
                      {"y_bin", yb},
                      {"orientation_bin", ob},
                      {"scale_bin", sb}};
    return out;
  }
  // objects: 1..10 objects anywhere on the floor.
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

}  // namespace petl::data

// dSprites-like sprites of the embedded suite: shape tests in the sprite's own frame, the
// supersampled renderer and the sprites_loc / sprites_ori tasks (see suite_sprites.h).
#include "datasets/suite_sprites.h"

#include <algorithm>

namespace petl::data::suite {

int64_t pos_bin_lo(int bin) { return kSpritePosLo + (kSpritePosHi - kSpritePosLo) * bin / kPosBins; }
int pos_bin_of(int64_t p) {
  const int64_t b = (p - kSpritePosLo) * kPosBins / (kSpritePosHi - kSpritePosLo);
  return int(std::clamp<int64_t>(b, 0, kPosBins - 1));
}
int ori_bin_of(int angle) {
  const int a = ((angle + kOriBinWidth / 2) % kTurn + kTurn) % kTurn;
  return a / kOriBinWidth;
}

namespace {

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

}  // namespace

Image8 render_sprite(const Sprite& s) {
  Canvas canvas(kSceneSize, kSceneSize);
  const int64_t c = cos_q14(s.angle), sn = sin_q14(s.angle);
  const Rgb white{255, 255, 255};
  canvas.for_box(s.cx - s.r, s.cy - s.r, s.cx + s.r, s.cy + s.r, [&](int64_t x, int64_t y, int sx, int sy) {
    const int64_t dx = x - s.cx, dy = y - s.cy;  // y grows downwards
    const int64_t u = (dx * c - dy * sn) / kQ14;
    const int64_t v = (-dx * sn - dy * c) / kQ14;
    if (sprite_contains(s.shape, u, v, s.r)) canvas.set(sx, sy, white);
  });
  return canvas.downsample();
}

Image8 render_sprites_loc(int label, Rng& rng) {
  Sprite s;
  s.shape = rng.pick(3);
  s.r = rng.uniform(kSpriteRLo, 11 * kOne);
  s.angle = rng.pick(kTurn);
  s.cx = inner_of_bin(rng, pos_bin_lo(label), pos_bin_lo(label + 1) - pos_bin_lo(label));
  s.cy = rng.uniform(kSpritePosLo, kSpritePosHi);
  return render_sprite(s);
}

Image8 render_sprites_ori(int label, Rng& rng) {
  Sprite s;
  s.shape = kArrow + rng.pick(3);
  s.r = rng.uniform(9 * kOne, kSpriteRHi);
  s.angle = label * kOriBinWidth + int(rng.uniform(-170, 170));
  s.cx = rng.uniform(kSpritePosLo, kSpritePosHi);
  s.cy = rng.uniform(kSpritePosLo, kSpritePosHi);
  return render_sprite(s);
}

}  // namespace petl::data::suite

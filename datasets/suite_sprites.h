// Internal to datasets/: dSprites-like sprites of the embedded suite — one white shape on black,
// with the position, orientation and scale bins that label the sprites tasks and upstream data.
#pragma once
#include <cstdint>

#include "datasets/image.h"
#include "datasets/suite_random.h"
#include "datasets/suite_raster.h"

namespace petl::data::suite {

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
int64_t pos_bin_lo(int bin);
int pos_bin_of(int64_t p);
// Orientation bins: 8 bins of 45° centred on multiples of 45° (bin 0 = pointing right).
constexpr int kOriBins = 8;
constexpr int kOriBinWidth = kTurn / kOriBins;  // 512
int ori_bin_of(int angle);
// Scale: bounding radius in [6, 12] px, 4 bins for upstream labels.
constexpr int64_t kSpriteRLo = 6 * kOne, kSpriteRHi = 12 * kOne;
constexpr int kScaleBins = 4;

// The sprite, white on black, 64×64 RGB.
Image8 render_sprite(const Sprite& s);

// sprites_loc: square / ellipse / heart, label = x bin of the centre.
Image8 render_sprites_loc(int label, Rng& rng);
// sprites_ori: arrow / L / T, label = orientation bin (central ±15° of each 45° bin).
Image8 render_sprites_ori(int label, Rng& rng);

}  // namespace petl::data::suite

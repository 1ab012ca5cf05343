// Internal to datasets/: CLEVR-like object scenes of the embedded suite — shaded spheres, cubes and
// cylinders on a grey floor seen by a pinhole camera, and the objects_count / objects_dist tasks.
//
// A pinhole camera at height 1 looking over a grey floor: a floor point at depth z (Q12 world
// units) appears at screen row kHorizon + kFocal/z, and a world length L at depth z spans
// kFocal·L/z pixels. Farther objects are higher in the image and smaller.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "datasets/image.h"
#include "datasets/suite_random.h"
#include "datasets/suite_raster.h"

namespace petl::data::suite {

enum ObjectShape { kSphere = 0, kCube, kCylinder, kNumObjectShapes };
constexpr int kNumColours = 8;  // CLEVR's gray, red, blue, green, brown, purple, cyan, yellow

struct SceneObject {
  int shape = kSphere, colour = 0, size = 0, metal = 0;
  int64_t z = 0;                          // depth, Q12
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
int dist_bin_of(int64_t ground_y);
// Floor rows usable by any object: row 9.5 keeps the top of a large far object in the image.
constexpr int64_t kSceneFarY = 9 * kOne + kOne / 2, kSceneNearY = kDistNearY;

// Tight spacing for counting (bounding circles may overlap by 10% only: objects do not occlude
// each other), looser for the distance scenes and upstream scenes.
constexpr int kSpacingCount = 230, kSpacingLoose = 180;

Floor draw_floor(Rng& rng);

// Places objects at the floor rows drawn by draw_rows(rng) (one per object), redrawing the
// whole scene until every object fits; objects keep at least spacing/256 · the sum of their
// bounding radii between centres.
using DrawRows = std::function<std::vector<int64_t>(Rng&)>;
std::vector<SceneObject> make_scene(Rng& rng, int spacing, const DrawRows& draw_rows);

// The floor, contact shadows and the objects (farthest first), 64×64 RGB.
Image8 render_scene(const std::vector<SceneObject>& objects, const Floor& floor);

// objects_count: 3..10 objects on floor rows 12..52, label = count - 3.
Image8 render_objects_count(int label, Rng& rng);
// objects_dist: 2..5 objects; the nearest one's contact row lies in the central 70% of the
// label's bin, every other object at least 2 rows higher (farther).
Image8 render_objects_dist(int label, Rng& rng);

}  // namespace petl::data::suite

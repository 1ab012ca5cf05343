// CLEVR-like object scenes of the embedded suite: camera, object placement, shaded drawing of
// spheres, cubes and cylinders, and the objects_count / objects_dist tasks (see suite_scenes.h).
#include "datasets/suite_scenes.h"

#include <algorithm>
#include <cassert>
#include <numeric>

namespace petl::data::suite {

namespace {

constexpr int64_t kHorizonQ8 = -16 * kOne;
constexpr int64_t kFocalPx = 76;
constexpr int64_t kWorldRadiusQ12[2] = {369, 573};  // small 0.09, large 0.14
const Rgb kPalette[kNumColours] = {                 // CLEVR's gray, red, blue, green, brown, purple, cyan, yellow
    {87, 87, 87},  {173, 35, 35},  {42, 75, 215},  {29, 105, 20},
    {129, 74, 25}, {129, 38, 192}, {41, 208, 208}, {255, 238, 51}};
// Light from the upper left, in front (x right, y down, z towards the viewer), and the half
// vector between it and the view direction, Q12.
constexpr int64_t kLx = -1845, kLy = -2460, kLz = 2706;
constexpr int64_t kHx = -1012, kHy = -1349, kHz = 3733;

int64_t depth_from_ground_y(int64_t ground_y_q8) { return kFocalPx * kOne * kQ12 / (ground_y_q8 - kHorizonQ8); }
int64_t ground_y_from_depth(int64_t z) { return kHorizonQ8 + kFocalPx * kOne * kQ12 / z; }

int64_t dist_bin_hi(int bin) { return kDistNearY - (kDistNearY - kDistFarY) * bin / kDistBins; }

// Random attributes at the given floor row, at a random x with its bounding circle inside the
// image, away from the others (centre distance >= spacing/256 · sum of bounding radii).
bool place_object(Rng& rng, int64_t ground_y, int spacing, const std::vector<SceneObject>& placed, SceneObject& o) {
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
    const int64_t shade = 64 + ndl * 192 / kQ12;   // ambient 0.25 + diffuse 0.75
    canvas.set(sx, sy, scale(base, shade, s * spec_strength / kQ12));
  });
}

void draw_cube(Canvas& canvas, const SceneObject& o) {
  // Oblique view of an axis-aligned cube: front face, top face receding up-right, right face.
  const int64_t w = frac(o.rho, 205);                  // half side 0.8 rho
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
  canvas.for_box(o.cx - rc, y_top - eb, o.cx + rc, o.ground_y, [&](int64_t x, int64_t y, int sx, int sy) {
    if (in_cap(x, y, y_top)) {
      canvas.set(sx, sy, scale(base, 240));
    } else if ((iabs(x - o.cx) <= rc && y >= y_top && y <= y_bottom) || in_cap(x, y, y_bottom)) {
      const int64_t nx = std::clamp<int64_t>((x - o.cx) * kQ12 / rc, -kQ12, kQ12);
      const int64_t nz = int64_t(isqrt(uint64_t(kQ12 * kQ12 - nx * nx)));
      const int64_t ndl = std::max<int64_t>(0, (nx * kLx + nz * kLz) / kQ12);
      int64_t s = std::max<int64_t>(0, (nx * kHx + nz * kHz) / kQ12);
      for (int i = 0; i < 4; ++i) s = s * s / kQ12;  // (n·h)^16
      canvas.set(sx, sy, scale(base, 64 + ndl * 192 / kQ12, s * spec_strength / kQ12));
    }
  });
}

}  // namespace

int dist_bin_of(int64_t ground_y) {
  const int64_t b = (kDistNearY - ground_y) * kDistBins / (kDistNearY - kDistFarY);
  return int(std::clamp<int64_t>(b, 0, kDistBins - 1));
}

Floor draw_floor(Rng& rng) {
  Floor f;
  f.grey = int(rng.uniform(110, 140));
  f.tilt = int(rng.uniform(-6, 6));
  f.tint = int(rng.uniform(-5, 5));
  return f;
}

std::vector<SceneObject> make_scene(Rng& rng, int spacing, const DrawRows& draw_rows) {
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
      if (dx * dx * b * b + dy * dy * a * a <= a * a * b * b) shadow[size_t(sy) * canvas.sub_w() + sx] = 1;
    });
  }
  // Floor with a mild gradient: brighter near the camera (±12), a small left-right tilt and a
  // slight warm/cool tint.
  const int64_t half = kSceneSize * kOne / 2;
  std::vector<int64_t> col_term(canvas.sub_w());
  for (int sx = 0; sx < canvas.sub_w(); ++sx) col_term[sx] = (Canvas::centre(sx) - half) * floor.tilt / half;
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
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return objects[a].z > objects[b].z; });
  for (size_t i : order) {
    const auto& o = objects[i];
    if (o.shape == kSphere)
      draw_sphere(canvas, o);
    else if (o.shape == kCube)
      draw_cube(canvas, o);
    else
      draw_cylinder(canvas, o);
  }
  return canvas.downsample();
}

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

}  // namespace petl::data::suite

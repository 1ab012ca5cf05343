// The CPU kernel of attention over frozen keys and values (models/kv_attention.h): plain loops
// over raw pointers, no LibTorch, so this translation unit compiles in a second at -O3.
//
// For each image it streams the image's K and V rows once (float32 or float16, converted a row
// at a time: no converted copy of the batch ever exists), computing for every head h and query t
//   forward:  s = scale·q·Kᵀ, a = softmax(s) (max, exp(s − max), · 1/Σ, as ATen's CPU softmax),
//             o = a·V;
//   backward: g_a = g_o·Vᵀ, g_s = a ⊙ (g_a − Σ_n a·g_a) · scale, g_q = g_s·K.
// One image is one thread's work, its sums in a fixed order: results do not depend on the number
// of threads. Where the processor has AVX2, FMA and F16C (checked at run time) vector code runs;
// elsewhere the portable loops.
#pragma once
#include <cstdint>

namespace petl::kv_kernel {

// K or V of one layer: element (b, h, n, d) at data + r·sb + h·sh + n·sn + d (d contiguous), where
// r = index[b] when an index is given (image b of the batch is row index[b] of a resident store:
// read in place, never gathered into a copy), else r = b.
struct Rows {
  const void* data = nullptr;
  bool half = false;  // float16 (IEEE binary16) elements, else float32
  int64_t sb = 0, sh = 0, sn = 0;
  const int64_t* index = nullptr;
};

struct Shape {
  int64_t H = 0, T = 0, N = 0, dh = 0;
  float scale = 1;
};

// Images [b0, b1). q, o: (B, H, T, dh) contiguous float32; a: (B, H, T, N) contiguous float32.
void forward(const float* q, const Rows& k, const Rows& v, const Shape& s, int64_t b0, int64_t b1, float* a, float* o);

// Images [b0, b1). go, gq: (B, H, T, dh) contiguous; a as forward wrote it; scratch: T·N floats.
void backward(const float* go, const float* a, const Rows& k, const Rows& v, const Shape& s, int64_t b0, int64_t b1,
              float* gq, float* scratch);

// Whether the vector code runs (on this processor, unless forced off).
bool vectorized();
// Tests: run the portable loops even where the vector code could (the path of other processors).
void force_portable(bool on);

}  // namespace petl::kv_kernel

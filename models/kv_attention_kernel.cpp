#include "models/kv_attention_kernel.h"

#include <algorithm>
#include <atomic>
#include <c10/util/Half.h>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PETL_KV_X86 1
#endif

namespace petl::kv_kernel {
namespace {

// The rows of one (image, head): row n (dh elements) at data + n·stride.
struct HeadRows {
  const void* data;
  bool half;
  int64_t stride;
  const void* at(int64_t n) const {
    return half ? static_cast<const void*>(static_cast<const uint16_t*>(data) + n * stride)
                : static_cast<const void*>(static_cast<const float*>(data) + n * stride);
  }
};

// The two products of a head, over its N rows r_n:
//   scores: out[t·N + n] = scale · Σ_d x[t·dh + d] · r_n[d]          (T×dh · (N×dh)ᵀ)
//   accum:  y[t·dh + d] += Σ_n w[t·N + n] · r_n[d], n ascending       (T×N · N×dh)
using ScoresFn = void (*)(const float* x, const HeadRows& rows, int64_t T, int64_t N, int64_t dh, float scale,
                          float* out);
using AccumFn = void (*)(const float* w, const HeadRows& rows, int64_t T, int64_t N, int64_t dh, float* y);

constexpr int64_t kMaxDh = 1024;

// Row n as float32: the row itself, or converted into buf.
const float* row_portable(const HeadRows& rows, int64_t n, int64_t dh, float* buf) {
  if (!rows.half) return static_cast<const float*>(rows.at(n));
  const auto* h = static_cast<const uint16_t*>(rows.at(n));
  for (int64_t d = 0; d < dh; ++d) buf[d] = c10::detail::fp16_ieee_to_fp32_value(h[d]);
  return buf;
}

void scores_portable(const float* x, const HeadRows& rows, int64_t T, int64_t N, int64_t dh, float scale, float* out) {
  float buf[kMaxDh];
  for (int64_t n = 0; n < N; ++n) {
    const float* r = row_portable(rows, n, dh, buf);
    for (int64_t t = 0; t < T; ++t) {
      float s = 0;
      for (int64_t d = 0; d < dh; ++d) s += x[t * dh + d] * r[d];
      out[t * N + n] = s * scale;
    }
  }
}

void accum_portable(const float* w, const HeadRows& rows, int64_t T, int64_t N, int64_t dh, float* y) {
  float buf[kMaxDh];
  for (int64_t n = 0; n < N; ++n) {
    const float* r = row_portable(rows, n, dh, buf);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < dh; ++d) y[t * dh + d] += w[t * N + n] * r[d];
  }
}

#ifdef PETL_KV_X86
#define PETL_AVX2 __attribute__((target("avx2,fma,f16c")))

PETL_AVX2 const float* row_avx2(const HeadRows& rows, int64_t n, int64_t dh, float* buf) {
  if (!rows.half) return static_cast<const float*>(rows.at(n));
  const auto* h = static_cast<const uint16_t*>(rows.at(n));
  int64_t d = 0;
  for (; d + 8 <= dh; d += 8)
    _mm256_storeu_ps(buf + d, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + d))));
  for (; d < dh; ++d) buf[d] = c10::detail::fp16_ieee_to_fp32_value(h[d]);
  return buf;
}

// The sums of the 8 lanes of a, b, c, d, in one vector (a fixed order of additions).
PETL_AVX2 __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

PETL_AVX2 float hsum1(__m256 a) {
  const __m256 z = _mm256_setzero_ps();
  return _mm_cvtss_f32(hsum4(a, z, z, z));
}

// Four rows at a time: each query row is loaded once per four dot products, four independent
// accumulator chains. dh not a multiple of 8: the tail in scalar code.
PETL_AVX2 void scores_avx2(const float* x, const HeadRows& rows, int64_t T, int64_t N, int64_t dh, float scale,
                           float* out) {
  alignas(32) float buf[4 * kMaxDh];
  const int64_t d8 = dh & ~int64_t(7);
  const __m128 sc = _mm_set1_ps(scale);
  int64_t n = 0;
  for (; n + 4 <= N; n += 4) {
    const float* r[4];
    for (int j = 0; j < 4; ++j) r[j] = row_avx2(rows, n + j, dh, buf + j * kMaxDh);
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x + t * dh;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t d = 0; d < d8; d += 8) {
        const __m256 xv = _mm256_loadu_ps(xt + d);
        a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r[0] + d), a0);
        a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r[1] + d), a1);
        a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r[2] + d), a2);
        a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r[3] + d), a3);
      }
      alignas(16) float s[4];
      _mm_store_ps(s, hsum4(a0, a1, a2, a3));
      for (int j = 0; j < 4; ++j) {
        for (int64_t d = d8; d < dh; ++d) s[j] += xt[d] * r[j][d];
      }
      _mm_storeu_ps(out + t * N + n, _mm_mul_ps(_mm_load_ps(s), sc));
    }
  }
  for (; n < N; ++n) {
    const float* r = row_avx2(rows, n, dh, buf);
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x + t * dh;
      __m256 a = _mm256_setzero_ps();
      for (int64_t d = 0; d < d8; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(xt + d), _mm256_loadu_ps(r + d), a);
      float s = hsum1(a);
      for (int64_t d = d8; d < dh; ++d) s += xt[d] * r[d];
      out[t * N + n] = s * scale;
    }
  }
}

// Four rows at a time: each output row is loaded and stored once per four rows, the additions in
// n order (as the portable loop).
PETL_AVX2 void accum_avx2(const float* w, const HeadRows& rows, int64_t T, int64_t N, int64_t dh, float* y) {
  alignas(32) float buf[4 * kMaxDh];
  const int64_t d8 = dh & ~int64_t(7);
  int64_t n = 0;
  for (; n + 4 <= N; n += 4) {
    const float* r[4];
    for (int j = 0; j < 4; ++j) r[j] = row_avx2(rows, n + j, dh, buf + j * kMaxDh);
    for (int64_t t = 0; t < T; ++t) {
      const float* wt = w + t * N + n;
      const __m256 c0 = _mm256_set1_ps(wt[0]), c1 = _mm256_set1_ps(wt[1]), c2 = _mm256_set1_ps(wt[2]),
                   c3 = _mm256_set1_ps(wt[3]);
      float* yt = y + t * dh;
      for (int64_t d = 0; d < d8; d += 8) {
        __m256 v = _mm256_loadu_ps(yt + d);
        v = _mm256_fmadd_ps(c0, _mm256_loadu_ps(r[0] + d), v);
        v = _mm256_fmadd_ps(c1, _mm256_loadu_ps(r[1] + d), v);
        v = _mm256_fmadd_ps(c2, _mm256_loadu_ps(r[2] + d), v);
        v = _mm256_fmadd_ps(c3, _mm256_loadu_ps(r[3] + d), v);
        _mm256_storeu_ps(yt + d, v);
      }
      for (int64_t d = d8; d < dh; ++d)
        for (int j = 0; j < 4; ++j) yt[d] += wt[j] * r[j][d];
    }
  }
  for (; n < N; ++n) {
    const float* r = row_avx2(rows, n, dh, buf);
    for (int64_t t = 0; t < T; ++t) {
      const __m256 c = _mm256_set1_ps(w[t * N + n]);
      float* yt = y + t * dh;
      for (int64_t d = 0; d < d8; d += 8)
        _mm256_storeu_ps(yt + d, _mm256_fmadd_ps(c, _mm256_loadu_ps(r + d), _mm256_loadu_ps(yt + d)));
      for (int64_t d = d8; d < dh; ++d) yt[d] += w[t * N + n] * r[d];
    }
  }
}

bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif

struct Ops {
  ScoresFn scores = scores_portable;
  AccumFn accum = accum_portable;
  bool vector = false;
};

std::atomic<bool> g_portable{false};

const Ops& ops() {
  static const Ops best = [] {
    Ops r;
#ifdef PETL_KV_X86
    if (has_avx2()) r = {scores_avx2, accum_avx2, true};
#endif
    return r;
  }();
  static const Ops portable;
  return g_portable.load(std::memory_order_relaxed) ? portable : best;
}

HeadRows head_rows(const Rows& r, int64_t b, int64_t h) {
  const int64_t off = (r.index ? r.index[b] : b) * r.sb + h * r.sh;
  return {r.half ? static_cast<const void*>(static_cast<const uint16_t*>(r.data) + off)
                 : static_cast<const void*>(static_cast<const float*>(r.data) + off),
          r.half, r.sn};
}

// Each row (length N, `rows` of them) replaced by its softmax, as ATen's CPU kernel forms it.
void softmax_rows(float* x, int64_t rows, int64_t N) {
  for (int64_t i = 0; i < rows; ++i) {
    float* r = x + i * N;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t n = 0; n < N; ++n) m = std::max(m, r[n]);
    float sum = 0;
    for (int64_t n = 0; n < N; ++n) sum += (r[n] = std::exp(r[n] - m));
    const float inv = 1.0f / sum;
    for (int64_t n = 0; n < N; ++n) r[n] *= inv;
  }
}

}  // namespace

bool vectorized() { return ops().vector; }

void force_portable(bool on) { g_portable = on; }

void forward(const float* q, const Rows& k, const Rows& v, const Shape& s, int64_t b0, int64_t b1, float* a, float* o) {
  const Ops& f = ops();
  const int64_t H = s.H, T = s.T, N = s.N, dh = s.dh;
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t i = b * H + h;  // (image, head): its T query rows
      float* ah = a + i * T * N;
      float* oh = o + i * T * dh;
      f.scores(q + i * T * dh, head_rows(k, b, h), T, N, dh, s.scale, ah);
      softmax_rows(ah, T, N);
      std::fill(oh, oh + T * dh, 0.0f);
      f.accum(ah, head_rows(v, b, h), T, N, dh, oh);
    }
}

void backward(const float* go, const float* a, const Rows& k, const Rows& v, const Shape& s, int64_t b0, int64_t b1,
              float* gq, float* scratch) {
  const Ops& f = ops();
  const int64_t H = s.H, T = s.T, N = s.N, dh = s.dh;
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t i = b * H + h;
      const float* ah = a + i * T * N;
      float* g = scratch;  // (T, N): the gradient of a, then of the unscaled scores
      f.scores(go + i * T * dh, head_rows(v, b, h), T, N, dh, 1.0f, g);
      for (int64_t t = 0; t < T; ++t) {  // softmax backward: a ⊙ (g − Σ a·g), then · scale
        const float* ar = ah + t * N;
        float* gr = g + t * N;
        float dot = 0;
        for (int64_t n = 0; n < N; ++n) dot += ar[n] * gr[n];
        for (int64_t n = 0; n < N; ++n) gr[n] = ar[n] * (gr[n] - dot) * s.scale;
      }
      float* gqh = gq + i * T * dh;
      std::fill(gqh, gqh + T * dh, 0.0f);
      f.accum(g, head_rows(k, b, h), T, N, dh, gqh);
    }
}

}  // namespace petl::kv_kernel

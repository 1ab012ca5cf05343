// frozen_kv_attention: values and q's gradient equal to the plain autograd expression (to round-off
// with the CPU kernel; bit for bit through ATen's operations), for float32 K/V (live) and float16
// K/V (resident features, converted per use); the kernel deterministic across threads and
// layouts; backward keeps the float16 K/V, not a float32 copy; under autocast and without
// gradients it is the plain expression.
#include <cmath>
#include <gtest/gtest.h>
#include <tuple>

#include "harness/train/memory_meter.h"
#include "models/kv_attention.h"
#include "models/kv_attention_kernel.h"

using namespace petl;

namespace {
struct Out {
  torch::Tensor o, gq;
};
Out run(bool fused, const torch::Tensor& q0, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& go,
        double scale, int64_t chunk = 0) {
  auto q = q0.clone().requires_grad_(true);
  auto qv = q.permute({0, 2, 1, 3});  // non-contiguous, as attend_with's
  torch::Tensor o;
  if (fused) {
    o = frozen_kv_attention(qv, k, v, scale, chunk);
  } else {
    auto kf = k.to(torch::kFloat32), vf = v.to(torch::kFloat32);
    o = torch::matmul((torch::matmul(qv, kf.transpose(-2, -1)) * scale).softmax(-1), vf);
  }
  o.backward(go);
  return {o.detach(), q.grad()};
}
}  // namespace

// The CPU kernel against the plain autograd expression: values and q's gradient to float round-off
// (the kernel sums in another order than BLAS), for float32 and float16 K/V, shapes with tails
// (dh not a multiple of 8, N not a multiple of 4), one and several query tokens.
TEST(KvAttention, MatchesThePlainExpression) {
  torch::manual_seed(3);
  for (auto [T, N, dh] : {std::tuple<int64_t, int64_t, int64_t>{4, 37, 16}, {1, 197, 64}, {3, 10, 20}}) {
    const int64_t B = 5, H = 3;
    auto q = torch::randn({B, T, H, dh});
    auto k = torch::randn({B, H, N, dh}), v = torch::randn({B, H, N, dh});
    auto go = torch::randn({B, H, T, dh});
    const double scale = 1.0 / std::sqrt(double(dh));
    for (auto dtype : {torch::kFloat32, torch::kFloat16}) {
      auto kk = k.to(dtype), vv = v.to(dtype);
      auto plain = run(false, q, kk, vv, go, scale);
      auto fused = run(true, q, kk, vv, go, scale);
      EXPECT_TRUE(torch::allclose(plain.o, fused.o, 1e-5, 1e-6))
          << dtype << " T " << T << " max diff " << (plain.o - fused.o).abs().max().item<double>();
      EXPECT_TRUE(torch::allclose(plain.gq, fused.gq, 1e-5, 1e-6))
          << dtype << " T " << T << " max diff " << (plain.gq - fused.gq).abs().max().item<double>();
      EXPECT_FALSE(torch::equal(plain.gq, fused.gq) && dh == 64) << "the kernel did not run";
    }
  }
}

// The portable loops (processors without AVX2/FMA/F16C) agree with the plain expression and with
// the vector code to float round-off; where the vector code exists it is the one that runs.
TEST(KvAttention, PortableLoopsMatchTheVectorCode) {
  torch::manual_seed(4);
  const int64_t B = 3, H = 2, T = 3, N = 23, dh = 20;  // tails in both loops
  auto q = torch::randn({B, T, H, dh});
  auto k = torch::randn({B, H, N, dh}).to(torch::kHalf), v = torch::randn({B, H, N, dh}).to(torch::kHalf);
  auto go = torch::randn({B, H, T, dh});
  auto plain = run(false, q, k, v, go, 0.3);
  auto vector = run(true, q, k, v, go, 0.3);
  kv_kernel::force_portable(true);
  EXPECT_FALSE(kv_kernel::vectorized());
  auto portable = run(true, q, k, v, go, 0.3);
  kv_kernel::force_portable(false);
#if defined(__x86_64__)
  EXPECT_EQ(kv_kernel::vectorized(),
            __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"));
#endif
  for (const auto* other : {&plain, &vector}) {
    EXPECT_TRUE(torch::allclose(portable.o, other->o, 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(portable.gq, other->gq, 1e-5, 1e-6));
  }
}

// K/V that broadcast over the images (one image's K/V for a batch of queries) are not the kernel's:
// they run the plain expression, which broadcasts.
TEST(KvAttention, BroadcastKvRunsThePlainExpression) {
  auto q = torch::randn({3, 2, 4, 8}), k = torch::randn({1, 2, 9, 8}), v = torch::randn({1, 2, 9, 8});
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(frozen_kv_attention(q, k, v, 0.5),
                           torch::matmul((torch::matmul(q, k.transpose(-2, -1)) * 0.5).softmax(-1), v)));
}

// With the kernel off (GPUs, other dtypes), the ATen operations are bit-identical to the plain
// expression, the chunked conversion of float16 K/V included.
TEST(KvAttention, AtenPathBitIdenticalToThePlainExpression) {
  torch::manual_seed(3);
  const int64_t B = 5, H = 3, T = 4, N = 37, dh = 16;
  auto q = torch::randn({B, T, H, dh});
  auto k = torch::randn({B, H, N, dh}), v = torch::randn({B, H, N, dh});
  auto go = torch::randn({B, H, T, dh});
  kv_attention_use_kernel(false);
  for (auto dtype : {torch::kFloat32, torch::kFloat16}) {
    auto kk = k.to(dtype), vv = v.to(dtype);
    auto plain = run(false, q, kk, vv, go, 0.25);
    for (int64_t chunk : {0, 2}) {  // automatic (one chunk here), and 2 images per chunk (3 chunks)
      auto fused = run(true, q, kk, vv, go, 0.25, chunk);
      EXPECT_TRUE(torch::equal(plain.o, fused.o)) << dtype << " chunk " << chunk;
      EXPECT_TRUE(torch::equal(plain.gq, fused.gq)) << dtype << " chunk " << chunk;
    }
  }
  kv_attention_use_kernel(true);
}

// The kernel's sums run in one order per (image, head), whatever the threads and wherever the K/V
// lie: 1 and 2 threads, a feature cache's layout (heads outer) and a live qkv's (tokens outer)
// give bit-identical values and gradients.
TEST(KvAttention, KernelIsDeterministicAcrossThreadsAndLayouts) {
  torch::manual_seed(5);
  const int64_t B = 6, H = 4, T = 2, N = 50, dh = 24;
  auto q = torch::randn({B, T, H, dh});
  auto go = torch::randn({B, H, T, dh});
  auto kv_cache = torch::randn({B, 2, H, N, dh}).to(torch::kHalf);                         // (B, 2, H, N, dh)
  auto kv_live = kv_cache.permute({0, 3, 1, 2, 4}).contiguous().permute({0, 2, 3, 1, 4});  // tokens outer
  ASSERT_TRUE(torch::equal(kv_cache, kv_live));
  ASSERT_NE(kv_cache.strides(), kv_live.strides());
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  auto one = run(true, q, kv_cache.select(1, 0), kv_cache.select(1, 1), go, 0.2);
  at::set_num_threads(2);
  auto two = run(true, q, kv_cache.select(1, 0), kv_cache.select(1, 1), go, 0.2);
  auto live = run(true, q, kv_live.select(1, 0), kv_live.select(1, 1), go, 0.2);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.o, two.o) && torch::equal(one.gq, two.gq));
  EXPECT_TRUE(torch::equal(one.o, live.o) && torch::equal(one.gq, live.gq));
}

TEST(KvAttention, BackwardKeepsFloat16KvNotAFloat32Copy) {
  MemoryMeter::install();
  const int64_t B = 8, H = 4, T = 2, N = 197, dh = 64;
  auto q = torch::randn({B, H, T, dh}, torch::requires_grad());
  auto k = torch::randn({B, H, N, dh}).to(torch::kFloat16), v = torch::randn({B, H, N, dh}).to(torch::kFloat16);
  const int64_t base = MemoryMeter::live_bytes();
  auto o = frozen_kv_attention(q, k, v, 0.125);
  // Kept: the output and the attention probabilities (B·H·T·N floats); a float32 K or V would add
  // B·H·N·dh·4 bytes each.
  EXPECT_EQ(MemoryMeter::live_bytes() - base, (B * H * T * dh + B * H * T * N) * 4);
  o.sum().backward();
  EXPECT_TRUE(q.grad().defined());
}

// Without gradients (evaluation; a recomputed layer's first pass) the kernel gives the values it
// gives in training, bit for bit; with the kernel off it is the plain expression.
TEST(KvAttention, WithoutGradientsTheSameValues) {
  auto q = torch::randn({2, 2, 3, 8}), k = torch::randn({2, 2, 9, 8}), v = torch::randn({2, 2, 9, 8});
  auto kh = k.to(torch::kHalf);  // converted per use
  for (const auto& kk : {k, kh}) {
    auto trained = frozen_kv_attention(q.clone().requires_grad_(true), kk, v, 0.5).detach();
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::equal(frozen_kv_attention(q, kk, v, 0.5), trained));
  }
  torch::NoGradGuard ng;
  kv_attention_use_kernel(false);
  auto plain = [&](const torch::Tensor& kk) {
    return torch::matmul((torch::matmul(q, kk.transpose(-2, -1)) * 0.5).softmax(-1), v);
  };
  EXPECT_TRUE(torch::equal(frozen_kv_attention(q, k, v, 0.5), plain(k)));
  EXPECT_TRUE(torch::equal(frozen_kv_attention(q, kh, v, 0.5), plain(kh.to(torch::kFloat))));
  kv_attention_use_kernel(true);
}

// A batch read in place from a resident store (rows: image b is store row rows[b], repeats allowed,
// the store a layer of a feature cache's (R, L, 2, H, N, dh) block) gives bit for bit the values and
// q's gradient of the same rows gathered into a copy — with the kernel, without gradients, and with
// the kernel off (where the rows are gathered first); forward keeps no copy of the batch's K/V.
TEST(KvAttention, ResidentRowsInPlaceEqualTheGatheredBatch) {
  MemoryMeter::install();
  torch::manual_seed(6);
  const int64_t R = 9, L = 2, H = 3, T = 2, N = 41, dh = 20;
  auto store = torch::randn({R, L, 2, H, N, dh}).to(torch::kHalf);
  auto k = store.select(1, 1).select(1, 0), v = store.select(1, 1).select(1, 1);  // (R, H, N, dh) views
  auto rows = torch::tensor({7, 2, 2, 5, 0}, torch::kInt64);
  const int64_t B = rows.size(0);
  auto q0 = torch::randn({B, H, T, dh});
  auto go = torch::randn({B, H, T, dh});
  auto kg = k.index_select(0, rows), vg = v.index_select(0, rows);
  auto pass = [&](bool in_place) {
    auto q = q0.clone().requires_grad_(true);
    const int64_t base = MemoryMeter::live_bytes();
    auto o = in_place ? frozen_kv_attention(q, k, v, 0.3, 0, rows) : frozen_kv_attention(q, kg, vg, 0.3);
    const int64_t kept = MemoryMeter::live_bytes() - base;
    o.backward(go);
    return std::make_tuple(o.detach(), q.grad(), kept);
  };
  for (bool kernel : {true, false}) {
    kv_attention_use_kernel(kernel);
    auto [o1, g1, kept1] = pass(true);
    auto [o2, g2, kept2] = pass(false);
    EXPECT_TRUE(torch::equal(o1, o2)) << "kernel " << kernel;
    EXPECT_TRUE(torch::equal(g1, g2)) << "kernel " << kernel;
    if (kernel) EXPECT_EQ(kept1, (B * H * T * dh + B * H * T * N) * 4);  // output + probabilities only
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::equal(frozen_kv_attention(q0, k, v, 0.3, 0, rows), o2)) << "kernel " << kernel;
  }
  kv_attention_use_kernel(true);
  auto bad = torch::tensor({0, 9}, torch::kInt64);
  torch::NoGradGuard ng;
  EXPECT_THROW(frozen_kv_attention(q0.narrow(0, 0, 2), k, v, 0.3, 0, bad), c10::Error);
  EXPECT_THROW(frozen_kv_attention(q0, k, v, 0.3, 0, bad), c10::Error);  // one row per image
}

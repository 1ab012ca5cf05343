// frozen_kv_attention: values and q's gradient bit-identical to the plain autograd expression, for
// float32 K/V (live) and float16 K/V (resident features, converted per use); backward keeps the
// float16 K/V, not a float32 copy; under autocast and without gradients it is the plain expression.
#include <gtest/gtest.h>

#include "harness/train/memory_meter.h"
#include "models/kv_attention.h"

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

TEST(KvAttention, BitIdenticalToThePlainExpression) {
  torch::manual_seed(3);
  const int64_t B = 5, H = 3, T = 4, N = 37, dh = 16;
  auto q = torch::randn({B, T, H, dh});
  auto k = torch::randn({B, H, N, dh}), v = torch::randn({B, H, N, dh});
  auto go = torch::randn({B, H, T, dh});
  const double scale = 0.25;
  for (auto dtype : {torch::kFloat32, torch::kFloat16}) {
    auto kk = k.to(dtype), vv = v.to(dtype);
    auto plain = run(false, q, kk, vv, go, scale);
    for (int64_t chunk : {0, 2}) {  // automatic (one chunk here), and 2 images per chunk (3 chunks)
      auto fused = run(true, q, kk, vv, go, scale, chunk);
      EXPECT_TRUE(torch::equal(plain.o, fused.o)) << dtype << " chunk " << chunk;
      EXPECT_TRUE(torch::equal(plain.gq, fused.gq)) << dtype << " chunk " << chunk << " max diff "
                                                    << (plain.gq - fused.gq).abs().max().item<double>();
    }
  }
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

TEST(KvAttention, WithoutGradientsItIsThePlainExpression) {
  torch::NoGradGuard ng;
  auto q = torch::randn({2, 2, 3, 8}), k = torch::randn({2, 2, 9, 8}), v = torch::randn({2, 2, 9, 8});
  auto plain = [&](const torch::Tensor& kk) {
    return torch::matmul((torch::matmul(q, kk.transpose(-2, -1)) * 0.5).softmax(-1), v);
  };
  EXPECT_TRUE(torch::equal(frozen_kv_attention(q, k, v, 0.5), plain(k)));
  auto kh = k.to(torch::kHalf);  // converted per use
  EXPECT_TRUE(torch::equal(frozen_kv_attention(q, kh, v, 0.5), plain(kh.to(torch::kFloat))));
}

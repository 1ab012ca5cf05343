// The backbone's extension points (BlockHooks, query-only attention) behave as documented, so
// later methods (LoRA, SSF, adapters, VPT, VQT, DTL, ...) can rely on them without rewriting a
// block: identity hooks change nothing; a constant qkv delta equals a bias shift; an fc1
// scale/shift equals rescaled weights; the K/V tap sees exactly the block's K/V; query-only
// attention of the tokens against their own K/V equals the block's attention branch.
#include <gtest/gtest.h>

#include "test_util.h"

using namespace petl;

namespace {
VisionTransformer tiny_vit() {
  torch::manual_seed(5);
  VisionTransformer vit(test::tiny_config());
  vit->init_weights(5);
  vit->eval();
  return vit;
}

struct IdentityHooks : BlockHooks {
  int calls = 0;
  torch::Tensor before_block(int, torch::Tensor x) override {
    ++calls;
    return x;
  }
  torch::Tensor after_block(int, torch::Tensor x) override {
    ++calls;
    return x;
  }
  torch::Tensor scale_shift(int, HookPoint, torch::Tensor t) override {
    ++calls;
    return t;
  }
  torch::Tensor qkv_delta(int, const torch::Tensor& u) override {
    ++calls;
    return torch::zeros({u.size(-1) * 3});
  }
  torch::Tensor mlp_bypass(int, const torch::Tensor& x, const torch::Tensor&) override {
    ++calls;
    return torch::zeros_like(x);
  }
  torch::Tensor after_mlp(int, torch::Tensor b) override {
    ++calls;
    return b;
  }
};
}  // namespace

TEST(BlockHooks, IdentityHooksChangeNothing) {
  auto vit = tiny_vit();
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 3, 32, 32});
  IdentityHooks h;
  auto a = vit->forward_cls(x);
  auto b = vit->forward_cls(x, &h);
  EXPECT_TRUE(torch::allclose(a, b, 0, 0));
  // per block: before, after, 6 scale/shift points, qkv delta, bypass, after_mlp; + 2 outside
  EXPECT_EQ(h.calls, 3 * (2 + 6 + 1 + 1 + 1) + 2);
}

TEST(BlockHooks, QkvDeltaEqualsBiasShift) {
  auto vit = tiny_vit(), ref = tiny_vit();
  torch::NoGradGuard ng;
  auto c = torch::randn({3 * 48}) * 0.1;
  struct Delta : BlockHooks {
    torch::Tensor c;
    torch::Tensor qkv_delta(int layer, const torch::Tensor&) override { return layer == 1 ? c : torch::Tensor(); }
  } h;
  h.c = c;
  ref->block_list_[1]->attn->qkv->bias.add_(c);
  auto x = torch::randn({2, 3, 32, 32});
  EXPECT_LE(test::max_rel_diff(vit->forward_cls(x, &h), ref->forward_cls(x)), 1e-6);
}

TEST(BlockHooks, Fc1ScaleShiftEqualsRescaledWeights) {
  auto vit = tiny_vit(), ref = tiny_vit();
  torch::NoGradGuard ng;
  auto s = 1 + torch::randn({192}) * 0.1, t = torch::randn({192}) * 0.1;
  struct SS : BlockHooks {
    torch::Tensor s, t;
    torch::Tensor scale_shift(int layer, HookPoint p, torch::Tensor x) override {
      return layer == 2 && p == HookPoint::fc1 ? x * s + t : x;
    }
  } h;
  h.s = s;
  h.t = t;
  auto& fc1 = ref->block_list_[2]->mlp->fc1;
  fc1->weight.mul_(s.unsqueeze(1));
  fc1->bias.mul_(s).add_(t);
  auto x = torch::randn({2, 3, 32, 32});
  EXPECT_LE(test::max_rel_diff(vit->forward_cls(x, &h), ref->forward_cls(x)), 1e-5);
}

TEST(BlockHooks, KvTapAndQueryOnlyAttentionMatchTheBlock) {
  auto vit = tiny_vit();
  torch::NoGradGuard ng;
  auto x0 = vit->embed(torch::randn({2, 3, 32, 32}));
  struct Tap : BlockHooks {
    std::vector<torch::Tensor> k, v;
    bool wants_kv() const override { return true; }
    void on_kv(int, const torch::Tensor& kk, const torch::Tensor& vv) override {
      k.push_back(kk.clone());
      v.push_back(vv.clone());
    }
  } tap;
  vit->forward_blocks(x0, &tap);
  ASSERT_EQ(tap.k.size(), 3u);
  auto x = x0;
  for (int i = 0; i < 3; ++i) {
    auto& blk = vit->block_list_[i];
    auto kv = blk->keys_values(x);
    EXPECT_TRUE(torch::equal(kv.first, tap.k[i]));
    EXPECT_TRUE(torch::equal(kv.second, tap.v[i]));
    // Query-only attention of the block's own tokens against its own K/V is its attention
    // branch: x + attend_with(...) + mlp_branch(...) reproduces the block (drop path off).
    auto x1 = x + blk->attend_with(blk->norm1(x), kv.first, kv.second);
    auto out = x1 + blk->mlp_branch(x1);
    auto ref = blk->forward(x);
    EXPECT_LE(test::max_rel_diff(out, ref), 1e-6) << "block " << i;
    x = ref;
  }
}

TEST(BlockHooks, PromptTokensCanBeInsertedAndRemoved) {
  auto vit = tiny_vit();
  torch::NoGradGuard ng;
  struct Prompts : BlockHooks {  // VPT-deep style: 4 prompt tokens after cls, replaced per block
    torch::Tensor p = torch::randn({3, 4, 48});
    torch::Tensor before_block(int layer, torch::Tensor x) override {
      auto pr = p[layer].unsqueeze(0).expand({x.size(0), -1, -1});
      if (layer == 0) return torch::cat({x.narrow(1, 0, 1), pr, x.narrow(1, 1, x.size(1) - 1)}, 1);
      return torch::cat({x.narrow(1, 0, 1), pr, x.narrow(1, 5, x.size(1) - 5)}, 1);
    }
  } h;
  auto x = vit->embed(torch::randn({2, 3, 32, 32}));
  auto y = vit->forward_blocks(x, &h);
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({2, 17 + 4, 48}));
  auto plain = vit->forward_blocks(x);
  EXPECT_FALSE(torch::allclose(y.select(1, 0), plain.select(1, 0)));  // prompts reach the cls token
}

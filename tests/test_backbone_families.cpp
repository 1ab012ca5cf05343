// Every registered method on every backbone family variant (models/backbone_api.h: methods see a
// Backbone, so a family is a layout and a set of block flags behind it). Each variant is the
// registry's own entry shrunk to a tiny size (width 48, 2 blocks, 4 heads, 32-px images of 8-px
// patches) so that refusals name the registry's alternative: DINOv2 with registers (reg_tokens 4,
// layer scale 1e-5), CLIP (QuickGELU, norm_pre, bias-free patch embedding), MAE fine-tuned
// (mean-of-patch-tokens pooling) and the supervised ViT. A method either builds and runs one
// training forward and backward there, or refuses at construction with a petl::ArgumentError naming
// itself, the architecture and the alternative; the set of refusals is pinned, so a change is seen.
// Then the interface's token layout: patch tokens after cls and the registers.
#include <gtest/gtest.h>
#include <map>
#include <set>
#include <utility>

#include "core/error.h"
#include "models/arch_registry.h"
#include "test_util.h"

using namespace petl;

namespace {

struct Variant {
  std::string name;  // how the test calls it
  std::string arch;  // the registry entry it shrinks
};

const std::vector<Variant>& variants() {
  static const std::vector<Variant> v = {{"dinov2_reg4", "vit_base_patch14_reg4_dinov2"},
                                         {"clip", "vit_base_patch16_clip_224"},
                                         {"mae_gap", "vit_base_patch16_224_mae_gap"},
                                         {"supervised", "vit_base_patch16_224_in21k"}};
  return v;
}

VitConfig tiny_of(const std::string& arch) {
  VitConfig c = vit_config_by_name(arch);
  c.img_size = 32;
  c.patch_size = 8;
  c.embed_dim = 48;
  c.depth = 2;
  c.num_heads = 4;
  return c;
}

}  // namespace

TEST(BackboneFamilies, VariantsCarryTheirFamilyFlags) {
  const VitConfig d = tiny_of("vit_base_patch14_reg4_dinov2");
  EXPECT_EQ(d.reg_tokens, 4);
  EXPECT_EQ(d.init_values, 1e-5);
  EXPECT_EQ(d.num_prefix_tokens(), 5);
  const VitConfig c = tiny_of("vit_base_patch16_clip_224");
  EXPECT_EQ(c.act, Activation::kQuickGelu);
  EXPECT_TRUE(c.pre_norm);
  EXPECT_FALSE(c.patch_bias);
  EXPECT_EQ(tiny_of("vit_base_patch16_224_mae_gap").pool, Pooling::kMeanPatchesFcNorm);
  const VitConfig s = tiny_of("vit_base_patch16_224_in21k");
  EXPECT_EQ(s.pool, Pooling::kClsAfterNorm);
  EXPECT_EQ(s.reg_tokens, 0);
}

TEST(BackboneFamilies, EveryMethodRunsOrRefusesNamingItself) {
  // (method, variant) pairs whose reference code has no place for the layout (methods/common.h).
  const std::set<std::pair<std::string, std::string>> expected_refusals = {
      {"convpass", "dinov2_reg4"},  // the bypass convolves [cls | g×g grid]: registers fit neither
      {"dtl_plus", "dinov2_reg4"},  // the fusion conv folds tokens 1..P into the grid
      {"vpt_deep", "mae_gap"},      // prompts join the sequence a mean-pooling backbone averages
      {"vpt_shallow", "mae_gap"}};
  const std::map<std::string, std::string> alternative = {{"dinov2_reg4", "use vit_base_patch14_dinov2"},
                                                          {"mae_gap", "use vit_base_patch16_224_mae"}};
  std::set<std::pair<std::string, std::string>> refused;
  int ran = 0;
  for (const auto& variant : variants()) {
    const VitConfig cfg = tiny_of(variant.arch);
    for (const auto& name : MethodRegistry::instance().names()) {
      SCOPED_TRACE(name + " on " + variant.name);
      VisionTransformer vit(cfg);
      vit->init_weights(1);
      vit->set_trainable(false);
      torch::manual_seed(0);
      std::shared_ptr<Method> m;
      try {
        m = test::make_method(name, vit, 3);
      } catch (const ArgumentError& e) {
        const std::string msg = e.what();
        EXPECT_EQ(msg.rfind(name + ": ", 0), 0u) << msg;
        EXPECT_NE(msg.find(variant.arch), std::string::npos) << msg;
        if (alternative.count(variant.name))
          EXPECT_NE(msg.find(alternative.at(variant.name)), std::string::npos) << msg;
        refused.insert({name, variant.name});
        continue;
      }
      m->train(true);
      torch::manual_seed(1);
      const auto x = torch::randn({2, 3, 32, 32});
      const auto logits = m->forward(x);
      ASSERT_EQ(logits.sizes(), torch::IntArrayRef({2, 3}));
      ASSERT_TRUE(torch::isfinite(logits).all().item<bool>());
      torch::nn::functional::cross_entropy(logits, torch::tensor({0, 2}, torch::kInt64)).backward();
      int with_grad = 0;
      for (const auto& [key, t] : m->trainable_parameters()) {
        if (!t.grad().defined()) continue;
        ++with_grad;
        EXPECT_TRUE(torch::isfinite(t.grad()).all().item<bool>()) << key;
      }
      EXPECT_GT(with_grad, 0);
      ++ran;
    }
  }
  EXPECT_EQ(refused, expected_refusals);
  EXPECT_EQ(ran + int(refused.size()), int(variants().size() * MethodRegistry::instance().names().size()));
}

TEST(BackboneFamilies, PatchTokensFollowClsAndTheRegisters) {
  torch::NoGradGuard ng;
  VisionTransformer vit(tiny_of("vit_base_patch14_reg4_dinov2"));
  vit->init_weights(1);
  vit->eval();
  Backbone& b = *vit;
  const auto tokens = b.forward_blocks(b.embed(torch::randn({2, 3, 32, 32})));
  ASSERT_EQ(tokens.size(1), 1 + 4 + 16);
  EXPECT_TRUE(torch::equal(b.patch_tokens(tokens), tokens.narrow(1, 5, 16)));
  EXPECT_TRUE(torch::equal(b.pool_tokens(tokens), tokens.select(1, 0)));  // cls pooling
  EXPECT_TRUE(torch::equal(b.pool(tokens), b.final_norm(tokens.select(1, 0))));
  EXPECT_THROW(b.patch_tokens(tokens.narrow(1, 0, 20)), Error);  // not the backbone's own sequence
  const auto [w, bias] = b.final_norm_affine();
  EXPECT_TRUE(w.is_same(vit->norm->weight) && bias.is_same(vit->norm->bias));
  EXPECT_EQ(&b.block(1), static_cast<BackboneBlock*>(vit->block_list_[1].get()));
}

TEST(BackboneFamilies, MeanPoolingAveragesOnlyThePatchTokens) {
  torch::NoGradGuard ng;
  VitConfig c = tiny_of("vit_base_patch14_reg4_dinov2");
  c.pool = Pooling::kMeanPatchesFcNorm;
  VisionTransformer vit(c);
  vit->init_weights(1);
  vit->eval();
  Backbone& b = *vit;
  const auto tokens = b.forward_blocks(b.embed(torch::randn({2, 3, 32, 32})));
  EXPECT_TRUE(torch::allclose(b.pool_tokens(tokens), tokens.narrow(1, 5, 16).mean(1)));
  EXPECT_TRUE(torch::allclose(b.pool(tokens), b.final_norm(tokens.narrow(1, 5, 16).mean(1))));
}

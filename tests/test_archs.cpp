// Every known architecture (models/vit.h: known_archs, the list `petl list` prints): its
// configuration by name, its parameter count from the analytic formula of a timm ViT (timm's own
// counts: ViT-B/16 85,798,656 and ViT-H/14 630,764,800 with num_classes=0), and for those small enough
// to write here, a checkpoint in timm names whose shapes alone infer the same architecture, loaded
// back strictly, and a forward pass of the expected shape.
#include <filesystem>
#include <gtest/gtest.h>

#include "models/checkpoint.h"
#include "models/vit.h"
#include "test_util.h"

using namespace petl;

namespace {

// timm VisionTransformer(num_classes=0): patch embedding, cls token, position embedding, `depth`
// blocks (two LayerNorms, qkv, proj, fc1, fc2) and the final LayerNorm.
int64_t timm_vit_parameters(const VitConfig& c) {
  const int64_t D = c.embed_dim, P = c.patch_size, N = c.num_tokens(), H = c.mlp_hidden();
  const int64_t patch = int64_t(c.in_chans) * P * P * D + D;
  const int64_t block = 2 * 2 * D + (D * 3 * D + 3 * D) + (D * D + D) + (D * H + H) + (H * D + D);
  return patch + D + N * D + c.depth * block + 2 * D;
}

class EveryArchitecture : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryArchitecture, CountsLoadsAndRunsAsTimm) {
  const VitConfig cfg = vit_config_by_name(GetParam());
  EXPECT_EQ(cfg.arch, GetParam());
  EXPECT_EQ(cfg.img_size % cfg.patch_size, 0);
  EXPECT_EQ(cfg.embed_dim % cfg.num_heads, 0);
  torch::NoGradGuard ng;
  VisionTransformer vit(cfg);
  EXPECT_EQ(vit->num_parameters(), timm_vit_parameters(cfg)) << GetParam();
  if (vit->num_parameters() > 100'000'000) return;  // ViT-L and ViT-H: a GiB or more to write
  vit->init_weights(1);
  const std::string dir = test::scratch_dir("arch_" + GetParam());
  const std::string file = dir + "/bare.safetensors";
  save_named_tensors(file, vit->named_parameters().pairs());  // timm names, no petl metadata
  const VitConfig inferred = infer_vit_config(file);
  EXPECT_EQ(inferred.img_size, cfg.img_size);
  EXPECT_EQ(inferred.patch_size, cfg.patch_size);
  EXPECT_EQ(inferred.embed_dim, cfg.embed_dim);
  EXPECT_EQ(inferred.depth, cfg.depth);
  EXPECT_EQ(inferred.num_heads, cfg.num_heads);
  VisionTransformer back(inferred);
  load_backbone(back, file);
  const auto x = torch::randn({2, 3, cfg.img_size, cfg.img_size});
  vit->eval();
  back->eval();
  const auto cls = vit->forward_cls(x);
  EXPECT_EQ(cls.sizes(), (std::vector<int64_t>{2, cfg.embed_dim}));
  EXPECT_TRUE(torch::equal(cls, back->forward_cls(x))) << GetParam();
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Known, EveryArchitecture, ::testing::ValuesIn(known_archs()),
                         [](const auto& info) { return info.param; });

TEST(EveryArchitecture, TheFormulaIsTimmsForTheTwoPublishedCounts) {
  EXPECT_EQ(timm_vit_parameters(vit_config_by_name("vit_base_patch16_224_in21k")), 85798656);
  EXPECT_EQ(timm_vit_parameters(vit_config_by_name("vit_huge_patch14_224_in21k")), 630764800);
}

}  // namespace

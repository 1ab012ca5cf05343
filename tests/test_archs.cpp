// Every entry of the architecture registry (models/arch_registry.h: what `petl list` prints and
// every lookup reads): its configuration by name and alias, its parameter count from the analytic
// formula of a timm ViT (timm's own counts: ViT-B/16 85,798,656 and ViT-H/14 630,764,800 with
// num_classes=0; MAE's and MoCo v3's ViT-B/16 have the same tensors), architecture inference from a
// file of its shapes in each of its layouts, and for each layout a checkpoint written in that
// layout's names (random weights, 2 blocks at a small image size: the names repeat per block),
// with one tensor under every ignored prefix, loaded back strictly and run forward. Then the MAE and
// MoCo v3 layouts' errors: a tensor outside the layout, or a near-miss of an ignored prefix, is
// named, never matched by suffix.
#include <algorithm>
#include <filesystem>
#include <gtest/gtest.h>

#include "core/error.h"
#include "models/arch_registry.h"
#include "models/checkpoint.h"
#include "models/vit.h"
#include "test_util.h"

using namespace petl;

namespace {

// timm VisionTransformer(num_classes=0): patch embedding (CLIP's without bias), cls token, registers
// (DINOv2), position embedding (cls + patches), norm_pre (CLIP), `depth` blocks (two LayerNorms, qkv,
// proj, fc1, fc2, DINOv2's two layer-scale gammas) and the final LayerNorm (MAE's fc_norm in its place).
int64_t timm_vit_parameters(const VitConfig& c) {
  const int64_t D = c.embed_dim, P = c.patch_size, N = c.pos_embed_rows(), H = c.mlp_hidden();
  const int64_t patch = int64_t(c.in_chans) * P * P * D + (c.patch_bias ? D : 0);
  const int64_t block =
      2 * 2 * D + (D * 3 * D + 3 * D) + (D * D + D) + (D * H + H) + (H * D + D) + (c.init_values > 0 ? 2 * D : 0);
  return patch + D + c.reg_tokens * D + N * D + (c.pre_norm ? 2 * D : 0) + c.depth * block + 2 * D;
}

std::vector<std::string> entry_names() { return known_archs(); }

// The config of the round trips: 2 blocks, 2x2 patches (4 for the 32-px minis).
VitConfig small(const ArchEntry& e) {
  VitConfig c = e.config;
  c.depth = 2;
  if (c.img_size > 2 * c.patch_size) c.img_size = 2 * c.patch_size;
  return c;
}

// The layout's marker tensor, when the file does not hold it yet (DINOv2's mask_token is ignored).
void with_marker(std::vector<std::pair<std::string, torch::Tensor>>& named, const CheckpointLayout& l,
                 const std::string& wrap) {
  if (l.marker.empty()) return;
  for (const auto& [k, v] : named)
    if (k == wrap + l.marker) return;
  named.emplace_back(wrap + l.marker, torch::ones({1, 3}));
}

// The model's tensors under `layout`'s file names, as the download holds them (MoCo v3's under the
// DataParallel "module." too), plus one tensor under every ignored prefix.
std::vector<std::pair<std::string, torch::Tensor>> in_layout(const VisionTransformer& vit, const CheckpointLayout& l) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  const std::string wrap = l.strip_prefix.empty() ? "" : "module.";
  for (auto& item : vit->named_parameters())
    named.emplace_back(wrap + l.file_name(item.key()), l.file_tensor(item.key(), item.value()));
  for (const auto& p : l.ignored_prefixes) named.emplace_back(wrap + p + "ignored.weight", torch::ones({3}));
  with_marker(named, l, wrap);
  return named;
}

class EveryArchitecture : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryArchitecture, CountsLoadsAndRunsAsTimm) {
  const ArchEntry& e = arch_by_name(GetParam());
  const VitConfig cfg = vit_config_by_name(GetParam());
  EXPECT_EQ(cfg.arch, GetParam());
  EXPECT_EQ(cfg.img_size % cfg.patch_size, 0);
  EXPECT_EQ(cfg.embed_dim % cfg.num_heads, 0);
  for (const auto& a : e.aliases) {
    EXPECT_EQ(vit_config_by_name(a).arch, a) << "an alias keeps its own name";
    EXPECT_EQ(vit_config_by_name(a).embed_dim, cfg.embed_dim);
  }
  ASSERT_FALSE(e.layouts.empty());
  torch::NoGradGuard ng;
  {
    VisionTransformer full(cfg);
    EXPECT_EQ(full->num_parameters(), timm_vit_parameters(cfg)) << GetParam();
  }
  const std::string dir = test::scratch_dir("arch_" + GetParam());
  for (const auto& layout : e.layouts) {
    SCOPED_TRACE(layout.name);
    // Inference: a file holding just the tensors that carry the shapes (full size), in this layout.
    const int64_t D = cfg.embed_dim;
    std::vector<std::pair<std::string, torch::Tensor>> shapes = {
        {"patch_embed.proj.weight", torch::zeros({D, cfg.in_chans, cfg.patch_size, cfg.patch_size})},
        {"pos_embed", torch::zeros({1, cfg.pos_embed_rows(), D})},
        {"cls_token", torch::zeros({1, 1, D})},
        {"blocks.0.mlp.fc1.weight", torch::zeros({cfg.mlp_hidden(), D})},
        {"norm.weight", torch::zeros({D})}};
    for (int i = 0; i < cfg.depth; ++i)
      shapes.emplace_back("blocks." + std::to_string(i) + ".norm1.weight", torch::zeros({D}));
    for (auto& [k, v] : shapes) {
      v = layout.file_tensor(k, v);
      k = layout.file_name(k);
    }
    with_marker(shapes, layout, "");
    save_named_tensors(dir + "/shapes.safetensors", shapes);
    const VitConfig inferred = infer_vit_config(dir + "/shapes.safetensors");
    EXPECT_EQ(inferred.embed_dim, cfg.embed_dim);
    EXPECT_EQ(inferred.depth, cfg.depth);
    EXPECT_EQ(inferred.img_size, cfg.img_size);
    EXPECT_EQ(inferred.num_heads, cfg.num_heads);
    if (e.inferable || !layout.marker.empty()) {  // timm names of MAE's pre-training: --arch needed
      EXPECT_EQ(find_arch(inferred.arch)->config.embed_dim, cfg.embed_dim);
      EXPECT_EQ(find_arch(inferred.arch)->family, e.family) << inferred.arch;
      EXPECT_EQ(inferred.pool, cfg.pool);
    }
    // Round trip in the layout's own names.
    const VitConfig sc = small(e);
    VisionTransformer vit(sc);
    vit->init_weights(3);
    const std::string file = dir + "/" + layout.name + ".safetensors";
    save_named_tensors(file, in_layout(vit, layout));
    VisionTransformer back(sc);
    const LoadedBackbone lb = load_backbone(back, file);
    EXPECT_EQ(lb.layout, layout.name);
    for (auto& item : vit->named_parameters())
      EXPECT_TRUE(torch::equal(item.value(), back->named_parameters()[item.key()])) << item.key();
    const auto x = torch::randn({2, 3, sc.img_size, sc.img_size});
    vit->eval();
    back->eval();
    const auto f = back->forward_cls(x);
    EXPECT_EQ(f.sizes(), (std::vector<int64_t>{2, cfg.embed_dim}));
    EXPECT_TRUE(torch::equal(f, vit->forward_cls(x)));
  }
  {  // petl's own file of this architecture (petl pretrain): petl's names and its config, any family
    VisionTransformer vit(small(e));
    vit->init_weights(4);
    save_backbone(vit, dir + "/petl.safetensors");
    const VitConfig back_cfg = infer_vit_config(dir + "/petl.safetensors");
    EXPECT_EQ(back_cfg.arch, e.name);
    EXPECT_EQ(back_cfg.pool, cfg.pool);
    VisionTransformer back(back_cfg);
    EXPECT_EQ(load_backbone(back, dir + "/petl.safetensors").layout, "timm");
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryArchitecture, ::testing::ValuesIn(entry_names()),
                         [](const auto& info) { return info.param; });

TEST(EveryArchitecture, TheFormulaIsTimmsForTheTwoPublishedCounts) {
  EXPECT_EQ(timm_vit_parameters(vit_config_by_name("vit_base_patch16_224_in21k")), 85798656);
  EXPECT_EQ(timm_vit_parameters(vit_config_by_name("vit_huge_patch14_224_in21k")), 630764800);
  for (auto n : {"vit_base_patch16_224_mae", "vit_base_patch16_224_mae_gap", "vit_base_patch16_224_mocov3"})
    EXPECT_EQ(timm_vit_parameters(vit_config_by_name(n)), 85798656) << n;
  // The python references' own counts (tests/py/ref_models.py): CLIP's image tower without proj;
  // DINOv2 at its 518-px grid without mask_token, with and without 4 registers.
  EXPECT_EQ(timm_vit_parameters(vit_config_by_name("vit_base_patch16_clip_224")), 85799424);
  for (auto [n, count] : {std::pair{"vit_base_patch14_dinov2", 86579712}, {"vit_base_patch14_reg4_dinov2", 86582784}}) {
    VitConfig c = vit_config_by_name(n);
    c.img_size = 518;
    EXPECT_EQ(timm_vit_parameters(c), count) << n;
  }
}

TEST(EveryArchitecture, UnknownNamesSuggestAndListTheRegistry) {
  try {
    vit_config_by_name("vit_base_patch16_224_moco");
    FAIL() << "no error";
  } catch (const ArgumentError& err) {
    const std::string m = err.what();
    EXPECT_NE(m.find("did you mean"), std::string::npos) << m;
    EXPECT_NE(m.find("known: vit_base_patch16_224_in21k"), std::string::npos) << m;
    EXPECT_NE(m.find("vit_base_patch16_224_mocov3"), std::string::npos) << m;
  }
}

// A file of `arch`'s first layout (2 blocks, random weights) with the given extra tensor names: the error names them.
std::string load_error(const std::string& arch, const std::vector<std::string>& extra, const std::string& drop = "") {
  VitConfig c = small(arch_by_name(arch));
  VisionTransformer vit(c);
  const CheckpointLayout& l = arch_by_name(arch).layouts[0];
  auto named = in_layout(vit, l);
  for (const auto& n : extra) named.emplace_back(n, torch::zeros({2}));
  if (!drop.empty())
    named.erase(std::remove_if(named.begin(), named.end(), [&](const auto& p) { return p.first == drop; }),
                named.end());
  const std::string dir = test::scratch_dir("arch_errors");
  save_named_tensors(dir + "/x.safetensors", named);
  try {
    VisionTransformer back(c);
    load_backbone(back, dir + "/x.safetensors");
  } catch (const Error& err) {
    return err.what();
  }
  return "";
}

TEST(CheckpointLayouts, MocoV3IgnoresByExactPrefixOnly) {
  const std::string a = "vit_base_patch16_224_mocov3";
  EXPECT_EQ(load_error(a, {}), "");
  for (auto bad : {"module.momentum_encoder_old.blocks.0.norm1.weight", "module.encoder.base_encoder.norm.weight",
                   "module.queue"}) {
    const std::string m = load_error(a, {bad});
    EXPECT_NE(m.find("unexpected tensor '" + std::string(bad).substr(7) + "'"), std::string::npos) << bad << ": " << m;
  }
  const std::string fc = load_error(a, {"module.base_encoder.fc_norm.weight"});
  EXPECT_NE(fc.find("unexpected tensor 'fc_norm.weight'"), std::string::npos) << fc;
  const std::string m = load_error(a, {}, "module.base_encoder.blocks.1.attn.qkv.bias");
  EXPECT_NE(m.find("missing tensor 'blocks.1.attn.qkv.bias'"), std::string::npos) << m;
}

TEST(CheckpointLayouts, MaeLayoutsAreStrict) {
  // The pre-trained entry reads `norm`; a fine-tuned file's fc_norm is named, not guessed.
  std::string m = load_error("vit_base_patch16_224_mae", {"fc_norm.weight"});
  EXPECT_NE(m.find("unexpected tensor 'fc_norm.weight'"), std::string::npos) << m;
  m = load_error("vit_base_patch16_224_mae", {"decoder_embed.weight", "mask_token", "decoder_blocks.0.norm1.weight"});
  EXPECT_EQ(m, "") << "models_mae's decoder tensors are ignored";
  m = load_error("vit_base_patch16_224_mae", {"blocks.0.decoder_x"});
  EXPECT_NE(m.find("unexpected tensor 'blocks.0.decoder_x'"), std::string::npos) << m;
  // The fine-tuned entry: fc_norm and norm both present map to one name.
  m = load_error("vit_base_patch16_224_mae_gap", {"norm.weight"});
  EXPECT_NE(m.find("both map to 'norm.weight'"), std::string::npos) << m;
}

TEST(Pooling, MeanOfPatchTokensThroughTheFinalNorm) {
  torch::NoGradGuard ng;
  VitConfig c = small(arch_by_name("vit_base_patch16_224_mae_gap"));
  c.embed_dim = 48;
  c.num_heads = 4;
  VisionTransformer vit(c);
  vit->init_weights(1);
  vit->eval();
  const auto x = torch::randn({2, 3, c.img_size, c.img_size});
  const auto tokens = vit->forward_blocks(vit->embed(x));
  const auto want = torch::layer_norm(tokens.slice(1, 1).mean(1), {48}, vit->norm->weight, vit->norm->bias, 1e-6);
  EXPECT_TRUE(torch::allclose(vit->forward_cls(x), want, 1e-6, 1e-6));
  EXPECT_THROW(vit->pool(torch::cat({tokens, tokens.narrow(1, 0, 1)}, 1)), Error);
}

}  // namespace

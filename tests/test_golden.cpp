// Backbone and SynQT forward against golden values computed by Debian's python3-torch
// (tests/golden/make_golden.py with the independent reference maths in tests/py/ref_models.py),
// checkpoint loading in both formats, and every strict-loader error.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/tensor_file.h"
#include "models/checkpoint.h"
#include "test_util.h"

using namespace petl;
using petl::test::golden;

namespace {
torch::Tensor npy(const std::string& f) { return to_torch(io::read_npy(golden(f))); }

VisionTransformer golden_vit() {
  auto cfg = infer_vit_config(golden("vit_small.safetensors"));
  VisionTransformer vit(cfg);
  load_backbone(vit, golden("vit_small.safetensors"));
  vit->set_trainable(false);
  vit->eval();
  return vit;
}

std::string expect_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const petl::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected petl::Error";
  return "";
}
}  // namespace

TEST(Golden, ConfigFromMetadata) {
  auto cfg = infer_vit_config(golden("vit_small.safetensors"));
  EXPECT_EQ(cfg.img_size, 32);
  EXPECT_EQ(cfg.patch_size, 8);
  EXPECT_EQ(cfg.embed_dim, 48);
  EXPECT_EQ(cfg.depth, 3);
  EXPECT_EQ(cfg.num_heads, 4);
}

TEST(Golden, VitForwardMatchesReference) {
  auto vit = golden_vit();
  torch::NoGradGuard ng;
  auto x = npy("input.npy");
  auto tokens = vit->final_norm(vit->forward_blocks(vit->embed(x)));
  auto ref = npy("vit_tokens.npy");
  ASSERT_EQ(tokens.sizes(), ref.sizes());
  double rel = test::max_rel_diff(tokens, ref);
  std::printf("ViT forward max relative difference vs python3-torch: %.3g\n", rel);
  EXPECT_LE(rel, 1e-5);
  EXPECT_LE(test::max_rel_diff(vit->forward_cls(x), ref.select(1, 0)), 1e-5);
}

TEST(Golden, NpzAndSafetensorsLoadTheSameWeights) {
  auto cfg = infer_vit_config(golden("vit_small.safetensors"));
  VisionTransformer a(cfg), b(cfg);
  load_backbone(a, golden("vit_small.safetensors"));
  auto lb = load_backbone(b, golden("vit_small.npz"));  // Google layout, opt/target/ prefix, head ignored
  EXPECT_EQ(lb.format, "npz");
  EXPECT_EQ(lb.sha256.size(), 64u);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
}

TEST(Golden, SaveLoadRoundTrip) {
  auto vit = golden_vit();
  auto dir = test::scratch_dir("roundtrip");
  save_backbone(vit, dir + "/b.safetensors");
  auto cfg = infer_vit_config(dir + "/b.safetensors");
  EXPECT_EQ(cfg.num_heads, 4);
  VisionTransformer c(cfg);
  load_backbone(c, dir + "/b.safetensors");
  for (auto& item : vit->named_parameters()) EXPECT_TRUE(torch::equal(item.value(), c->named_parameters()[item.key()]));
}

TEST(Golden, StrictLoaderErrorsNameKeyAndShapes) {
  auto dir = test::scratch_dir("loader_errors");
  auto cfg = infer_vit_config(golden("vit_small.safetensors"));
  std::map<std::string, std::string> meta;
  auto base = io::read_safetensors(golden("vit_small.safetensors"), &meta);

  auto missing = base;
  missing.erase("blocks.1.attn.qkv.weight");
  io::write_safetensors(dir + "/missing.safetensors", missing, meta);
  VisionTransformer m(cfg);
  auto e1 = expect_error([&] { load_backbone(m, dir + "/missing.safetensors"); });
  EXPECT_NE(e1.find("missing tensor 'blocks.1.attn.qkv.weight'"), std::string::npos) << e1;
  EXPECT_NE(e1.find("(144, 48)"), std::string::npos) << e1;

  auto extra = base;
  extra["blocks.0.attn.lora_A"] = base["norm.bias"];
  io::write_safetensors(dir + "/extra.safetensors", extra, meta);
  auto e2 = expect_error([&] { load_backbone(m, dir + "/extra.safetensors"); });
  EXPECT_NE(e2.find("unexpected tensor 'blocks.0.attn.lora_A'"), std::string::npos) << e2;

  auto shaped = base;
  auto t = to_torch(base["blocks.2.mlp.fc1.weight"]).narrow(0, 0, 100).contiguous();
  shaped["blocks.2.mlp.fc1.weight"] = from_torch(t);
  io::write_safetensors(dir + "/shape.safetensors", shaped, meta);
  auto e3 = expect_error([&] { load_backbone(m, dir + "/shape.safetensors"); });
  EXPECT_NE(e3.find("'blocks.2.mlp.fc1.weight' has shape (100, 48)"), std::string::npos) << e3;
  EXPECT_NE(e3.find("expects (192, 48)"), std::string::npos) << e3;

  auto e4 = expect_error([&] { load_backbone(m, dir + "/nope.safetensors"); });
  EXPECT_NE(e4.find("nope.safetensors"), std::string::npos) << e4;
  auto e5 = expect_error([&] { read_backbone_tensors(golden("input.npy")); });
  EXPECT_NE(e5.find("unsupported format"), std::string::npos) << e5;
}

class GoldenSynQT : public ::testing::TestWithParam<int> {};

TEST_P(GoldenSynQT, LogitsMatchReference) {
  const int T = GetParam();
  auto vit = golden_vit();
  Settings s;
  s.set("token_nums", std::to_string(T));
  auto m = test::make_method("synqt", vit, 7, "golden", s);
  // Load the reference-named tensors strictly, as `petl eval` does.
  auto tensors = load_named_tensors(golden("synqt_t" + std::to_string(T) + ".safetensors"));
  auto trainable = m->trainable_parameters();
  ASSERT_EQ(trainable.size(), tensors.size());
  {
    torch::NoGradGuard ng;
    for (auto& [name, p] : trainable) {
      ASSERT_TRUE(tensors.count(name)) << name;
      ASSERT_EQ(tensors[name].sizes(), p.sizes()) << name;
      p.copy_(tensors[name]);
    }
  }
  m->train(false);
  torch::NoGradGuard ng;
  auto logits = m->forward(npy("input.npy"));
  auto ref = npy("synqt_t" + std::to_string(T) + "_logits.npy");
  double rel = test::max_rel_diff(logits, ref);
  std::printf("SynQT T=%d logits max relative difference vs python3-torch: %.3g\n", T, rel);
  EXPECT_LE(rel, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Tokens, GoldenSynQT, ::testing::Values(1, 3));

// SynQT: trainable-parameter counts at ViT-B/16 shapes (docs/spec/synqt.md formula), the trainable set,
// no gradient into the backbone, and the cacheability declaration.
#include <gtest/gtest.h>

#include "core/error.h"
#include "harness/train/memory_meter.h"
#include "methods/common.h"
#include "test_util.h"

using namespace petl;

namespace {
int64_t count_at_vit_b(const std::string& task, int classes) {
  auto cfg = vit_config_by_name("vit_base_patch16_224_in21k");
  VisionTransformer vit(cfg);
  vit->set_trainable(false);
  auto m = test::make_method("synqt", vit, classes, task);
  return m->num_trainable();
}
}  // namespace

TEST(SynQT, ParameterCountAtViTB16) {
  // 2,613,650 + 9,216·T + 769·C
  EXPECT_EQ(count_at_vit_b("cifar", 100), 2727414);                          // T=4 from synqt_task_configs.csv
  EXPECT_EQ(count_at_vit_b("dtd", 47), 2613650 + 9216 * 1 + 769 * 47);       // T=1
  EXPECT_EQ(count_at_vit_b("eurosat", 10), 2613650 + 9216 * 16 + 769 * 10);  // T=16
}

TEST(SynQT, TaskConfigAndOverrides) {
  VisionTransformer vit(test::tiny_config());
  auto m = test::make_method("synqt", vit, 5, "smallnorb_azi");
  auto s = m->effective_settings();
  EXPECT_EQ(s["token_nums"], "16");
  EXPECT_EQ(std::stod(s["ffn_scale"]), 1.0);
  Settings o;
  o.set("token_nums", "2");
  auto m2 = test::make_method("synqt", VisionTransformer(test::tiny_config()), 5, "smallnorb_azi", o);
  EXPECT_EQ(m2->effective_settings()["token_nums"], "2");
  auto named = m2->named_parameters();
  EXPECT_EQ(named["synqt.q"].sizes(), torch::IntArrayRef({3, 2, 48}));
  EXPECT_EQ(named["synqt.out_combine.weight"].numel(), 3 * 3 + 1);
  EXPECT_TRUE(named.contains("synqt.qsm_block.2.attn.q_proj.mlp.fc1.weight"));
  EXPECT_TRUE(named.contains("synqt.prompt_ffn.0.mlp.fc2.bias"));
  EXPECT_TRUE(named.contains("synqt.pre_norm.1.weight"));
  EXPECT_TRUE(named.contains("head.weight"));
  // head_norm starts as the backbone's final norm
  EXPECT_TRUE(torch::equal(named["synqt.head_norm.weight"], m2->backbone()->norm->weight));
}

TEST(SynQT, NoGradientReachesTheBackbone) {
  VisionTransformer vit(test::tiny_config());
  vit->init_weights(3);
  vit->set_trainable(false);
  auto m = test::make_method("synqt", vit, 6);
  m->train(true);
  auto x = torch::randn({4, 3, 32, 32});
  auto loss = torch::nn::functional::cross_entropy(m->forward(x), torch::tensor({0, 1, 2, 3}));
  loss.backward();
  for (auto& p : vit->named_parameters()) {
    EXPECT_FALSE(p.value().requires_grad()) << p.key();
    EXPECT_FALSE(p.value().grad().defined()) << p.key();
  }
  int with_grad = 0;
  for (auto& [name, p] : m->trainable_parameters()) {
    bool unused_in_reference = name.rfind("synqt.pre_norm.", 0) == 0 || name == "synqt.out_combine.weight";
    EXPECT_EQ(p.grad().defined(), !unused_in_reference) << name;
    with_grad += p.grad().defined();
  }
  EXPECT_GT(with_grad, 100);
}

TEST(SynQT, CacheableOnlyWithDeterministicBackbone) {
  auto cfg = test::tiny_config();
  cfg.drop_path_rate = 0.1;  // as a job builds its backbone: the recipe's stochastic depth
  auto m = test::make_method("synqt", VisionTransformer(cfg), 3);
  EXPECT_FALSE(m->needs().cacheable());  // reference: backbone stochastic depth on
  EXPECT_TRUE(m->needs().block_kv);
  EXPECT_FALSE(m->needs().grad_through_backbone);
  Settings off;
  off.set("backbone_drop_path", "off");
  auto m2 = test::make_method("synqt", VisionTransformer(cfg), 3, "t", off);
  EXPECT_TRUE(m2->needs().cacheable());
  // With the backbone deterministic, two training-mode backbone passes give the same K/V (what a
  // cache stores); with the reference's stochastic depth they do not (the test can fail).
  struct KvTap : BlockHooks {
    std::vector<torch::Tensor> kv;
    bool wants_kv() const override { return true; }
    void on_kv(int, const torch::Tensor& k, const torch::Tensor& v) override {
      kv.push_back(k.detach().clone());
      kv.push_back(v.detach().clone());
    }
  };
  auto two_passes_agree = [](Method& method) {
    method.train(true);
    torch::NoGradGuard ng;
    const auto x = torch::randn({64, 3, 32, 32});  // enough images that some branch is dropped
    KvTap a, b;
    torch::manual_seed(1);
    method.backbone()->forward_cls(x, &a);
    torch::manual_seed(2);  // other random draws: stochastic depth would drop other blocks
    method.backbone()->forward_cls(x, &b);
    EXPECT_EQ(a.kv.size(), 2u * 3);
    bool same = a.kv.size() == b.kv.size();
    for (size_t i = 0; same && i < a.kv.size(); ++i) same = torch::equal(a.kv[i], b.kv[i]);
    return same;
  };
  EXPECT_TRUE(two_passes_agree(*m2)) << "backbone_drop_path=off: the K/V are deterministic";
  EXPECT_FALSE(two_passes_agree(*m)) << "the reference's stochastic depth changes the K/V between passes";
}

TEST(SynQT, BadSettingsAreNamed) {
  Settings s;
  s.set("token_nums", "many");
  try {
    test::make_method("synqt", VisionTransformer(test::tiny_config()), 3, "t", s);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token_nums"), std::string::npos);
  }
}

// The chunked no-grad backbone pass (backbone_micro_batch): the same logits and gradients as the
// whole-batch pass (deterministic backbone path; float round-off from the BLAS blocking only), and a
// lower training peak — the transients of one chunk instead of the whole batch's.
TEST(SynQT, MicroBatchedBackbonePassMatchesAndLowersThePeak) {
  MemoryMeter::install();
  auto cfg = test::tiny_config(32, 4, 48, 3, 4);  // 65 tokens
  VisionTransformer vit(cfg);
  vit->init_weights(2);
  vit->set_trainable(false);
  auto x = torch::randn({32, 3, 32, 32});
  auto y = torch::randint(5, {32}, torch::kInt64);
  struct Out {
    torch::Tensor logits, grad;
    int64_t peak = 0;
  };
  auto step = [&](const std::string& micro) {
    torch::manual_seed(7);
    auto m = test::make_method(
        "synqt", vit, 5, "test_task",
        Settings::parse({"backbone_drop_path=off", "kem_drop_path=off", "backbone_micro_batch=" + micro}));
    m->train(false);  // no dropout in the query path: the two passes see identical randomness
    MemoryMeter::reset_peak();
    const int64_t base = MemoryMeter::live_bytes();
    auto logits = m->forward(x);
    torch::nn::functional::cross_entropy(logits, y).backward();
    Out o{logits.detach().clone(), m->named_parameters()["synqt.q"].grad().clone(), MemoryMeter::peak_bytes() - base};
    return o;
  };
  auto whole = step("0"), chunked = step("8");
  EXPECT_LT(test::max_rel_diff(chunked.logits, whole.logits), 1e-5);
  EXPECT_LT(test::max_rel_diff(chunked.grad, whole.grad), 1e-4);
  EXPECT_LT(chunked.peak, whole.peak) << "chunked " << chunked.peak << " vs whole " << whole.peak;
  EXPECT_THROW(test::make_method("synqt", vit, 5, "test_task", Settings::parse({"backbone_micro_batch=-1"})),
               petl::Error);
}

// query_recompute: the query path's layers keep only their inputs for backward and are run again
// there. In training mode (dropout and drop path on: the recomputation must draw the same masks)
// the logits are bit-identical, every gradient agrees to float round-off, the generator continues
// as without recomputation, and the training peak above the K/V that backward needs shrinks.
TEST(SynQT, RecomputedQueryPathMatchesAndLowersThePeak) {
  MemoryMeter::install();
  auto cfg = test::tiny_config(32, 4, 48, 4, 4);  // 65 tokens, 4 blocks
  cfg.drop_path_rate = 0.2;
  VisionTransformer vit(cfg);
  vit->init_weights(5);
  vit->set_trainable(false);
  auto x = torch::randn({16, 3, 32, 32});
  auto y = torch::randint(5, {16}, torch::kInt64);
  struct Out {
    torch::Tensor logits, next_draw;
    std::map<std::string, torch::Tensor> grads;
    int64_t peak = 0;
  };
  auto step = [&](const std::string& recompute) {
    torch::manual_seed(11);
    auto m =
        test::make_method("synqt", vit, 5, "test_task",
                          Settings::parse({"backbone_drop_path=off", "token_nums=3", "query_recompute=" + recompute}));
    m->train(true);
    torch::manual_seed(12);
    MemoryMeter::reset_peak();
    const int64_t base = MemoryMeter::live_bytes();
    auto logits = m->forward(x);
    torch::nn::functional::cross_entropy(logits, y).backward();
    Out o{logits.detach().clone(), torch::rand({4}), {}, MemoryMeter::peak_bytes() - base};
    for (auto& p : m->named_parameters())
      if (p.value().requires_grad())
        o.grads[p.key()] = p.value().grad().defined() ? p.value().grad().clone() : torch::Tensor();
    return o;
  };
  auto kept = step("off"), again = step("live");
  EXPECT_TRUE(torch::equal(kept.logits, again.logits));
  EXPECT_TRUE(torch::equal(kept.next_draw, again.next_draw));  // the generator was put back
  ASSERT_EQ(kept.grads.size(), again.grads.size());
  for (auto& [name, g] : kept.grads) {
    ASSERT_EQ(again.grads.at(name).defined(), g.defined()) << name;  // out_combine.weight is unused
    if (!g.defined()) continue;
    EXPECT_TRUE(torch::allclose(again.grads.at(name), g, 1e-5, 1e-7)) << name;
  }
  // The K/V that backward needs (2 · L · B · N · D floats) and the trainable tensors' gradients.
  const int64_t kv =
      2 * 4 * 16 * 65 * 48 * 4 +
      4 * test::make_method("synqt", vit, 5, "test_task", Settings::parse({"token_nums=3"}))->num_trainable();
  EXPECT_LT(again.peak, kept.peak);
  EXPECT_LT(double(again.peak - kv), 0.6 * double(kept.peak - kv))
      << "recomputed " << again.peak << " kept " << kept.peak;
  EXPECT_THROW(test::make_method("synqt", vit, 5, "t", Settings::parse({"query_recompute=maybe"})), petl::Error);
}

// The light methods' chunked no-grad backbone pass (methods::frozen_pass, backbone_micro_batch):
// the same K/V and cls token as the whole batch at once (BLAS blocking round-off only), a lower
// peak, and linear's and VQT's logits unchanged by the chunk size.
TEST(FrozenPass, ChunksMatchTheWholeBatchAndLowerThePeak) {
  MemoryMeter::install();
  auto cfg = test::tiny_config(32, 4, 48, 3, 4);  // 65 tokens
  VisionTransformer vit(cfg);
  vit->init_weights(4);
  vit->set_trainable(false);
  vit->eval();
  auto x = torch::randn({24, 3, 32, 32});
  auto pass = [&](int64_t chunk, int64_t* peak) {
    MemoryMeter::reset_peak();
    const int64_t base = MemoryMeter::live_bytes();
    auto f = methods::frozen_pass(*vit, x, chunk, true, true);
    *peak = MemoryMeter::peak_bytes() - base;
    return f;
  };
  int64_t whole_peak = 0, chunk_peak = 0;
  auto whole = pass(0, &whole_peak), chunked = pass(5, &chunk_peak);  // 5 chunks, the last of 4
  ASSERT_EQ(whole.k.size(), 3u);
  for (size_t l = 0; l < whole.k.size(); ++l) {
    EXPECT_LT(test::max_rel_diff(chunked.k[l], whole.k[l]), 1e-5) << l;
    EXPECT_LT(test::max_rel_diff(chunked.v[l], whole.v[l]), 1e-5) << l;
  }
  EXPECT_LT(test::max_rel_diff(chunked.cls, whole.cls), 1e-5);
  EXPECT_TRUE(torch::allclose(whole.cls, vit->forward_cls(x), 0, 0));
  EXPECT_LT(chunk_peak, whole_peak);
  for (const std::string method : {"linear", "vqt"}) {
    auto logits = [&](const std::string& micro) {
      torch::manual_seed(3);
      auto m = test::make_method(method, vit, 5, "test_task", Settings::parse({"backbone_micro_batch=" + micro}));
      m->train(false);
      torch::NoGradGuard ng;
      return m->forward(x);
    };
    EXPECT_LT(test::max_rel_diff(logits("5"), logits("0")), 1e-5) << method;
  }
}

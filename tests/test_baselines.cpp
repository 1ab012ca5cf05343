// Baseline methods (docs/spec/baselines.md): trainable-parameter counts at ViT-B/16 shapes against the spec
// table (per-task settings from the reference configs), exactly the trainable tensors receive
// gradients, and per-method maths checks (identity at init where the reference's zero init implies
// it, DTL's side path, VQT's query-only tokens, SSF's scale/shift points).
#include <algorithm>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "harness/train/recipe.h"
#include "harness/train/train_util.h"
#include "models/checkpoint.h"
#include "test_util.h"

using namespace petl;

namespace {
VisionTransformer vit_b16() {
  auto cfg = vit_config_by_name("vit_base_patch16_224_in21k");
  VisionTransformer vit(cfg);
  vit->set_trainable(false);
  return vit;
}
int64_t count_without_head(Method& m) {
  int64_t n = 0;
  for (auto& [k, v] : m.trainable_parameters())
    if (k.rfind("head.", 0) != 0) n += v.numel();
  return n;
}
}  // namespace

TEST(Baselines, TrainableParameterCountsAtViTB16) {
  auto vit = vit_b16();
  const int D = 768, L = 12;
  struct Case {
    std::string method, task;
    int64_t expected;
  };
  std::vector<Case> cases = {
      {"bitfit", "cifar", 102912},
      {"vpt_shallow", "cifar", 10 * D},
      {"vpt_deep", "cifar", L * 10 * D},
      {"adapter", "cifar", 156768},
      {"adaptformer", "cifar", 1189632},
      {"lora", "cifar", 294912},
      {"ssf", "cifar", 205824},
      {"convpass", "cifar", 327552},
      {"fact_tt", "cifar", 1536 * 8 + 144 * 8 * 8},               // cifar: rank 8
      {"fact_tt", "svhn", 1536 * 16 + 144 * 16 * 16},             // svhn: rank 16
      {"fact_tk", "cifar", 1536 * 32 + 144 * 32 + 32 * 32 * 32},  // cifar: rank 32
      {"fact_tk", "dtd", 1536 * 16 + 144 * 16 + 16 * 16 * 16},    // dtd: rank 16
      {"dtl", "cifar", 36864},
      {"dtl_plus", "cifar", 36864 + 768 * 3 * 3},  // cifar: kernel 3
      {"dtl_plus", "dtd", 36864 + 768 * 5 * 5},    // dtd: kernel 5
      {"vqt", "cifar", L * 1 * D},                 // T = 1
      {"vqt", "svhn", L * 20 * D},                 // T = 20
      {"lst", "cifar", 13 * (768 * 96 + 96) + 12 * (12 * 96 * 96 + 13 * 96) + 12 + 2 * 96},
      {"synqt", "cifar", 2613650 + 9216 * 4},
  };
  for (auto& c : cases) {
    auto m = test::make_method(c.method, vit, 100, c.task);
    EXPECT_EQ(count_without_head(*m), c.expected) << c.method << " on " << c.task;
    vit->set_trainable(false);
  }
  EXPECT_EQ(count_without_head(*test::make_method("lst", vit, 100, "cifar")), 2301996);
}

// Checkpoints carry the authors' parameter names (a sample per method, from each reference repo).
TEST(Baselines, AuthorsParameterNames) {
  auto vit = vit_b16();
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"ssf", {"patch_embed.ssf_scale_1", "patch_embed.ssf_shift_1", "blocks.0.attn.ssf_scale_1", "ssf_scale_1"}},
      {"adapter", {"blocks.0.adapter.ln1.weight", "blocks.11.adapter.ln2.bias"}},
      {"adaptformer",
       {"blocks.0.adaptmlp.down_proj.weight", "blocks.0.adaptmlp.up_proj.bias", "head.1.weight", "head.1.bias",
        "head.0.running_mean", "head.0.running_var"}},
      {"lora", {"blocks.0.attn.LoRA_a.weight", "blocks.0.attn.LoRA_b.weight"}},
  };
  for (auto& [method, names] : cases) {
    auto m = test::make_method(method, vit, 10, "cifar");
    std::set<std::string> have;
    for (auto& [k, v] : m->checkpoint_tensors()) have.insert(k);
    for (auto& n : names) EXPECT_TRUE(have.count(n)) << method << ": no tensor named " << n;
    EXPECT_FALSE(have.count("head.weight") && have.count("head.1.weight")) << method;
    vit->set_trainable(false);
  }
}

TEST(Baselines, HeadSizes) {
  auto vit = vit_b16();
  auto vqt = test::make_method("vqt", vit, 10, "svhn");  // T = 20: head on 768 + 12·20·768 features
  const auto trainable = vqt->trainable_parameters();
  auto head = std::find_if(trainable.begin(), trainable.end(), [](const auto& t) { return t.first == "head.weight"; });
  ASSERT_NE(head, trainable.end()) << "vqt has no head.weight";
  EXPECT_EQ(head->second.sizes(), torch::IntArrayRef({10, 768 * (1 + 12 * 20)}));
}

class EveryBaseline : public ::testing::TestWithParam<std::string> {};

// After two training steps exactly the declared trainable tensors hold gradients, every frozen
// backbone tensor has none, and the frozen backbone is bit-for-bit unchanged.
TEST_P(EveryBaseline, OnlyTrainableTensorsGetGradients) {
  const auto name = GetParam();
  auto cfg = test::tiny_config(32, 8, 48, 4, 4);
  cfg.drop_path_rate = 0.1;
  VisionTransformer vit(cfg);
  vit->init_weights(3);
  vit->set_trainable(false);
  auto m = test::make_method(name, vit, 5);
  std::map<std::string, torch::Tensor> before;
  for (auto& item : vit->named_parameters()) before[item.key()] = item.value().clone();
  auto trainable = m->trainable_parameters();
  std::set<const void*> trainable_ptrs;
  for (auto& [k, v] : trainable) trainable_ptrs.insert(v.unsafeGetTensorImpl());
  auto r = load_recipe("synqt");
  r.lr = 1e-2;
  auto opt = make_optimizer(trainable, r);
  auto x = torch::randn({6, 3, 32, 32});
  auto y = torch::randint(5, {6}, torch::kInt64);
  m->train(true);
  for (int s = 0; s < 2; ++s) {
    opt->zero_grad();
    torch::nn::functional::cross_entropy(m->forward(x), y).backward();
    opt->step();
  }
  for (auto& item : vit->named_parameters()) {
    const bool is_trainable = trainable_ptrs.count(item.value().unsafeGetTensorImpl()) > 0;
    if (!is_trainable) {
      EXPECT_FALSE(item.value().grad().defined()) << name << ": frozen " << item.key() << " got a gradient";
      EXPECT_TRUE(torch::equal(item.value(), before[item.key()])) << name << ": frozen " << item.key() << " changed";
    }
  }
  int with_grad = 0, checked = 0;
  for (auto& [k, v] : trainable) {
    // SynQT's reference registers tensors it never uses (out_combine.weight, pre_norm.*): trainable, no gradient.
    if (name == "synqt" && (k == "synqt.out_combine.weight" || k.rfind("synqt.pre_norm.", 0) == 0)) continue;
    ASSERT_TRUE(v.grad().defined()) << name << ": trainable " << k << " got no gradient";
    with_grad += v.grad().abs().sum().item<double>() > 0;
    ++checked;
  }
  EXPECT_GE(with_grad, checked - 1) << name;
}

INSTANTIATE_TEST_SUITE_P(Registered, EveryBaseline, ::testing::ValuesIn(MethodRegistry::instance().names()),
                         [](const auto& info) { return info.param; });

// Zero-initialised branches (LoRA's B, adapters' up projections, FacT's V, Convpass's W_u, DTL's B,
// AdaptFormer's up) leave the frozen ViT's cls feature unchanged at initialisation.
TEST(Baselines, ZeroInitBranchesAreIdentityAtInit) {
  auto cfg = test::tiny_config(32, 8, 48, 4, 4);
  VisionTransformer vit(cfg);
  vit->init_weights(5);
  vit->set_trainable(false);
  vit->eval();
  auto x = torch::randn({3, 3, 32, 32});
  torch::NoGradGuard ng;
  auto ref = vit->forward_cls(x);
  for (auto name : {"lora", "adaptformer", "fact_tt", "fact_tk", "convpass"}) {
    // LoRA's B is zero only with loralib's module init; NOAH's code re-initialises it (init=noah).
    Settings s = Settings::parse(std::string(name) == "lora" ? std::vector<std::string>{"init=module"}
                                                             : std::vector<std::string>{});
    auto m = std::dynamic_pointer_cast<BlockHooks>(test::make_method(name, vit, 4, "test_task", s));
    ASSERT_TRUE(m) << name;
    auto mm = std::dynamic_pointer_cast<Method>(m);
    mm->train(false);
    EXPECT_TRUE(torch::allclose(vit->forward_cls(x, m.get()), ref, 1e-6, 1e-6)) << name;
  }
}

// What NOAH's code leaves at step 0 (init=noah, the default): every adapter / LoRA Linear
// trunc_normal(std .02) (|w| <= 2), zero adapter biases, LoRA's B not zero; init=module: loralib's B
// zeros and the Adapter module's N(0, 1e-6) biases.
TEST(Baselines, NoahEffectiveInitialisation) {
  auto vit = vit_b16();
  for (const char* name : {"adapter", "lora"}) {
    for (const char* init : {"noah", "module"}) {
      auto m = test::make_method(name, vit, 10, "cifar", Settings::parse({std::string("init=") + init}));
      EXPECT_EQ(m->effective_settings().at("init"), init);
      std::vector<torch::Tensor> weights, biases;
      for (auto& [k, v] : m->trainable_parameters()) {
        if (k.rfind("head.", 0) == 0) continue;
        (k.size() > 5 && k.substr(k.size() - 5) == ".bias" ? biases : weights).push_back(v.flatten());
      }
      auto w = torch::cat(weights), b = biases.empty() ? torch::zeros({1}) : torch::cat(biases);
      if (std::string(init) == "noah") {
        EXPECT_NEAR(w.std().item<double>(), 0.02, 0.001) << name;
        EXPECT_LE(w.abs().max().item<double>(), 2.0) << name;
        EXPECT_EQ(b.abs().max().item<double>(), 0.0) << name;
      } else if (std::string(name) == "lora") {
        int zero_b = 0;
        for (auto& [k, v] : m->trainable_parameters())
          if (k.find("LoRA_b") != std::string::npos) zero_b += v.abs().max().item<double>() == 0.0;
        EXPECT_EQ(zero_b, 12);
      } else {
        EXPECT_GT(b.abs().max().item<double>(), 0.0);
        EXPECT_LT(b.std().item<double>(), 1e-5);
      }
      vit->set_trainable(false);
    }
  }
  EXPECT_THROW(test::make_method("lora", vit, 10, "cifar", Settings::parse({"init=kaiming"})), petl::Error);
}

// Golden forward values: for every baseline, the C++ logits (eval mode, trainable tensors moved
// away from their initial values) equal those of an independent Python implementation of the
// reference formulas (tests/py/ref_baselines.py, Debian's python3-torch).
TEST(BaselinesGolden, LogitsMatchIndependentPythonReference) {
  auto dir = test::scratch_dir("baselines_golden");
  struct Case {
    std::string method;
    std::vector<std::string> sets;
  };
  std::vector<Case> cases = {
      {"bitfit", {}},
      {"vpt_shallow", {"num_tokens=3"}},
      {"vpt_deep", {"num_tokens=2"}},
      {"adapter", {}},
      {"adaptformer", {"ffn_num=6"}},
      {"mae_linprobe", {}},
      {"lora", {"lora_dim=3"}},
      {"ssf", {}},
      {"convpass", {"scale=0.7"}},
      {"fact_tt", {"fact_dim=4", "fact_scale=2.0"}},
      {"fact_tk", {"fact_dim=5", "fact_scale=1.5"}},
      {"dtl", {}},
      {"dtl_plus", {"kernel=4"}},
      {"vqt", {"token_nums=2"}},
      {"lst", {}},
  };
  auto cfg = test::tiny_config(32, 8, 48, 4, 4);
  for (auto& c : cases) {
    VisionTransformer vit(cfg);
    vit->init_weights(11);
    vit->set_trainable(false);
    torch::manual_seed(5);
    auto m = test::make_method(c.method, vit, 7, "test_task", Settings::parse(c.sets));
    auto trainable = m->trainable_parameters();
    auto buffers = m->trained_buffers();  // adaptformer's BN head statistics, also moved off their init
    {
      torch::NoGradGuard ng;
      for (auto& [k, v] : trainable) v.add_(torch::randn_like(v) * 0.2);
      for (auto& [k, v] : buffers) v.add_(torch::rand_like(v) * 0.3);
    }
    m->train(false);
    auto x = torch::randn({3, 3, 32, 32});
    torch::Tensor logits;
    {
      torch::NoGradGuard ng;
      logits = m->forward(x);
    }
    std::vector<std::pair<std::string, torch::Tensor>> all;
    for (auto& item : vit->named_parameters()) all.emplace_back("backbone." + item.key(), item.value());
    auto backbone_named = vit->named_parameters();
    for (auto& [k, v] : trainable)
      if (!backbone_named.find(k)) all.emplace_back("method." + k, v);  // bitfit's are backbone tensors
    for (auto& [k, v] : buffers) all.emplace_back("method." + k, v);
    all.emplace_back("input", x);
    all.emplace_back("logits", logits);
    nlohmann::json settings = m->effective_settings();
    save_named_tensors(dir + "/" + c.method + ".safetensors", all,
                       {{"method", c.method},
                        {"heads", std::to_string(cfg.num_heads)},
                        {"depth", std::to_string(cfg.depth)},
                        {"patch", std::to_string(cfg.patch_size)},
                        {"settings", settings.dump()}});
  }
  std::string cmd = std::string(PETL_PYTHON) + " " + PETL_TEST_DIR + "/py/ref_baselines.py --dir " + dir;
  int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
}

// AdaptFormer's BatchNorm head: batch statistics in training (and the running ones updated with
// momentum 0.1 and the unbiased variance), running statistics in evaluation; trunc_normal(.01)
// Linear after it.
TEST(Baselines, AdaptFormerBatchNormHead) {
  auto cfg = test::tiny_config(32, 8, 48, 2, 4);
  VisionTransformer vit(cfg);
  vit->init_weights(3);
  vit->set_trainable(false);
  auto m = test::make_method("adaptformer", vit, 5, "test_task");
  auto buffers = m->trained_buffers();
  ASSERT_EQ(buffers.size(), 2u);
  torch::Tensor rm = buffers[0].second, rv = buffers[1].second;
  EXPECT_EQ(rm.abs().max().item<float>(), 0.f);
  EXPECT_EQ(rv.sub(1).abs().max().item<float>(), 0.f);
  torch::Tensor w, b;
  for (auto& [k, v] : m->trainable_parameters()) {
    if (k == "head.1.weight") w = v;
    if (k == "head.1.bias") b = v;
  }
  ASSERT_TRUE(w.defined() && b.defined());
  EXPECT_EQ(b.abs().max().item<float>(), 0.f);
  EXPECT_LE(w.abs().max().item<float>(), 2.0f);
  EXPECT_NEAR(w.std().item<double>(), 0.01, 0.002);  // trunc_normal(std .01) on 5×48
  // The cls features z the BN sees: the encoder path with the method's hooks, head bypassed.
  auto x = torch::randn({6, 3, 32, 32});
  torch::NoGradGuard ng;
  m->train(false);
  auto z = vit->forward_cls(x, dynamic_cast<BlockHooks*>(m.get()));
  m->train(true);
  vit->train(false);  // drop path is 0 here anyway; only the head's BN changes mode
  m->forward(x);
  auto mean = z.mean(0), var_u = z.var(0, /*unbiased=*/true);
  EXPECT_TRUE(torch::allclose(rm, 0.1 * mean, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(rv, 0.9 + 0.1 * var_u, 1e-5, 1e-6));
  m->train(false);
  auto logits = m->forward(x);
  auto expect = torch::nn::functional::linear((z - rm) / torch::sqrt(rv + 1e-6), w, b);
  EXPECT_TRUE(torch::allclose(logits, expect, 1e-5, 1e-6));
}

// Registry-parametrised checks: every registered method builds on a tiny ViT, gives (B, C)
// logits, trains a few steps with a lower loss, and its checkpoint (reference names) reloads into
// a fresh instance with identical logits.
#include <gtest/gtest.h>

#include "core/error.h"
#include "harness/train/recipe.h"
#include "harness/train/train_util.h"
#include "models/checkpoint.h"
#include "test_util.h"

using namespace petl;

TEST(Registry, ExpectedMethodsRegistered) {
  for (auto n : {"linear", "full", "synqt"}) EXPECT_TRUE(MethodRegistry::instance().has(n)) << n;
  EXPECT_THROW(MethodRegistry::instance().get("no_such_method"), petl::Error);
}

class EveryMethod : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryMethod, TrainsSavesAndReloads) {
  const auto name = GetParam();
  auto cfg = test::tiny_config();
  VisionTransformer vit(cfg);
  vit->init_weights(1);
  vit->set_trainable(false);
  torch::manual_seed(0);
  auto m = test::make_method(name, vit, 4);
  auto trainable = m->trainable_parameters();
  ASSERT_FALSE(trainable.empty());
  auto x = torch::randn({16, 3, 32, 32});
  auto y = torch::randint(4, {16}, torch::kInt64);
  auto r = load_recipe("synqt");
  r.lr = 3e-3;
  auto opt = make_optimizer(trainable, r);
  m->train(false);
  double first;
  {
    torch::NoGradGuard ng;
    first = torch::nn::functional::cross_entropy(m->forward(x), y).item<double>();
  }
  for (int s = 0; s < 15; ++s) {
    m->train(true);
    opt->zero_grad();
    torch::nn::functional::cross_entropy(m->forward(x), y).backward();
    opt->step();
  }
  m->train(false);
  torch::NoGradGuard ng;
  auto logits = m->forward(x);
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({16, 4}));
  double last = torch::nn::functional::cross_entropy(logits, y).item<double>();
  EXPECT_LT(last, first) << name;

  auto dir = test::scratch_dir("registry_" + name);
  save_named_tensors(dir + "/ck.safetensors", trainable);
  VisionTransformer vit2(cfg);
  vit2->init_weights(1);
  vit2->set_trainable(false);
  torch::manual_seed(99);
  auto m2 = test::make_method(name, vit2, 4);
  auto loaded = load_named_tensors(dir + "/ck.safetensors");
  for (auto& [n, p] : m2->trainable_parameters()) {
    ASSERT_TRUE(loaded.count(n)) << n;
    p.copy_(loaded[n]);
  }
  m2->train(false);
  EXPECT_TRUE(torch::equal(m2->forward(x), logits)) << name;
}

INSTANTIATE_TEST_SUITE_P(Registered, EveryMethod, ::testing::ValuesIn(MethodRegistry::instance().names()),
                         [](const auto& info) { return info.param; });

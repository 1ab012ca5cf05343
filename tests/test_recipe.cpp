// Recipes as data and the exact learning-rate schedules of the reference training loops.
// Expected values were computed independently (python, from the formulas in recipes.yaml).
#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <limits>

#include "core/error.h"
#include "harness/train/recipe.h"

using namespace petl;

TEST(Recipe, SynQTValuesFromData) {
  auto r = load_recipe("synqt");
  EXPECT_DOUBLE_EQ(r.lr, 1e-3);
  EXPECT_DOUBLE_EQ(r.weight_decay, 1e-2);
  EXPECT_FALSE(r.no_decay_1d);
  EXPECT_EQ(r.epochs, 50);
  EXPECT_EQ(r.batch_size, 64);
  EXPECT_FALSE(r.drop_last);
  EXPECT_EQ(r.seed, 42);
  EXPECT_DOUBLE_EQ(r.drop_path_rate, 0.1);
  EXPECT_EQ(r.train_split, "train800val200");
}

TEST(Recipe, SynQTPerIterationSchedule) {
  auto r = load_recipe("synqt");
  const int ipe = 16;  // 1000 images, batch 64, no drop_last
  EXPECT_DOUBLE_EQ(learning_rate(r, 0, 0, ipe), 0.0);
  EXPECT_NEAR(learning_rate(r, 0, 1, ipe), 6.25e-06, 1e-18);
  EXPECT_NEAR(learning_rate(r, 5, 8, ipe), 0.00055, 1e-15);
  EXPECT_NEAR(learning_rate(r, 9, 15, ipe), 0.00099375, 1e-15);
  EXPECT_NEAR(learning_rate(r, 10, 0, ipe), 0.001, 1e-15);
  EXPECT_NEAR(learning_rate(r, 30, 0, ipe), 0.0005005, 1e-15);
  EXPECT_NEAR(learning_rate(r, 49, 15, ipe), 1.0060178924551842e-06, 1e-15);
}

TEST(Recipe, NoahTimmEpochScheduleWithStepLag) {
  auto r = load_recipe("noah");
  EXPECT_TRUE(r.no_decay_1d);
  EXPECT_TRUE(r.drop_last);
  // scheduler.step(ep) runs after epoch ep: epoch e trains with f(max(e-1, 0)).
  EXPECT_NEAR(learning_rate(r, 0, 5, 15), 1e-06, 1e-18);
  EXPECT_NEAR(learning_rate(r, 1, 0, 15), 1e-06, 1e-18);
  EXPECT_NEAR(learning_rate(r, 2, 3, 15), 0.0005009, 1e-15);
  EXPECT_NEAR(learning_rate(r, 10, 0, 15), 0.0045001, 1e-15);
  EXPECT_NEAR(learning_rate(r, 11, 0, 15), 0.004877886008156408, 1e-15);
  EXPECT_NEAR(learning_rate(r, 50, 0, 15), 0.0025833698438999303, 1e-15);
  EXPECT_NEAR(learning_rate(r, 99, 0, 15), 1.4923312571462463e-05, 1e-15);
  EXPECT_NEAR(timm_cosine_lr(r, 100), 1e-5, 1e-18);  // past the cycle: lr_min
}

TEST(Recipe, OverridesAndErrors) {
  auto r = load_recipe("petl_vit");
  Settings s(
      std::map<std::string, std::string>{{"lr", "0.01"}, {"epochs", "7"}, {"warmup_epochs", "2"}, {"token_nums", "4"}});
  apply_overrides(r, s);
  EXPECT_DOUBLE_EQ(r.lr, 0.01);
  EXPECT_EQ(r.epochs, 7);
  ASSERT_EQ(s.unused().size(), 1u);  // method keys are left for the method
  EXPECT_EQ(s.unused()[0], "token_nums");
  Settings bad(std::map<std::string, std::string>{{"lr", "fast"}});
  try {
    apply_overrides(r, bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("setting 'lr': expected a number, got 'fast'"), std::string::npos);
  }
  try {
    load_recipe("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no recipe 'nope'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("synqt"), std::string::npos);  // lists the known ones
  }
}

// The preprocessing of each reference pipeline: DTL (timm's create_transform default under
// --prefetcher) and SSF normalise with the Inception constants (mean = std = 0.5), the others with
// ImageNet's.
TEST(Recipe, NormalisationFollowsEachReferencePipeline) {
  EXPECT_EQ(load_recipe("dtl").normalisation, "inception");
  EXPECT_EQ(load_recipe("ssf").normalisation, "inception");
  for (const char* r : {"synqt", "petl_vit", "vqt"}) EXPECT_EQ(load_recipe(r).normalisation, "imagenet") << r;
}

// `petl pretrain` trains on the recipe code's schedule: a linear warmup from 0, then a cosine to 0,
// per iteration — the closed form its own loop used to compute, to the last bits (the fractional
// epoch is rounded once more: at most a few ulp of lr), with AdamW's decay on every tensor.
TEST(Recipe, TheUpstreamRecipeIsPretrainsWarmupCosine) {
  const double lr = 1e-3;
  const int warmup = 1, epochs = 10, per_epoch = 279;
  const Recipe r = upstream_recipe(lr, 0.05, warmup, epochs, 128, 0);
  EXPECT_EQ(r.min_lr, 0.0);
  EXPECT_FALSE(r.no_decay_1d);
  EXPECT_DOUBLE_EQ(r.weight_decay, 0.05);
  double worst = 0;
  for (int e = 0; e < epochs; ++e)
    for (int i = 0; i < per_epoch; ++i) {
      const double t = double(e * per_epoch + i) / per_epoch;
      const double closed =
          t < warmup ? lr * t / warmup : 0.5 * lr * (1 + std::cos(M_PI * (t - warmup) / std::max(1, epochs - warmup)));
      worst = std::max(worst, std::abs(learning_rate(r, e, i, per_epoch) - closed));
    }
  EXPECT_LE(worst, 8 * std::numeric_limits<double>::epsilon() * lr);
  EXPECT_EQ(learning_rate(r, 0, 0, per_epoch), 0.0);
  EXPECT_EQ(learning_rate(r, warmup, 0, per_epoch), lr);
  EXPECT_THROW(upstream_recipe(lr, 0.05, 11, 10, 128, 0), Error);  // warmup longer than the run
}

// Job resolution (harness/train/job.h): the one effective recipe every command uses, and job keys
// that hash effective values exactly (shortest round-trip doubles: 1e-7 and 0 never collide).
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/text.h"
#include "harness/train/job.h"
#include "test_util.h"

using namespace petl;

namespace {
ResolvedJob resolve(const std::string& method, const std::string& task, std::vector<std::string> sets,
                    const std::string& recipe = "", int epochs = JobSpec::kRecipeValue) {
  JobSpec s;
  s.method = method;
  s.task = task;
  s.recipe = recipe;
  s.set = std::move(sets);
  s.epochs = epochs;
  s.threads = 1;
  return resolve_job(s);
}

std::string key_of(const ResolvedJob& j) {
  auto vit = VisionTransformer(test::tiny_config());
  auto m = build_job_method(j, vit, 4);
  return job_key(j, m->effective_settings(), "sha");
}
}  // namespace

TEST(Job, FormatDoubleIsShortestRoundTrip) {
  EXPECT_EQ(format_double(1e-7), "1e-07");
  EXPECT_EQ(format_double(0.0), "0");
  EXPECT_EQ(format_double(0.001), "0.001");
  EXPECT_EQ(format_double(0.1 + 0.2), "0.30000000000000004");
  EXPECT_NE(format_double(1.0), format_double(1.0 + 1e-15));
  for (double v : {1e-7, 3.14159, 2.5e20, -0.0625, 1.0 / 3.0}) EXPECT_EQ(std::stod(format_double(v)), v);
}

TEST(Job, RecipeLayersApplyInOrder) {
  // recipe file < per-method override of the recipe < per-task reference value < --set < flags
  auto mini = resolve("synqt", "fashion_mnist", {}, "mini");
  EXPECT_DOUBLE_EQ(mini.recipe().lr, 1e-2);  // mini's method_overrides for synqt
  auto ssf = resolve("ssf", "svhn", {});
  EXPECT_DOUBLE_EQ(ssf.recipe().lr, 1e-2);  // config/baselines/ssf_task_configs.csv, svhn
  EXPECT_EQ(ssf.eff.task_overrides.at("lr"), "1e-2");
  auto set = resolve("ssf", "svhn", {"lr=0.5"});
  EXPECT_DOUBLE_EQ(set.recipe().lr, 0.5);
  EXPECT_FALSE(set.eff.task_overrides.count("lr"));     // --set wins and the task value is not recorded
  auto shorter = resolve("synqt", "cifar", {}, "", 5);  // 50 epochs with 10 warmup → 5 with 1
  EXPECT_EQ(shorter.recipe().epochs, 5);
  EXPECT_EQ(shorter.recipe().warmup_epochs, 1);
  EXPECT_THROW(resolve("synqt", "cifar", {"lr=abc"}), petl::Error);
  EXPECT_THROW(resolve("no_such_method", "cifar", {}), petl::Error);
}

TEST(Job, UnknownSetKeysAreErrors) {
  auto j = resolve("lora", "cifar", {"no_such_key=1"});
  auto vit = VisionTransformer(test::tiny_config());
  try {
    build_job_method(j, vit, 4);
    FAIL() << "expected an error";
  } catch (const petl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_key"), std::string::npos) << e.what();
  }
}

TEST(Job, KeysHashEffectiveValuesExactly) {
  // Recipe doubles: 1e-7 and 0 are different jobs (std::to_string made both "0.000000").
  EXPECT_NE(key_of(resolve("lora", "cifar", {"weight_decay=1e-7"})),
            key_of(resolve("lora", "cifar", {"weight_decay=0"})));
  // Method doubles too.
  EXPECT_NE(key_of(resolve("lora", "cifar", {"lora_dropout=1e-7"})),
            key_of(resolve("lora", "cifar", {"lora_dropout=0"})));
  // The same effective value, however it is written, is the same job.
  EXPECT_EQ(key_of(resolve("lora", "cifar", {"lr=1e-3"})), key_of(resolve("lora", "cifar", {"lr=0.001"})));
  EXPECT_EQ(key_of(resolve("lora", "cifar", {})), key_of(resolve("lora", "cifar", {"lora_dim=8"})));
  EXPECT_NE(key_of(resolve("lora", "cifar", {})), key_of(resolve("lora", "cifar", {"lora_dim=4"})));
}

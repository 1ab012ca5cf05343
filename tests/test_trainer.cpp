// The trainer (harness/train/trainer.h): snapshots of the trainable tensors and their evaluation in
// one pass over the test split — bit-identical accuracies to evaluating each snapshot alone, the
// same accuracy as the live forward, the method's tensors left untouched, snapshots kept outside
// the tensor allocators (no training memory).
#include <algorithm>
#include <gtest/gtest.h>
#include <set>

#include "harness/train/feature_cache.h"
#include "harness/train/memory_meter.h"
#include "harness/train/trainer.h"
#include "test_util.h"

using namespace petl;

namespace {
// n random images with labels; the split of a FeatureSource.
LiveImages random_split(int64_t n, int classes) {
  SplitTensors s;
  s.images = torch::randn({n, 3, 32, 32});
  s.labels = torch::randint(classes, {n}, torch::kInt64);
  return LiveImages(std::move(s));
}

void perturb(const NamedTensors& trainable, double scale) {
  torch::NoGradGuard ng;
  for (auto& [n, t] : trainable) t.add_(torch::randn_like(t) * scale);
}
}  // namespace

class SnapshotMethods : public ::testing::TestWithParam<std::string> {};

TEST_P(SnapshotMethods, OnePassEqualsEachSnapshotAloneAndTheLiveForward) {
  const auto name = GetParam();
  torch::manual_seed(3);
  VisionTransformer vit(test::tiny_config());
  vit->init_weights(1);
  vit->set_trainable(false);
  auto m = test::make_method(name, vit, 5, "test_task");
  const auto taps = eval_taps_for(m->needs());
  ASSERT_TRUE(taps.any()) << name;
  auto test = random_split(70, 5);
  const auto trainable = m->trainable_parameters();
  std::vector<Snapshot> snaps;
  for (int i = 0; i < 3; ++i) {
    perturb(trainable, 3.0);  // large steps, so that the snapshots classify differently
    snaps.push_back(Snapshot::take(trainable, 10 * (i + 1), 0.1 * i));
  }
  perturb(trainable, 0.5);
  auto before = Snapshot::take(trainable, 0, 0);
  auto together = evaluate_snapshots(*m, test, snaps, vit, taps, 32, torch::kCPU, false, "t");
  ASSERT_EQ(together.size(), 3u);
  // The method's own tensors are as they were.
  EXPECT_EQ(Snapshot::take(trainable, 0, 0).bytes, before.bytes);
  for (size_t i = 0; i < snaps.size(); ++i) {
    auto alone = evaluate_snapshots(*m, test, {snaps[i]}, vit, taps, 32, torch::kCPU, false, "t");
    EXPECT_EQ(together[i].accuracy, alone[0].accuracy) << name << " snapshot " << i;
    EXPECT_EQ(together[i].n, 70);
    // The same snapshot evaluated through the live forward.
    snaps[i].restore(trainable);
    auto live = test.evaluate(*m, 32, torch::kCPU, false, "t", nullptr);
    EXPECT_EQ(together[i].accuracy, live.accuracy) << name << " snapshot " << i;
  }
  // Different snapshots are really different models (the test can fail).
  std::set<double> accs;
  for (auto& r : together) accs.insert(r.accuracy);
  EXPECT_GT(accs.size(), 1u) << name;
}

// Every registered method whose evaluation runs from frozen-backbone features (by its declaration).
INSTANTIATE_TEST_SUITE_P(QueryOnly, SnapshotMethods,
                         ::testing::ValuesIn(test::methods_where([](const BackboneNeeds& n) {
                           return eval_taps_for(n).any();
                         })),
                         [](const auto& info) { return info.param; });

TEST(Snapshot, KeptOutsideTheTensorAllocators) {
  MemoryMeter::install();
  auto t = torch::randn({256, 256});
  NamedTensors named = {{"w", t}};
  const int64_t live = MemoryMeter::live_bytes();
  auto s = Snapshot::take(named, 1, 0);
  EXPECT_EQ(MemoryMeter::live_bytes(), live) << "a snapshot allocates no tensor memory";
  torch::NoGradGuard ng;
  auto copy = t.clone();
  t.zero_();
  s.restore(named);
  EXPECT_TRUE(torch::equal(t, copy));
}

TEST(Snapshot, HeavyMethodsHaveNoEvaluationTaps) {
  VisionTransformer vit(test::tiny_config());
  const auto heavy = test::methods_where([](const BackboneNeeds& n) { return n.grad_through_backbone; });
  EXPECT_GE(heavy.size(), 10u);
  for (const auto& name : heavy) {
    auto m = test::make_method(name, vit, 3);
    EXPECT_FALSE(eval_taps_for(m->needs()).any()) << name;
  }
  // The query-only methods the snapshot test runs: at least the three the paper compares.
  const auto snap = test::methods_where([](const BackboneNeeds& n) { return eval_taps_for(n).any(); });
  for (const char* n : {"linear", "synqt", "vqt"}) EXPECT_NE(std::find(snap.begin(), snap.end(), n), snap.end()) << n;
  // SynQT with the reference's stochastic backbone path cannot train from a cache, but its
  // evaluation (eval mode, no stochastic depth) runs from K/V.
  auto synqt = test::make_method("synqt", vit, 3);
  EXPECT_FALSE(cache_taps_for(synqt->needs()).any());
  EXPECT_TRUE(eval_taps_for(synqt->needs()).kv);
}

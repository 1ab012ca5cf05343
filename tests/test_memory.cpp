// The counting allocator is exact on a known allocation pattern, and at equal batch SynQT's
// training activations are far below full fine-tuning's on the same small backbone.
#include <gtest/gtest.h>

#include "harness/train/memory_meter.h"
#include "harness/train/recipe.h"
#include "harness/train/train_util.h"
#include "test_util.h"

using namespace petl;

TEST(MemoryMeter, ExactOnKnownPattern) {
  MemoryMeter::install();
  ASSERT_TRUE(MemoryMeter::installed());
  const int64_t live0 = MemoryMeter::live_bytes();
  MemoryMeter::reset_peak();
  {
    auto a = torch::empty({1000}, torch::kFloat32);  // 4000 B
    EXPECT_EQ(MemoryMeter::live_bytes() - live0, 4000);
    {
      auto b = torch::empty({1000}, torch::kFloat64);  // 8000 B
      EXPECT_EQ(MemoryMeter::live_bytes() - live0, 12000);
    }
    EXPECT_EQ(MemoryMeter::live_bytes() - live0, 4000);
    auto c = torch::empty({500}, torch::kInt32);  // 2000 B
    EXPECT_EQ(MemoryMeter::live_bytes() - live0, 6000);
  }
  EXPECT_EQ(MemoryMeter::live_bytes(), live0);
  EXPECT_EQ(MemoryMeter::peak_bytes() - live0, 12000);
  MemoryMeter::reset_peak();
  EXPECT_EQ(MemoryMeter::peak_bytes(), live0);
}

TEST(MemoryMeter, ActivationsAndGradientsCountedExactly) {
  MemoryMeter::install();
  // y = relu(x W^T): backward keeps only the relu output (B×H: matmul's backward needs x and W,
  // not its output, which is freed); the gradient of W is H×D.
  auto w = torch::randn({64, 32}, torch::requires_grad());
  auto x = torch::randn({16, 32});
  TrainingPeak tp;
  tp.begin();
  const int64_t base = MemoryMeter::live_bytes();
  auto y = torch::relu(torch::matmul(x, w.t()));
  EXPECT_EQ(MemoryMeter::live_bytes() - base, 16 * 64 * 4);      // the relu output alone
  EXPECT_EQ(MemoryMeter::peak_bytes() - base, 2 * 16 * 64 * 4);  // matmul output was live too
  y.sum().backward();
  tp.end();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(MemoryMeter::live_bytes() - base, 16 * 64 * 4 + 64 * 32 * 4);  // y and W's gradient
}

namespace {
MemoryBreakdown train_steps(const std::string& method, int batch) {
  MemoryMeter::install();
  auto cfg = test::tiny_config(32, 4, 96, 8, 3);  // 65 tokens, 8 blocks
  cfg.drop_path_rate = 0.1;
  VisionTransformer vit(cfg);
  vit->init_weights(0);
  vit->set_trainable(false);
  auto m = test::make_method(method, vit, 10);
  auto r = load_recipe("synqt");
  auto trainable = m->trainable_parameters();
  auto opt = make_optimizer(trainable, r);
  auto x = torch::randn({batch, 3, 32, 32});
  auto y = torch::randint(10, {batch}, torch::kInt64);
  m->train(true);
  TrainingPeak tp;
  tp.begin();
  for (int s = 0; s < 2; ++s) {
    opt->zero_grad();
    torch::nn::functional::cross_entropy(m->forward(x), y).backward();
    opt->step();
  }
  tp.end();
  return memory_breakdown(*m, trainable, *opt, tp);
}
}  // namespace

TEST(MemoryMeter, SynQTActivationsFarBelowFullFinetuning) {
  auto full = train_steps("full", 32);
  auto synqt = train_steps("synqt", 32);
  auto linear = train_steps("linear", 32);
  double ratio = double(synqt.activations_other()) / double(full.activations_other());
  std::printf("activations+other MiB at batch 32: full %.2f, synqt %.2f, linear %.2f (synqt/full %.3f)\n",
              MemoryMeter::mib(full.activations_other()), MemoryMeter::mib(synqt.activations_other()),
              MemoryMeter::mib(linear.activations_other()), ratio);
  EXPECT_LT(ratio, 0.3);
  // SynQT keeps the K/V its backward needs (2·L·B·N·D floats; 8 blocks, 65 tokens, width 96) and,
  // with its chunked backbone pass and recomputed query path, little more.
  const int64_t kv = 2 * 8 * 32 * 65 * 96 * 4;
  EXPECT_GE(synqt.activations_other(), kv);
  EXPECT_LT(double(synqt.activations_other()), 1.3 * double(kv));
  // Categories add up and the optimizer state is two moments per trainable tensor.
  EXPECT_EQ(full.optimizer_state, 2 * full.trainable_params);
  EXPECT_EQ(synqt.gradients + synqt.optimizer_state > 0, true);
  EXPECT_EQ(full.frozen_backbone, 0);
  EXPECT_GT(synqt.frozen_backbone, 0);
}

// The spec's memory classes, measured: at equal batch every light method (no back-propagation
// through the N-token path) trains with fewer activation bytes than every heavy one, and the
// partial ones (DTL: gradients reach the late blocks only) lie between.
TEST(MemoryMeter, MemoryClassesOrderAsSpecified) {
  auto cfg_vit = test::tiny_config(32, 4, 96, 8, 3);
  std::map<std::string, std::vector<std::pair<std::string, double>>> by_class;
  for (auto& name : MethodRegistry::instance().names()) {
    VisionTransformer probe(cfg_vit);
    auto cls = test::make_method(name, probe, 10)->needs().memory_class;
    auto mb = train_steps(name, 32);
    by_class[to_string(cls)].push_back({name, MemoryMeter::mib(mb.activations_other())});
  }
  auto max_of = [&](const std::string& c) {
    double m = 0;
    for (auto& [n, v] : by_class[c]) m = std::max(m, v);
    return m;
  };
  auto min_of = [&](const std::string& c) {
    double m = 1e300;
    for (auto& [n, v] : by_class[c]) m = std::min(m, v);
    return m;
  };
  for (auto& [c, v] : by_class)
    for (auto& [n, mib] : v) std::printf("%-8s %-12s activations+other %.2f MiB\n", c.c_str(), n.c_str(), mib);
  ASSERT_FALSE(by_class["light"].empty());
  ASSERT_FALSE(by_class["heavy"].empty());
  ASSERT_FALSE(by_class["partial"].empty());
  EXPECT_LT(max_of("light"), min_of("heavy"));
  EXPECT_LT(max_of("partial"), min_of("heavy"));
  EXPECT_LT(max_of("light"), 0.5 * min_of("heavy")) << "light methods should be far below heavy ones";
}

// Freed blocks of cache_min() (128 KiB) or more are handed out again for the same size (no fresh pages
// from the kernel each training step); the tensor counts are unchanged by it; small blocks are not kept;
// held + kept blocks never exceed the highest live count + the slack.
TEST(MemoryMeter, LargeFreedBlocksAreReusedAndBounded) {
  MemoryMeter::install();
  MemoryMeter::release_cache();
  const int64_t live0 = MemoryMeter::live_bytes();
  void* first = nullptr;
  {
    auto a = torch::empty({3 << 20}, torch::kUInt8);  // 3 MiB
    first = a.data_ptr();
  }
  EXPECT_EQ(MemoryMeter::live_bytes(), live0);
  EXPECT_EQ(MemoryMeter::cached_bytes(), 3 << 20);
  const int64_t reuses0 = MemoryMeter::reuses();
  {
    auto b = torch::empty({(3 << 20) - 100}, torch::kUInt8);  // the same page-rounded size
    EXPECT_EQ(b.data_ptr(), first);
    EXPECT_EQ(MemoryMeter::reuses(), reuses0 + 1);
    EXPECT_EQ(MemoryMeter::live_bytes() - live0, (3 << 20) - 100);  // the tensor's bytes, not the block's
    EXPECT_EQ(MemoryMeter::cached_bytes(), 0);
  }
  { auto small = torch::empty({1000}, torch::kUInt8); }
  EXPECT_EQ(MemoryMeter::cached_bytes(), 3 << 20);  // the small block was not kept
  {  // just under the minimum: not kept; at the minimum (one query activation of a batch): kept, reused
    auto below = torch::empty({MemoryMeter::cache_min() - 4096}, torch::kUInt8);
  }
  EXPECT_EQ(MemoryMeter::cached_bytes(), 3 << 20);
  void* at_min = nullptr;
  {
    auto t = torch::empty({MemoryMeter::cache_min()}, torch::kUInt8);
    at_min = t.data_ptr();
  }
  EXPECT_EQ(MemoryMeter::cached_bytes(), (3 << 20) + MemoryMeter::cache_min());
  {
    auto t = torch::empty({MemoryMeter::cache_min() / 4}, torch::kFloat32);
    EXPECT_EQ(t.data_ptr(), at_min);
  }
  // The bound: free many distinct sizes; what is kept never exceeds high + slack.
  std::vector<torch::Tensor> held;
  for (int i = 0; i < 40; ++i) held.push_back(torch::empty({(4 << 20) + i * 8192}, torch::kUInt8));
  held.clear();
  EXPECT_LE(MemoryMeter::held_bytes() + MemoryMeter::cached_bytes(),
            MemoryMeter::high_bytes() + MemoryMeter::cache_slack());
  for (int i = 0; i < 40; ++i) {  // other sizes: the oldest kept blocks make room
    auto t = torch::empty({(5 << 20) + i * 8192}, torch::kUInt8);
    EXPECT_LE(MemoryMeter::held_bytes() + MemoryMeter::cached_bytes(),
              MemoryMeter::high_bytes() + MemoryMeter::cache_slack());
  }
  MemoryMeter::release_cache();
  EXPECT_EQ(MemoryMeter::cached_bytes(), 0);
}

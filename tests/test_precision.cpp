// --precision (harness/train/precision.h) on the CPU: bf16 autocast takes effect inside a scope
// and only there; fp32 scopes change nothing. (CUDA: tests/cuda/test_cuda.cpp.)
#include <cmath>
#include <gtest/gtest.h>

#include "core/error.h"
#include "harness/train/precision.h"
#include "test_util.h"

namespace petl {
namespace {

struct PrecisionReset {
  ~PrecisionReset() { set_precision(Precision::kFp32); }
};

TEST(Precision, ParsesItsNamesAndRejectsOthersNamingTheFlag) {
  EXPECT_EQ(parse_enum<Precision>("fp32", "--precision"), Precision::kFp32);
  EXPECT_EQ(parse_enum<Precision>("float32", "--precision"), Precision::kFp32);
  EXPECT_EQ(parse_enum<Precision>("bf16", "--precision"), Precision::kBf16);
  EXPECT_EQ(parse_enum<Precision>("bfloat16", "--precision"), Precision::kBf16);
  EXPECT_STREQ(to_string(Precision::kBf16), "bf16");
  try {
    parse_enum<Precision>("fp16", "--precision");
    FAIL() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--precision 'fp16': expected fp32 or bf16"), std::string::npos) << e.what();
  }
}

TEST(Precision, Fp32ScopeChangesNothing) {
  PrecisionReset reset;
  set_precision(Precision::kFp32);
  torch::manual_seed(0);
  VisionTransformer vit(test::tiny_config());
  vit->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({4, 3, 32, 32});
  auto ref = vit->forward_cls(x);
  torch::Tensor out;
  {
    Autocast amp(torch::kCPU);
    out = vit->forward_cls(x);
  }
  EXPECT_TRUE(torch::equal(out, ref));
}

TEST(Precision, Bf16AutocastsInsideTheScopeOnlyAndStaysClose) {
  PrecisionReset reset;
  torch::manual_seed(0);
  VisionTransformer vit(test::tiny_config());
  vit->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({8, 3, 32, 32});
  const auto ref = vit->forward_cls(x);
  set_precision(Precision::kBf16);
  torch::Tensor out, product;
  {
    Autocast amp(torch::kCPU);
    product = torch::matmul(torch::randn({4, 4}), torch::randn({4, 4}));
    {
      Autocast nested(torch::kCPU);  // nesting keeps it on
      EXPECT_EQ(torch::mm(torch::randn({2, 2}), torch::randn({2, 2})).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(torch::mm(torch::randn({2, 2}), torch::randn({2, 2})).scalar_type(), torch::kBFloat16);
    out = vit->forward_cls(x).to(torch::kFloat);
  }
  EXPECT_EQ(product.scalar_type(), torch::kBFloat16);
  // Outside the scope: float32 again, bit for bit.
  EXPECT_EQ(torch::matmul(torch::randn({4, 4}), torch::randn({4, 4})).scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(vit->forward_cls(x), ref));
  const double rel = test::max_rel_diff(out, ref);
  EXPECT_GT(rel, 0.0) << "bf16 gave the float32 result: autocast did not take effect";
  EXPECT_LT(rel, 0.05) << "bf16 far from float32";
}

}  // namespace
}  // namespace petl

namespace petl {
namespace {

// Every registered method trains a step and evaluates under bf16 autocast on the CPU: finite loss,
// float32 gradients on its trainable tensors, logits close to the float32 forward's.
class EveryMethodBf16 : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryMethodBf16, TrainsAStepAndEvaluates) {
  PrecisionReset reset;
  const std::string name = GetParam();
  torch::manual_seed(0);
  VisionTransformer vit(test::tiny_config(32, 8, 48, 4, 4));
  auto m = test::make_method(name, vit, 10, "test_task", {}, 0.0);
  auto x = torch::randn({8, 3, 32, 32});
  auto y = torch::randint(10, {8}, torch::kInt64);
  m->train(false);
  torch::Tensor ref;
  {
    torch::NoGradGuard ng;
    ref = m->forward(x);
  }
  set_precision(Precision::kBf16);
  m->train(true);
  torch::Tensor loss;
  {
    Autocast amp(torch::kCPU);
    loss = torch::nn::functional::cross_entropy(m->forward(x).to(torch::kFloat), y);
  }
  ASSERT_TRUE(std::isfinite(loss.item<double>())) << name;
  loss.backward();
  int with_grad = 0;
  for (auto& [k, t] : m->trainable_parameters()) {
    EXPECT_EQ(t.scalar_type(), torch::kFloat) << name << " " << k;
    if (t.grad().defined()) {
      EXPECT_EQ(t.grad().scalar_type(), torch::kFloat) << name << " " << k;
      with_grad += 1;
    }
  }
  EXPECT_GT(with_grad, 0) << name;
  m->train(false);
  torch::Tensor out;
  {
    torch::NoGradGuard ng;
    Autocast amp(torch::kCPU);
    out = m->forward(x).to(torch::kFloat);
  }
  EXPECT_LT(test::max_rel_diff(out, ref), 0.1) << name;
}

INSTANTIATE_TEST_SUITE_P(Registered, EveryMethodBf16, ::testing::ValuesIn(MethodRegistry::instance().names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace petl

// CUDA checks: run on a GPU machine by scripts/gpu-check.sh (`ctest -R '^Cuda\.'`). Each test
// skips where no CUDA device is usable (every CPU build: CI compiles them and skips them).
//   - float32 on the GPU equals the CPU to 1e-4 relative (TensorFloat-32 off: petl's fp32), for the
//     embedded backbone and ViT-B/16 with random weights, and for a training step's gradients;
//   - the caching-allocator meter on a known allocation pattern;
//   - NCCL all-reduce on a one-rank communicator (builds with NCCL).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "../test_util.h"
#include "harness/train/memory_meter.h"
#include "harness/train/precision.h"
#include "models/backbone.h"

#ifdef PETL_WITH_NCCL
#include <nccl.h>

#include <c10/cuda/CUDAStream.h>
#endif

namespace petl {
namespace {

#define PETL_SKIP_WITHOUT_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (CPU LibTorch or no GPU)"

double cls_rel_diff_cpu_vs_cuda(VisionTransformer vit, const torch::Tensor& x) {
  set_precision(Precision::kFp32);  // TF32 off
  torch::NoGradGuard ng;
  vit->eval();
  const auto cpu = vit->forward_cls(x);
  vit->to(torch::kCUDA);
  const auto gpu = vit->forward_cls(x.to(torch::kCUDA)).to(torch::kCPU);
  vit->to(torch::kCPU);
  return test::max_rel_diff(gpu, cpu);
}

TEST(Cuda, EmbeddedBackboneFp32MatchesCpu) {
  PETL_SKIP_WITHOUT_CUDA();
  auto bb = make_job_backbone("", "", 0.0, false);
  torch::manual_seed(1);
  const double rel = cls_rel_diff_cpu_vs_cuda(bb.model, torch::randn({256, 3, 32, 32}));
  std::printf("embedded backbone, 256 images: max relative difference CUDA vs CPU %.3g\n", rel);
  EXPECT_LE(rel, 1e-4);
}

TEST(Cuda, VitB16RandomWeightsFp32MatchesCpu) {
  PETL_SKIP_WITHOUT_CUDA();
  auto bb = make_job_backbone("", "vit_base_patch16_224_in21k", 0.0, true);
  torch::manual_seed(2);
  const double rel = cls_rel_diff_cpu_vs_cuda(bb.model, torch::randn({8, 3, 224, 224}));
  std::printf("ViT-B/16 random weights, 8 images: max relative difference CUDA vs CPU %.3g\n", rel);
  EXPECT_LE(rel, 1e-4);
}

// One forward and backward (eval mode: no dropout draws) of a light and a heavy method: the
// trainable tensors' gradients agree.
TEST(Cuda, TrainingStepGradientsMatchCpu) {
  PETL_SKIP_WITHOUT_CUDA();
  set_precision(Precision::kFp32);
  for (const char* name : {"synqt", "lora", "full"}) {
    torch::manual_seed(3);
    VisionTransformer vit(test::tiny_config());
    auto m = test::make_method(name, vit, 10, "test_task", {}, 0.0);
    m->train(false);
    auto x = torch::randn({16, 3, 32, 32});
    auto y = torch::randint(10, {16}, torch::kInt64);
    auto grads = [&](torch::Device d) {
      m->to(d);
      vit->to(d);
      for (auto& [k, t] : m->trainable_parameters())
        if (t.grad().defined()) t.mutable_grad() = torch::Tensor();
      torch::nn::functional::cross_entropy(m->forward(x.to(d)), y.to(d)).backward();
      std::vector<torch::Tensor> g;
      for (auto& [k, t] : m->trainable_parameters())
        g.push_back(t.grad().defined() ? t.grad().to(torch::kCPU) : torch::Tensor());
      return g;
    };
    auto cpu = grads(torch::kCPU), gpu = grads(torch::kCUDA);
    ASSERT_EQ(cpu.size(), gpu.size());
    double worst = 0;
    for (size_t i = 0; i < cpu.size(); ++i)
      if (cpu[i].defined() && cpu[i].abs().max().item<double>() > 0)
        worst = std::max(worst, test::max_rel_diff(gpu[i], cpu[i]));
    std::printf("%s: gradients, max relative difference CUDA vs CPU %.3g\n", name, worst);
    EXPECT_LE(worst, 1e-4) << name;
  }
}

TEST(Cuda, MemoryMeterSeesAKnownAllocationPattern) {
  PETL_SKIP_WITHOUT_CUDA();
  ASSERT_TRUE(cuda_memory_available());
  const DeviceMemory& gpu = DeviceMemory::of(torch::Device(torch::kCUDA, 0));
  const int64_t mib = 1 << 20;
  torch::cuda::synchronize();
  PeakProbe probe(gpu);
  const int64_t base = gpu.allocated();
  {
    auto a = torch::empty({16 * mib / 4}, torch::TensorOptions().device(torch::kCUDA));  // 16 MiB
    EXPECT_EQ(gpu.allocated() - base, 16 * mib);
    auto b = torch::empty({32 * mib / 4}, torch::TensorOptions().device(torch::kCUDA));  // + 32 MiB
    EXPECT_EQ(gpu.allocated() - base, 48 * mib);
  }
  EXPECT_EQ(gpu.allocated(), base);
  { auto c = torch::empty({8 * mib / 4}, torch::TensorOptions().device(torch::kCUDA)); }
  EXPECT_EQ(probe.growth(), 48 * mib);  // the peak: a and b together
  EXPECT_GE(gpu.peak_reserved() - base, 48 * mib);
}

TEST(Cuda, NcclAllReducesOnOneRank) {
  PETL_SKIP_WITHOUT_CUDA();
#ifndef PETL_WITH_NCCL
  GTEST_SKIP() << "this build has no NCCL";
#else
  ncclComm_t comm;
  int dev = 0;
  ASSERT_EQ(ncclCommInitAll(&comm, 1, &dev), ncclSuccess);
  auto t = torch::arange(1000, torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA));
  auto out = torch::empty_like(t);
  auto stream = c10::cuda::getCurrentCUDAStream(0);
  ASSERT_EQ(
      ncclAllReduce(t.data_ptr<float>(), out.data_ptr<float>(), t.numel(), ncclFloat, ncclSum, comm, stream.stream()),
      ncclSuccess);
  torch::cuda::synchronize();
  EXPECT_TRUE(torch::equal(out.cpu(), t.cpu()));
  ncclCommDestroy(comm);
#endif
}

}  // namespace
}  // namespace petl

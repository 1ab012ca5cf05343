#include "app/bench_steps.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include "core/clock.h"
#include "harness/train/memory_meter.h"
#include "harness/train/precision.h"

namespace petl::cli {
int64_t minor_page_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return int64_t(u.ru_minflt);
}

BenchSteps bench_train_steps(Method& method, const Recipe& recipe, int steps, int64_t bs, int classes,
                             const std::function<torch::Tensor()>& logits, torch::Device device) {
  auto trainable = method.trainable_parameters();
  auto opt = make_optimizer(trainable, recipe);
  auto y = torch::randint(classes, {bs}, torch::kInt64).to(device);
  method.train(true);
  TrainingPeak peak(DeviceMemory::of(device));
  peak.begin();
  double secs = 0;
  int64_t faults = 0;
  for (int s = 0; s < steps + 1; ++s) {
    // PETL_PROFILE=FILE: the last timed step under LibTorch's profiler, written as a Chrome trace
    // (each measured run rewrites FILE: the last one remains). For profiling; timings then suffer.
    std::unique_ptr<torch::autograd::profiler::RecordProfile> prof;
    if (const char* trace = std::getenv("PETL_PROFILE"); trace && s == steps)
      prof = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(trace));
    const auto t0 = SteadyClock::now();
    const int64_t f0 = minor_page_faults();
    opt->zero_grad();
    torch::Tensor loss;
    {
      Autocast amp(device);
      loss = torch::nn::functional::cross_entropy(widen(logits()), y);
    }
    loss.backward();
    opt->step();
    if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
    if (s > 0) {
      secs += seconds_since(t0);
      faults += minor_page_faults() - f0;
    }
  }
  peak.end();
  return {double(bs) * steps / secs, double(faults) / std::max(1, steps),
          memory_breakdown(method, trainable, *opt, peak)};
}

}  // namespace petl::cli

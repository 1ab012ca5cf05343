// The timed training loop shared by `petl bench` and `petl bench --cached`: one untimed step, then
// `steps` timed ones, with the training peak measured as `petl run` measures it.
#pragma once
#include <functional>
#include <torch/torch.h>

#include "harness/train/recipe.h"
#include "harness/train/train_util.h"
#include "methods/method.h"

namespace petl::cli {

struct BenchSteps {
  double images_per_s = 0;
  double page_faults_per_step = 0;  // minor page faults of the process per timed step (fresh memory)
  MemoryBreakdown mem;
};

// Minor page faults of this process so far (getrusage): fresh memory the kernel handed out.
int64_t minor_page_faults();

// logits() returns the batch's logits (bs rows) on `device`; labels are random over `classes`.
// Forward and loss run under the process precision (harness/train/precision.h); on CUDA each timed
// step ends with a device synchronisation; memory is measured on the device's meter (DeviceMemory).
BenchSteps bench_train_steps(Method& method, const Recipe& recipe, int steps, int64_t bs, int classes,
                             const std::function<torch::Tensor()>& logits, torch::Device device = torch::kCPU);

}  // namespace petl::cli

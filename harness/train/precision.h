// The numeric precision of a job's forward passes: fp32 (exact; the reference code's) or bf16
// (autocast: matrix products and convolutions in bfloat16, reductions, norms and the loss in
// float32 — what torch.autocast(device_type, dtype=torch.bfloat16) does in PyTorch).
//
// The enum and its names are in core/enums.h. The precision is set once per process for the job(s) it runs
// (set_precision); every forward call site (training step, evaluation, the frozen backbone pass of feature sources and
// cache builds) opens an Autocast scope, which is a no-op in fp32. Backward passes run outside it, as PyTorch
// recommends. Parameters and optimizer state stay float32. TensorFloat-32 is off in both (fp32 on a GPU is float32
// arithmetic, as on the CPU).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <string>

#include "core/enums.h"

namespace petl {

// The precision of this process's jobs (default fp32).
void set_precision(Precision p);
Precision current_precision();

// `t` in float32 when autocast made it bfloat16 or float16 (logits before the loss or an argmax),
// else `t` itself (float32, or float64 in the exactness tests).
at::Tensor widen(const at::Tensor& t);

// Autocast to bfloat16 on `device`'s type (CPU or CUDA) for this scope and this thread when the
// process precision is bf16; restores the previous state (and clears the cast cache when the
// outermost scope ends, since the trainable weights change between steps).
class Autocast {
 public:
  explicit Autocast(const c10::Device& device);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool active_ = false, was_enabled_ = false;
  bool cuda_ = false;
  int prev_dtype_ = 0;
};

}  // namespace petl

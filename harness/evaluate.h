// Evaluation of a method on a split: accuracy (%) and optionally the logits in input order.
#pragma once
#include <torch/torch.h>

#include <string>

#include "harness/method.h"

namespace petl {

struct EvalResult {
  double accuracy = 0;  // percent
  int64_t n = 0;
  torch::Tensor logits;  // (N, C) when requested
};

// images/labels stay where they are (host memory); each batch is moved to `device`.
EvalResult evaluate(Method& method, const torch::Tensor& images, const torch::Tensor& labels, int64_t batch_size,
                    torch::Tensor* logits_out, bool progress, const std::string& label,
                    torch::Device device = torch::kCPU);

}  // namespace petl

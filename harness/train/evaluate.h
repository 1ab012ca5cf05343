// Evaluation of a method on a split: accuracy (%) and optionally the logits in input order.
#pragma once
#include <map>
#include <string>
#include <torch/torch.h>

#include "methods/method.h"

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

// The same from a feature cache streamed in row order (bounded memory; see feature_cache.h).
struct CacheTaps;
EvalResult evaluate_cached(Method& method, const std::string& cache_path,
                           const std::map<std::string, std::string>& expected_identity, const CacheTaps& taps,
                           int64_t batch_size, torch::Device device = torch::kCPU, torch::Tensor* logits_out = nullptr);

}  // namespace petl

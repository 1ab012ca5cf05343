// Pieces of the training step shared by `petl run` and `petl bench`: the optimizer with the
// recipe's weight-decay groups, and the memory breakdown of a measured training peak.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <utility>
#include <vector>

#include "harness/train/memory_meter.h"
#include "harness/train/recipe.h"
#include "methods/method.h"

namespace petl {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// AdamW over `trainable`: weight decay on every tensor, or none on 1-D tensors (no_decay_1d).
std::unique_ptr<torch::optim::AdamW> make_optimizer(const NamedTensors& trainable, const Recipe& r);
void set_learning_rate(torch::optim::Optimizer& opt, double lr);
// The key AdamW files a parameter's state under: its TensorImpl address (as LibTorch's own
// optimizer serialisation does).
std::string optimizer_key(const torch::Tensor& p);

// The state of the default random generator of `device` (the CPU's for a CPU device), and back.
torch::Tensor generator_state(torch::Device device);
void set_generator_state(torch::Device device, const torch::Tensor& state);

struct MemoryBreakdown {
  int64_t peak_train = 0, peak_eval = 0;  // model tensors + everything the phase allocated
  int64_t frozen_backbone = 0, trainable_params = 0, gradients = 0, optimizer_state = 0, other_model = 0;
  int64_t activations_other() const {
    return peak_train - frozen_backbone - trainable_params - gradients - optimizer_state - other_model;
  }
  int64_t peak_reserved = 0;  // CUDA caching allocator only
  std::string device = "cpu";
  nlohmann::json to_json(int64_t batch_size, int image_size) const;
};

// Call after training: sizes of the model's tensors, gradients and optimizer state, combined
// with the measured peaks. Dataset tensors alive before TrainingPeak::begin() are excluded.
// Bytes of the model's tensors: the backbone's parameters and the method's own.
int64_t model_bytes(Method& method);
// Bytes of AdamW's state (its moments) and of the gradients now allocated for its parameters.
int64_t optimizer_bytes(torch::optim::AdamW& opt);
int64_t gradient_bytes(torch::optim::AdamW& opt);
// Gives every parameter of `opt` without a gradient a zero one (as a step leaves them: LibTorch's
// zero_grad keeps them); returns the parameters it gave one.
std::vector<torch::Tensor> allocate_missing_gradients(torch::optim::AdamW& opt);

MemoryBreakdown memory_breakdown(Method& method, const NamedTensors& trainable, torch::optim::AdamW& opt,
                                 const TrainingPeak& peak);

}  // namespace petl

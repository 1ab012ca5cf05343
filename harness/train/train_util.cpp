#include "harness/train/train_util.h"

#include <ATen/Context.h>
#include <mutex>

#include "harness/train/precision.h"

namespace petl {

std::unique_ptr<torch::optim::AdamW> make_optimizer(const NamedTensors& trainable, const Recipe& r) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& [n, p] : trainable) (r.no_decay_1d && p.dim() <= 1 ? no_decay : decay).push_back(p);
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(r.lr).weight_decay(wd).betas({r.adam_beta1, r.adam_beta2}).eps(r.adam_eps));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, opts(r.weight_decay));
  if (!no_decay.empty()) groups.emplace_back(no_decay, opts(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(r.lr));
}

std::string optimizer_key(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

nlohmann::json MemoryBreakdown::to_json(int64_t batch_size, int image_size) const {
  const double mib = 1024.0 * 1024.0;
  const bool cuda = device != "cpu";
  return {{"device", device},
          {"meter", cuda ? "CUDA caching allocator peak allocated (max_memory_allocated) and peak reserved"
                         : "counting CPU allocator (exact tensor bytes; BLAS/oneDNN scratch not included)"},
          {"peak_train_reserved_mib", cuda ? nlohmann::json(peak_reserved / mib) : nlohmann::json(nullptr)},
          {"unit", "MiB"},
          {"precision", to_string(current_precision())},
          {"batch_size", batch_size},
          {"image_size", image_size},
          {"peak_train_mib", peak_train / mib},
          {"peak_eval_mib", peak_eval / mib},
          {"backbone_weights_mib", frozen_backbone / mib},
          {"trainable_state_mib", (trainable_params + gradients + optimizer_state) / mib},
          {"trainable_params_mib", trainable_params / mib},
          {"gradients_mib", gradients / mib},
          {"optimizer_state_mib", optimizer_state / mib},
          {"other_model_tensors_mib", other_model / mib},
          {"activations_other_mib", activations_other() / mib}};
}

int64_t model_bytes(Method& method) {
  int64_t model = 0;
  for (auto& p : method.backbone()->parameters()) model += p.nbytes();
  for (auto& p : method.parameters()) model += p.nbytes();
  return model;
}

int64_t optimizer_bytes(torch::optim::AdamW& opt) {
  int64_t n = 0;
  for (auto& [k, st] : opt.state()) {
    auto& s = static_cast<torch::optim::AdamWParamState&>(*st);
    for (auto& t : {s.exp_avg(), s.exp_avg_sq(), s.max_exp_avg_sq()})
      if (t.defined()) n += t.nbytes();
  }
  return n;
}

int64_t gradient_bytes(torch::optim::AdamW& opt) {
  int64_t n = 0;
  for (auto& group : opt.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined()) n += p.grad().nbytes();
  return n;
}

std::vector<torch::Tensor> allocate_missing_gradients(torch::optim::AdamW& opt) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> created;
  for (auto& group : opt.param_groups())
    for (auto& p : group.params())
      if (!p.grad().defined()) {
        p.mutable_grad() = torch::zeros_like(p);
        created.push_back(p);
      }
  return created;
}

MemoryBreakdown memory_breakdown(Method& method, const NamedTensors& trainable, torch::optim::AdamW& opt,
                                 const TrainingPeak& peak) {
  MemoryBreakdown m;
  int64_t model = 0;
  for (auto& p : method.backbone()->parameters()) {
    model += p.nbytes();
    if (!p.requires_grad()) m.frozen_backbone += p.nbytes();
  }
  for (auto& p : method.parameters()) model += p.nbytes();
  for (auto& [n, p] : trainable) {
    m.trainable_params += p.nbytes();
    if (p.grad().defined()) m.gradients += p.grad().nbytes();
  }
  m.optimizer_state = optimizer_bytes(opt);
  m.other_model = model - m.frozen_backbone - m.trainable_params;
  m.peak_train = peak.train_peak() - peak.baseline() + model;
  m.peak_eval = peak.eval_peak() > 0 ? peak.eval_peak() - peak.baseline() + model : 0;
  m.device = peak.memory().name();
  if (peak.memory().has_reserved()) m.peak_reserved = peak.train_peak_reserved();
  return m;
}

namespace {
at::Generator generator_of(torch::Device device) {
  return at::globalContext().defaultGenerator(device.is_cuda() ? device : torch::Device(torch::kCPU));
}
}  // namespace

torch::Tensor generator_state(torch::Device device) {
  auto g = generator_of(device);
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}

void set_generator_state(torch::Device device, const torch::Tensor& state) {
  auto g = generator_of(device);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
}

}  // namespace petl

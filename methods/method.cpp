#include "methods/method.h"

#include "core/error.h"

namespace petl {

std::vector<std::pair<std::string, torch::Tensor>> Method::trainable_parameters() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : named_parameters(true))
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  for (auto& item : backbone_->named_parameters(true))
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  return out;
}

int64_t Method::num_trainable() {
  int64_t n = 0;
  for (auto& [k, v] : trainable_parameters()) n += v.numel();
  return n;
}

torch::Tensor Method::forward_cached(const CachedFeatures&) {
  PETL_FAIL("method ", name(), " cannot train from cached features (it needs the live backbone)");
}

void Method::train(bool on) {
  torch::nn::Module::train(on);
  backbone_->train(on && !backbone_always_eval_);
}

MethodRegistry& MethodRegistry::instance() {
  static MethodRegistry r;
  return r;
}

bool MethodRegistry::add(MethodInfo info) {
  TORCH_INTERNAL_ASSERT(!methods_.count(info.name), "method registered twice: ", info.name);
  methods_[info.name] = std::move(info);
  return true;
}

const MethodInfo& MethodRegistry::get(const std::string& name) const {
  auto it = methods_.find(name);
  if (it == methods_.end()) {
    std::string known;
    for (auto& [k, v] : methods_) known += " " + k;
    PETL_FAIL("unknown method '", name, "'; registered:", known);
  }
  return it->second;
}

std::vector<std::string> MethodRegistry::names() const {
  std::vector<std::string> out;
  for (auto& [k, v] : methods_) out.push_back(k);
  return out;
}

std::shared_ptr<Method> build_method(const std::string& name, const MethodContext& ctx) {
  // The caller checks for unused settings: recipe keys are read from the same Settings.
  return MethodRegistry::instance().get(name).factory(ctx);
}

}  // namespace petl

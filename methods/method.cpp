// The Method base, the registry, build_method and probe_needs; see method.h.
#include "methods/method.h"

#include "core/error.h"
#include "core/text.h"

namespace petl {

std::string OptionRange::str() const {
  if (has_min() && has_max())
    return str_cat("in ", min_open ? "(" : "[", format_double(min), ", ", format_double(max), max_open ? ")" : "]");
  if (has_min()) return str_cat(min_open ? "> " : ">= ", format_double(min));
  if (has_max()) return str_cat(max_open ? "< " : "<= ", format_double(max));
  return "(any value)";
}

std::vector<std::pair<std::string, torch::Tensor>> Method::trainable_parameters() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : named_parameters(true))
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  for (auto& item : backbone_->module().named_parameters(true))
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> Method::checkpoint_tensors() {
  auto out = trainable_parameters();
  for (auto& b : trained_buffers()) out.push_back(std::move(b));
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
  backbone_->module().train(on && !backbone_always_eval_);
}

MethodRegistry& MethodRegistry::instance() {
  static MethodRegistry r;
  return r;
}

bool MethodRegistry::add(MethodInfo info) {
  TORCH_INTERNAL_ASSERT(!methods_.count(info.name), "method registered twice: ", info.name);
  TORCH_INTERNAL_ASSERT(info.factory, "method registered without a factory: ", info.name);
  methods_[info.name] = std::move(info);
  return true;
}

const MethodInfo& MethodRegistry::get(const std::string& name) const {
  auto it = methods_.find(name);
  if (it == methods_.end()) {
    std::vector<std::string> names, descriptions;
    for (auto& [k, v] : methods_) {
      names.push_back(k);
      descriptions.push_back(v.description);
    }
    throw ArgumentError(str_cat("unknown method '", name, "'", did_you_mean(name, names, descriptions),
                                "; registered: ", join(names, ", ")));
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
  auto m = MethodRegistry::instance().get(name).factory(ctx);
  m->name_ = name;
  return m;
}

BackboneNeeds probe_needs(const std::string& method, const Settings& s, double backbone_drop_path) {
  VitConfig cfg = vit_config_by_name("petl_vit_mini_p8_32");
  cfg.drop_path_rate = backbone_drop_path;
  MethodContext ctx;
  ctx.backbone = VisionTransformer(cfg);  // MethodContext holds the concrete backbone (see method.h)
  ctx.num_classes = 2;
  ctx.task = "_probe_needs";
  ctx.settings = Settings(s.items());  // a fresh record of used keys
  ctx.backbone_drop_path = backbone_drop_path;
  return build_method(method, ctx)->needs();
}

}  // namespace petl

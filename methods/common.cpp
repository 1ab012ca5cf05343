// Helpers shared by the method files; see common.h.
#include "methods/common.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace petl::methods {

torch::nn::Module& module_at(torch::nn::Module& root, const std::string& path) {
  torch::nn::Module* cur = &root;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '.')) {
    std::shared_ptr<torch::nn::Module> next;
    for (auto& c : cur->named_children())
      if (c.key() == part) next = c.value();
    if (!next) next = cur->register_module(part, Node());
    cur = next.get();
  }
  return *cur;
}

torch::Tensor register_param_under(torch::nn::Module& root, const std::string& path, const std::string& name,
                                   torch::Tensor t) {
  return path.empty() ? root.register_parameter(name, t) : module_at(root, path).register_parameter(name, t);
}

void torch_default_init(torch::nn::Linear& lin) {
  torch::NoGradGuard ng;
  torch::nn::init::kaiming_uniform_(lin->weight, std::sqrt(5.0));
  if (lin->bias.defined()) {
    const double b = 1.0 / std::sqrt(double(lin->weight.size(1)));
    lin->bias.uniform_(-b, b);
  }
}

void xavier_uniform(torch::Tensor w) {
  torch::NoGradGuard ng;
  torch::nn::init::xavier_uniform_(w);
}

void trunc_normal(torch::Tensor t, double std) {
  torch::NoGradGuard ng;
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double a = -2.0, b = 2.0, l = cdf(a / std), u = cdf(b / std);
  t.uniform_(2 * l - 1, 2 * u - 1).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(a, b);
}

void init_head(torch::nn::Linear& head, HeadInit how) {
  torch::NoGradGuard ng;
  switch (how) {
    case HeadInit::torch_default: torch_default_init(head); break;
    case HeadInit::trunc_normal:
      trunc_normal(head->weight, 0.02);
      head->bias.zero_();
      break;
    case HeadInit::vpt:
      torch::nn::init::kaiming_normal_(head->weight, 0.0, torch::kFanOut);
      head->bias.fill_(-std::log((1.0 - 0.01) / 0.01));
      break;
  }
}

HookedMethod::HookedMethod(const MethodContext& ctx, HeadInit head_init) : Method(ctx) {
  head = register_module("head", torch::nn::Linear(ctx.backbone->cfg_.embed_dim, ctx.num_classes));
  init_head(head, head_init);
}

BackboneNeeds HookedMethod::needs() const {
  BackboneNeeds n;
  n.grad_through_backbone = true;
  n.backbone_stochastic = ctx_.backbone_drop_path > 0 && !backbone_always_eval_;
  n.memory_class = "heavy";
  return n;
}

torch::Tensor HookedMethod::forward(const torch::Tensor& images) {
  return head(backbone_->forward_cls(images, this));
}

}  // namespace petl::methods

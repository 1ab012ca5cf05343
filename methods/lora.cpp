// lora — LoRA (Hu et al., ICLR 2022) on the attention qkv projection as in NOAH's LoRA baseline
// (ZhangYuanhan-AI/NOAH): with u = LN1 x,
//   [Δq, Δk, Δv] = B(A(Drop(u))),  A: D→r (kaiming_uniform(a=√5)), B: r→3D (zeros), no bias,
// added to the qkv output with no scaling, dropout 0.1, r = 8.
// ViT-B/16: 12·(768·8 + 8·2304) = 294,912 trainable without the head.
// Head: NOAH's reset_classifier (trunc_normal .02, zero bias). Names (NOAH's):
// blocks.{i}.attn.LoRA_a / LoRA_b (weight). Settings: lora_dim (8), lora_dropout (0.1),
// lora_scale (1.0; loralib's α/r when set).
#include <cmath>

#include "core/error.h"
#include "methods/common.h"

namespace petl {
namespace {

class LoRA : public methods::HookedMethod {
 public:
  explicit LoRA(const MethodContext& ctx) : HookedMethod(ctx, methods::HeadInit::trunc_normal) {
    const auto& cfg = backbone_->cfg_;
    r_ = ctx.settings.get_int("lora_dim", 8);
    drop_ = ctx.settings.get_double("lora_dropout", 0.1);
    scale_ = ctx.settings.get_double("lora_scale", 1.0);
    PETL_CHECK(r_ >= 1, "setting 'lora_dim' must be >= 1, got ", r_);
    torch::NoGradGuard ng;
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string path = "blocks." + std::to_string(i) + ".attn";
      auto a = methods::register_under(*this, path, "LoRA_a",
                                       torch::nn::Linear(torch::nn::LinearOptions(cfg.embed_dim, r_).bias(false)));
      auto b = methods::register_under(*this, path, "LoRA_b",
                                       torch::nn::Linear(torch::nn::LinearOptions(r_, 3 * cfg.embed_dim).bias(false)));
      torch::nn::init::kaiming_uniform_(a->weight, std::sqrt(5.0));
      b->weight.zero_();
      a_.push_back(a);
      b_.push_back(b);
    }
  }
  std::string name() const override { return "lora"; }
  std::map<std::string, std::string> effective_settings() const override {
    return {{"lora_dim", std::to_string(r_)},
            {"lora_dropout", std::to_string(drop_)},
            {"lora_scale", std::to_string(scale_)}};
  }
  torch::Tensor qkv_delta(int layer, const torch::Tensor& u) override {
    auto d = b_[layer](a_[layer](torch::dropout(u, drop_, is_training())));
    return scale_ == 1.0 ? d : d * scale_;
  }
  int r_ = 8;
  double drop_ = 0.1, scale_ = 1.0;
  std::vector<torch::nn::Linear> a_, b_;
};

PETL_REGISTER_METHOD((MethodInfo{"lora", "LoRA: low-rank delta on the qkv projection (NOAH baseline)", "noah", true,
                                 [](const MethodContext& c) { return std::make_shared<LoRA>(c); }}));

}  // namespace
}  // namespace petl

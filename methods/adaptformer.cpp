// adaptformer — AdaptFormer (Chen et al., NeurIPS 2022), following ShoufaChen/AdaptFormer
// models/adapter.py + vision_transformer.py (ffn_adapt, ffn_option 'parallel', ffn_adapter_layernorm_option
// 'none', init_option 'lora'): beside each block's MLP branch,
//   x ← x + DP(MLP(LN2 x)) + s·Up(Drop(ReLU(Down(x))))
// with x the (unnormalised) residual stream after attention; no drop path on the adapter.
// Down D→64 with bias (kaiming_uniform(a=√5), bias 0), Up 64→D (weight and bias 0), s = 0.1,
// dropout 0.1. ViT-B/16: 12·(2·768·64 + 64 + 768) = 1,189,632 trainable without the head.
// Names: blocks.{i}.adaptmlp.down_proj / up_proj. Settings: ffn_num (64), ffn_adapter_scalar (0.1),
// adapter_dropout (0.1).
#include <cmath>

#include "core/error.h"
#include "methods/common.h"

namespace petl {
namespace {

class AdaptFormer : public methods::HookedMethod {
 public:
  explicit AdaptFormer(const MethodContext& ctx) : HookedMethod(ctx, methods::HeadInit::torch_default) {
    const auto& cfg = backbone_->cfg_;
    r_ = ctx.settings.get_int("ffn_num", 64);
    s_ = ctx.settings.get_double("ffn_adapter_scalar", 0.1);
    drop_ = ctx.settings.get_double("adapter_dropout", 0.1);
    PETL_CHECK(r_ >= 1, "setting 'ffn_num' must be >= 1, got ", r_);
    torch::NoGradGuard ng;
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string path = "blocks." + std::to_string(i) + ".adaptmlp";
      auto down = methods::register_under(*this, path, "down_proj", torch::nn::Linear(cfg.embed_dim, r_));
      auto up = methods::register_under(*this, path, "up_proj", torch::nn::Linear(r_, cfg.embed_dim));
      torch::nn::init::kaiming_uniform_(down->weight, std::sqrt(5.0));
      down->bias.zero_();
      up->weight.zero_();
      up->bias.zero_();
      down_.push_back(down);
      up_.push_back(up);
    }
  }
  std::string name() const override { return "adaptformer"; }
  std::map<std::string, std::string> effective_settings() const override {
    return {{"ffn_num", std::to_string(r_)},
            {"ffn_adapter_scalar", std::to_string(s_)},
            {"adapter_dropout", std::to_string(drop_)}};
  }
  torch::Tensor mlp_bypass(int layer, const torch::Tensor& x, const torch::Tensor&) override {
    auto h = torch::dropout(torch::relu(down_[layer](x)), drop_, is_training());
    return up_[layer](h) * s_;
  }
  int r_ = 64;
  double s_ = 0.1, drop_ = 0.1;
  std::vector<torch::nn::Linear> down_, up_;
};

PETL_REGISTER_METHOD((MethodInfo{"adaptformer", "AdaptFormer: parallel scaled bottleneck beside each MLP",
                                 "petl_vit", true,
                                 [](const MethodContext& c) { return std::make_shared<AdaptFormer>(c); }}));

}  // namespace
}  // namespace petl

// adapter — sequential bottleneck adapter (Houlsby-style) as in NOAH's Adapter baseline
// (ZhangYuanhan-AI/NOAH): after each block's MLP branch (after its drop path),
//   x ← x + Ad(DP(MLP(LN2 x))),  Ad(z) = z + W2·Drop(QuickGELU(W1 z + b1)) + b2,
// W1: D→r, W2: r→D (r = 8), xavier_uniform weights, biases N(0, 1e-6), dropout 0.1.
// ViT-B/16: 12·(2·768·8 + 8 + 768) = 156,768 trainable without the head.
// Head: NOAH's reset_classifier (trunc_normal .02, zero bias). Names: blocks.{i}.adapter.fc1 / fc2. Settings: adapter_dim (8), adapter_dropout (0.1).
#include "core/error.h"
#include "methods/common.h"

namespace petl {
namespace {

class Adapter : public methods::HookedMethod {
 public:
  explicit Adapter(const MethodContext& ctx) : HookedMethod(ctx, methods::HeadInit::trunc_normal) {
    const auto& cfg = backbone_->cfg_;
    r_ = ctx.settings.get_int("adapter_dim", 8);
    drop_ = ctx.settings.get_double("adapter_dropout", 0.1);
    PETL_CHECK(r_ >= 1, "setting 'adapter_dim' must be >= 1, got ", r_);
    torch::NoGradGuard ng;
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string path = "blocks." + std::to_string(i) + ".adapter";
      auto f1 = methods::register_under(*this, path, "fc1", torch::nn::Linear(cfg.embed_dim, r_));
      auto f2 = methods::register_under(*this, path, "fc2", torch::nn::Linear(r_, cfg.embed_dim));
      for (auto* l : {&f1, &f2}) {
        methods::xavier_uniform((*l)->weight);
        (*l)->bias.normal_(0.0, 1e-6);
      }
      fc1_.push_back(f1);
      fc2_.push_back(f2);
    }
  }
  std::string name() const override { return "adapter"; }
  std::map<std::string, std::string> effective_settings() const override {
    return {{"adapter_dim", std::to_string(r_)}, {"adapter_dropout", std::to_string(drop_)}};
  }
  torch::Tensor after_mlp(int layer, torch::Tensor z) override {
    auto h = torch::dropout(methods::quick_gelu(fc1_[layer](z)), drop_, is_training());
    return z + fc2_[layer](h);
  }
  int r_ = 8;
  double drop_ = 0.1;
  std::vector<torch::nn::Linear> fc1_, fc2_;
};

PETL_REGISTER_METHOD((MethodInfo{"adapter", "sequential bottleneck adapter after each MLP (NOAH baseline)", "noah",
                                 true, [](const MethodContext& c) { return std::make_shared<Adapter>(c); }}));

}  // namespace
}  // namespace petl

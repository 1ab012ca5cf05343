// full — full fine-tuning: every backbone tensor trains, plus a new head on the final-norm cls
// token (timm names throughout). Backbone stochastic depth follows the recipe. Settings: none.
#include "methods/method.h"

namespace petl {
namespace {

class FullFinetune : public Method {
 public:
  explicit FullFinetune(const MethodContext& ctx) : Method(ctx) {
    head = register_module("head", torch::nn::Linear(backbone_->config().embed_dim, ctx.num_classes));
    backbone_->set_trainable(true);
  }
  BackboneNeeds needs() const override {
    BackboneNeeds n;
    n.grad_through_backbone = true;
    n.backbone_stochastic = ctx_.backbone_drop_path > 0;
    n.memory_class = MemoryClass::kHeavy;
    return n;
  }
  torch::Tensor forward(const torch::Tensor& images) override { return head(backbone_->forward_cls(images)); }
  torch::nn::Linear head{nullptr};
};

PETL_REGISTER_METHOD(MethodSpec("full")
                         .describe("full fine-tuning of every backbone tensor + head")
                         .recipe("synqt")
                         .make<FullFinetune>());

}  // namespace
}  // namespace petl

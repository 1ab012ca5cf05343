// linear — linear probe: frozen backbone (eval mode, deterministic), head on the final-norm cls
// token. Head init as timm's reset_classifier (torch.nn.Linear default). docs/spec/baselines.md "linear".
// Settings: none.
#include "methods/method.h"

namespace petl {
namespace {

class LinearProbe : public Method {
 public:
  explicit LinearProbe(const MethodContext& ctx) : Method(ctx) {
    head = register_module("head", torch::nn::Linear(ctx.backbone->cfg_.embed_dim, ctx.num_classes));
    backbone_always_eval_ = true;  // features of a linear probe are fixed
  }
  BackboneNeeds needs() const override {
    BackboneNeeds n;
    n.final_cls = true;
    n.memory_class = "light";
    return n;
  }
  torch::Tensor forward(const torch::Tensor& images) override {
    torch::Tensor feats;
    {
      torch::NoGradGuard ng;
      feats = backbone_->forward_cls(images);
    }
    return head(feats);
  }
  torch::Tensor forward_cached(const CachedFeatures& f) override { return head(f.cls); }
  torch::nn::Linear head{nullptr};
};

PETL_REGISTER_METHOD(MethodSpec("linear")
                         .describe("linear probe on the frozen final-norm cls token")
                         .recipe("synqt")
                         .make<LinearProbe>());

}  // namespace
}  // namespace petl

// linear — linear probe: frozen backbone (eval mode, deterministic), head on the final-norm cls
// token. Head init as timm's reset_classifier (torch.nn.Linear default). docs/spec/baselines.md "linear".
// Settings: none.
#include "methods/common.h"
#include "methods/method.h"
#include "methods/options.h"

namespace petl {
namespace {

struct LinearOptions {
  int backbone_micro_batch{};
};
const methods::OptionTable<LinearOptions> kOptions = methods::OptionTable<LinearOptions>().add(
    "backbone_micro_batch", &LinearOptions::backbone_micro_batch, methods::kBackboneMicroBatch,
    methods::Range::at_least(0), methods::backbone_micro_batch_help());

class LinearProbe : public Method {
 public:
  explicit LinearProbe(const MethodContext& ctx) : Method(ctx) {
    head = register_module("head", torch::nn::Linear(backbone_->config().embed_dim, ctx.num_classes));
    backbone_always_eval_ = true;  // features of a linear probe are fixed
    o_ = kOptions.parse(ctx.settings, kOptions.defaults());
  }
  std::map<std::string, std::string> effective_settings() const override { return kOptions.effective(o_); }
  BackboneNeeds needs() const override {
    BackboneNeeds n;
    n.final_cls = true;
    n.memory_class = MemoryClass::kLight;
    n.frozen_chunk = o_.backbone_micro_batch;
    return n;
  }
  torch::Tensor forward(const torch::Tensor& images) override {
    return head(methods::frozen_pass(*backbone_, images, o_.backbone_micro_batch, false, true).cls);
  }
  torch::Tensor forward_cached(const CachedFeatures& f) override { return head(f.cls); }
  LinearOptions o_;
  torch::nn::Linear head{nullptr};
};

PETL_REGISTER_METHOD(MethodSpec("linear")
                         .describe("linear probe on the frozen final-norm cls token")
                         .recipe("synqt")
                         .options(kOptions.describe())
                         .make<LinearProbe>());

}  // namespace
}  // namespace petl

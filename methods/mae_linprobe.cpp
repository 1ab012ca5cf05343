// mae_linprobe — MAE's linear probe (facebookresearch/mae main_linprobe.py): the frozen backbone's
// pooled feature (the cls token after the final norm on vit_base_patch16_224_mae, as MAE's linear
// probe uses it) into head = Sequential(BatchNorm1d(D, affine=False, eps=1e-6), Linear(D, C)), the
// Linear's weight trunc_normal(std .01) and bias zero. Names as MAE's state dict: head.0.running_mean
// / running_var (buffers, in checkpoints and mid-job state), head.1.weight / bias. The batch statistics
// make it need at least 2 images per training chunk. `linear` is the PETL papers' plain linear probe.
#include "methods/common.h"
#include "methods/method.h"
#include "methods/options.h"

namespace petl {
namespace {

struct MaeLinprobeOptions {
  int backbone_micro_batch{};
};
const methods::OptionTable<MaeLinprobeOptions> kOptions = methods::OptionTable<MaeLinprobeOptions>().add(
    "backbone_micro_batch", &MaeLinprobeOptions::backbone_micro_batch, methods::kBackboneMicroBatch,
    methods::Range::at_least(0), methods::backbone_micro_batch_help());

class MaeLinprobe : public Method {
 public:
  explicit MaeLinprobe(const MethodContext& ctx) : Method(ctx) {
    const int64_t D = backbone_->config().embed_dim;
    bn_ = torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(D).affine(false).eps(1e-6));
    auto linear = torch::nn::Linear(D, ctx.num_classes);
    {
      torch::NoGradGuard ng;
      methods::trunc_normal(linear->weight, 0.01);
      linear->bias.zero_();
    }
    head = register_module("head", torch::nn::Sequential(bn_, linear));
    backbone_always_eval_ = true;  // features of a linear probe are fixed
    o_ = kOptions.parse(ctx.settings, kOptions.defaults());
  }
  std::map<std::string, std::string> effective_settings() const override { return kOptions.effective(o_); }
  BackboneNeeds needs() const override {
    BackboneNeeds n;
    n.final_cls = true;
    n.memory_class = MemoryClass::kLight;
    n.frozen_chunk = o_.backbone_micro_batch;
    n.min_chunk = 2;  // the BatchNorm head
    return n;
  }
  torch::Tensor forward(const torch::Tensor& images) override {
    return head->forward(methods::frozen_pass(*backbone_, images, o_.backbone_micro_batch, false, true).cls);
  }
  torch::Tensor forward_cached(const CachedFeatures& f) override { return head->forward(f.cls); }
  std::vector<std::pair<std::string, torch::Tensor>> trained_buffers() override {
    return {{"head.0.running_mean", bn_->running_mean}, {"head.0.running_var", bn_->running_var}};
  }
  MaeLinprobeOptions o_;
  torch::nn::BatchNorm1d bn_{nullptr};
  torch::nn::Sequential head{nullptr};
};

PETL_REGISTER_METHOD(MethodSpec("mae_linprobe")
                         .describe("MAE's linear probe: BatchNorm1d(affine=False) + linear head on the frozen pooled "
                                   "feature (facebookresearch/mae main_linprobe.py)")
                         .recipe("synqt")
                         .for_family("mae")
                         .options(kOptions.describe())
                         .make<MaeLinprobe>());

}  // namespace
}  // namespace petl

// adaptformer — AdaptFormer (Chen et al., NeurIPS 2022), following ShoufaChen/AdaptFormer
// models/adapter.py + vision_transformer.py (ffn_adapt, ffn_option 'parallel', ffn_adapter_layernorm_option
// 'none', init_option 'lora'): beside each block's MLP branch,
//   x ← x + DP(MLP(LN2 x)) + s·Up(Drop(ReLU(Down(x))))
// with x the (unnormalised) residual stream after attention; no drop path on the adapter.
// Down D→64 with bias (kaiming_uniform(a=√5), bias 0), Up 64→D (weight and bias 0), s = 0.1,
// dropout 0.1. ViT-B/16: 12·(2·768·64 + 64 + 768) = 1,189,632 trainable without the head.
// Names: blocks.{i}.adaptmlp.down_proj / up_proj. Settings: see kOptions below.
// Head as its main_image.py builds it: Sequential(BatchNorm1d(D, affine=False, eps=1e-6), Linear)
// — names head.0.running_mean / running_var (trained state, in the checkpoint) and head.1.weight /
// bias; the Linear's weight trunc_normal(std .01), bias 0 (its _init_weights). In training the BN
// normalises with the batch's statistics and updates the running ones (momentum 0.1, unbiased
// variance), in evaluation with the running ones — exactly torch.nn.BatchNorm1d.
#include <cmath>

#include "core/error.h"
#include "methods/common.h"
#include "methods/options.h"

namespace petl {
namespace {

struct AdaptFormerOptions {
  int ffn_num{};
  double ffn_adapter_scalar{}, adapter_dropout{};
};

const methods::OptionTable<AdaptFormerOptions> kOptions =
    methods::OptionTable<AdaptFormerOptions>()
        .add("ffn_num", &AdaptFormerOptions::ffn_num, 64, methods::Range::at_least(1), "bottleneck width of Down/Up")
        .add("ffn_adapter_scalar", &AdaptFormerOptions::ffn_adapter_scalar, 0.1, methods::Range::any(),
             "scale s of the adapter output")
        .add("adapter_dropout", &AdaptFormerOptions::adapter_dropout, 0.1, methods::Range::probability(),
             "dropout after the ReLU");

class AdaptFormer : public methods::HookedMethod {
 public:
  explicit AdaptFormer(const MethodContext& ctx) : HookedMethod(ctx, methods::HeadInit::torch_default) {
    const auto& cfg = backbone_->config();
    o_ = kOptions.parse(ctx.settings);
    torch::NoGradGuard ng;
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string path = "blocks." + std::to_string(i) + ".adaptmlp";
      auto down = methods::register_under(*this, path, "down_proj", torch::nn::Linear(cfg.embed_dim, o_.ffn_num));
      auto up = methods::register_under(*this, path, "up_proj", torch::nn::Linear(o_.ffn_num, cfg.embed_dim));
      torch::nn::init::kaiming_uniform_(down->weight, std::sqrt(5.0));
      down->bias.zero_();
      up->weight.zero_();
      up->bias.zero_();
      down_.push_back(down);
      up_.push_back(up);
    }
    auto bn = torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(cfg.embed_dim).affine(false).eps(1e-6));
    auto linear = torch::nn::Linear(cfg.embed_dim, ctx.num_classes);
    methods::trunc_normal(linear->weight, 0.01);
    linear->bias.zero_();
    bn_head_ = torch::nn::Sequential(bn, linear);
    replace_module("head", bn_head_);
    head = linear;
    bn_ = bn;
  }
  torch::Tensor forward(const torch::Tensor& images) override {
    return bn_head_->forward(backbone_->forward_cls(images, this));
  }
  BackboneNeeds needs() const override {
    BackboneNeeds n = HookedMethod::needs();
    n.min_chunk = 2;  // the BatchNorm head
    return n;
  }
  std::vector<std::pair<std::string, torch::Tensor>> trained_buffers() override {
    return {{"head.0.running_mean", bn_->running_mean}, {"head.0.running_var", bn_->running_var}};
  }
  std::map<std::string, std::string> effective_settings() const override { return kOptions.effective(o_); }
  torch::Tensor mlp_bypass(int layer, const torch::Tensor& x, const torch::Tensor&) override {
    auto h = torch::dropout(torch::relu(down_[layer](x)), o_.adapter_dropout, is_training());
    return up_[layer](h) * o_.ffn_adapter_scalar;
  }
  AdaptFormerOptions o_;
  std::vector<torch::nn::Linear> down_, up_;
  torch::nn::Sequential bn_head_{nullptr};
  torch::nn::BatchNorm1d bn_{nullptr};
};

PETL_REGISTER_METHOD(MethodSpec("adaptformer")
                         .describe("AdaptFormer: parallel scaled bottleneck beside each MLP")
                         .recipe("petl_vit")
                         .options(kOptions.describe())
                         .import_authors([](const std::map<std::string, torch::Tensor>& a,
                                            std::vector<std::string>& dropped) {
                           // The authors' state_dict: the whole model; petl keeps the adapters and
                           // the BN head (its num_batches_tracked is unused with momentum 0.1).
                           std::map<std::string, torch::Tensor> out;
                           for (auto& [k, v] : a) {
                             const bool keep = k.find(".adaptmlp.") != std::string::npos ||
                                               k.rfind("head.1.", 0) == 0 || k == "head.0.running_mean" ||
                                               k == "head.0.running_var";
                             if (keep)
                               out[k] = v;
                             else
                               dropped.push_back(k);
                           }
                           PETL_CHECK(out.count("head.0.running_mean") && out.count("head.1.weight"),
                                      "authors' checkpoint: no BatchNorm head (head.0.running_mean, head.1.weight)");
                           return out;
                         })
                         .make<AdaptFormer>());

}  // namespace
}  // namespace petl

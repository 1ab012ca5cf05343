// lora — LoRA (Hu et al., ICLR 2022) on the attention qkv projection as in NOAH's LoRA baseline
// (ZhangYuanhan-AI/NOAH): with u = LN1 x,
//   [Δq, Δk, Δv] = B(A(Drop(u))),  A: D→r, B: r→3D, no bias,
// added to the qkv output with no scaling, dropout 0.1, r = 8.
// ViT-B/16: 12·(768·8 + 8·2304) = 294,912 trainable without the head. Initialisation as NOAH's
// code leaves it at step 0: its model-wide _init_vit_weights (self.apply, after the supernet is
// built) re-initialises A and B with trunc_normal(.02), so B is not zero and the branch is not the
// identity at step 0 (init=noah, the default); init=module keeps loralib's (A kaiming_uniform(a=√5),
// B zeros).
// Head: NOAH's reset_classifier (trunc_normal .02, zero bias). Names (NOAH's):
// blocks.{i}.attn.LoRA_a / LoRA_b (weight). Settings: see kOptions below.
#include <cmath>

#include "core/error.h"
#include "methods/common.h"
#include "methods/options.h"

namespace petl {
namespace {

struct LoraOptions {
  int lora_dim{};
  double lora_dropout{}, lora_scale{};
  methods::NoahInit init{};
};

const methods::OptionTable<LoraOptions> kOptions =
    methods::OptionTable<LoraOptions>()
        .add("lora_dim", &LoraOptions::lora_dim, 8, methods::Range::at_least(1), "rank r of A: D→r, B: r→3D")
        .add("lora_dropout", &LoraOptions::lora_dropout, 0.1, methods::Range::probability(),
             "dropout on LN1 x before A")
        .add("lora_scale", &LoraOptions::lora_scale, 1.0, methods::Range::any(),
             "scale of the qkv delta (NOAH: 1; loralib's α/r when set)")
        .add("init", &LoraOptions::init, methods::NoahInit::kNoah,
             "noah: what NOAH's code does at step 0 (its model-wide _init_vit_weights re-initialises A and B "
             "with trunc_normal(.02): B is not zero); module: loralib's init (A kaiming_uniform(a=√5), B zeros)");

class LoRA : public methods::HookedMethod {
 public:
  explicit LoRA(const MethodContext& ctx) : HookedMethod(ctx, methods::HeadInit::trunc_normal) {
    const auto& cfg = backbone_->config();
    o_ = kOptions.parse(ctx.settings);
    const int r = o_.lora_dim;
    torch::NoGradGuard ng;
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string path = "blocks." + std::to_string(i) + ".attn";
      auto a = methods::register_under(*this, path, "LoRA_a",
                                       torch::nn::Linear(torch::nn::LinearOptions(cfg.embed_dim, r).bias(false)));
      auto b = methods::register_under(*this, path, "LoRA_b",
                                       torch::nn::Linear(torch::nn::LinearOptions(r, 3 * cfg.embed_dim).bias(false)));
      if (o_.init == methods::NoahInit::kNoah) {
        methods::trunc_normal(a->weight, 0.02);
        methods::trunc_normal(b->weight, 0.02);
      } else {
        torch::nn::init::kaiming_uniform_(a->weight, std::sqrt(5.0));
        b->weight.zero_();
      }
      a_.push_back(a);
      b_.push_back(b);
    }
  }
  std::map<std::string, std::string> effective_settings() const override { return kOptions.effective(o_); }
  torch::Tensor qkv_delta(int layer, const torch::Tensor& u) override {
    auto d = b_[layer](a_[layer](torch::dropout(u, o_.lora_dropout, is_training())));
    return o_.lora_scale == 1.0 ? d : d * o_.lora_scale;
  }
  LoraOptions o_;
  std::vector<torch::nn::Linear> a_, b_;
};

PETL_REGISTER_METHOD(MethodSpec("lora")
                         .describe("LoRA: low-rank delta on the qkv projection (NOAH baseline)")
                         .recipe("noah")
                         .options(kOptions.describe())
                         .make<LoRA>());

}  // namespace
}  // namespace petl

// adapter — sequential bottleneck adapter (Houlsby-style) as in NOAH's Adapter baseline
// (ZhangYuanhan-AI/NOAH): after each block's MLP branch (after its drop path),
//   x ← x + Ad(DP(MLP(LN2 x))),  Ad(z) = z + W2·Drop(QuickGELU(W1 z + b1)) + b2,
// W1: D→r, W2: r→D (r = 8), dropout 0.1. Initialisation as NOAH's code leaves it at step 0: the
// Adapter module inits xavier_uniform weights and N(0, 1e-6) biases, but NOAH then runs the
// model-wide _init_vit_weights (self.apply), which re-initialises every Linear with trunc_normal(.02)
// weights and zero biases; that is the default here (init=noah; init=module keeps the module's).
// ViT-B/16: 12·(2·768·8 + 8 + 768) = 156,768 trainable without the head.
// Head: NOAH's reset_classifier (trunc_normal .02, zero bias). Names as NOAH: blocks.{i}.adapter.ln1 (W1) / ln2 (W2).
// Settings: see kOptions below.
#include "core/error.h"
#include "methods/common.h"
#include "methods/options.h"

namespace petl {
namespace {

struct AdapterOptions {
  int adapter_dim{};
  double adapter_dropout{};
  methods::NoahInit init{};
};

const methods::OptionTable<AdapterOptions> kOptions =
    methods::OptionTable<AdapterOptions>()
        .add("adapter_dim", &AdapterOptions::adapter_dim, 8, methods::Range::at_least(1), "bottleneck width r")
        .add("adapter_dropout", &AdapterOptions::adapter_dropout, 0.1, methods::Range::probability(),
             "dropout after the bottleneck's QuickGELU")
        .add("init", &AdapterOptions::init, methods::NoahInit::kNoah,
             "noah: what NOAH's code does at step 0 (its model-wide _init_vit_weights re-initialises the "
             "adapter: trunc_normal(.02) weights, zero biases); module: the Adapter module's own init "
             "(xavier_uniform weights, N(0, 1e-6) biases)");

class Adapter : public methods::HookedMethod {
 public:
  explicit Adapter(const MethodContext& ctx) : HookedMethod(ctx, methods::HeadInit::trunc_normal) {
    const auto& cfg = backbone_->config();
    o_ = kOptions.parse(ctx.settings);
    torch::NoGradGuard ng;
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string path = "blocks." + std::to_string(i) + ".adapter";
      auto f1 = methods::register_under(*this, path, "ln1", torch::nn::Linear(cfg.embed_dim, o_.adapter_dim));
      auto f2 = methods::register_under(*this, path, "ln2", torch::nn::Linear(o_.adapter_dim, cfg.embed_dim));
      for (auto* l : {&f1, &f2}) {
        if (o_.init == methods::NoahInit::kNoah) {
          methods::trunc_normal((*l)->weight, 0.02);
          (*l)->bias.zero_();
        } else {
          methods::xavier_uniform((*l)->weight);
          (*l)->bias.normal_(0.0, 1e-6);
        }
      }
      fc1_.push_back(f1);
      fc2_.push_back(f2);
    }
  }
  std::map<std::string, std::string> effective_settings() const override { return kOptions.effective(o_); }
  torch::Tensor after_mlp(int layer, torch::Tensor z) override {
    auto h = torch::dropout(methods::quick_gelu(fc1_[layer](z)), o_.adapter_dropout, is_training());
    return z + fc2_[layer](h);
  }
  AdapterOptions o_;
  std::vector<torch::nn::Linear> fc1_, fc2_;
};

PETL_REGISTER_METHOD(MethodSpec("adapter")
                         .describe("sequential bottleneck adapter after each MLP (NOAH baseline)")
                         .recipe("noah")
                         .options(kOptions.describe())
                         .make<Adapter>());

}  // namespace
}  // namespace petl

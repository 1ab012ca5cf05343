// lst — Ladder Side-Tuning (Sung et al., NeurIPS 2022) for ViT. The LST repository covers T5/BART
// and VL-BART only; there is no official ViT code, so this is petl's design (docs/spec/baselines.md):
//   a side ViT of width d = D/r (r = 8: 96 at ViT-B) and the backbone's depth, fed by the frozen
//   backbone through per-layer down-projections and learned gates:
//     h_0 = W_0 x_0                          (x_0: the backbone's embedded tokens, W_i: D→d with bias)
//     h_{i+1} = g_i·SideBlock_i(h_i) + (1 − g_i)·W_{i+1} x_{i+1},   g_i = σ(α_i / 0.1), α_i = 0
//   (x_{i+1}: output of backbone block i); then the side LayerNorm, its cls token (or as below) →
//   head (d → C).
// Side blocks are timm pre-norm blocks (heads = the backbone's when they divide d, else 1; MLP ratio
// 4, exact GELU, no layer scale, whatever the backbone family), timm-initialised (trunc_normal .02
// weights, zero biases) — the LST paper's pruned-backbone initialisation does not carry over from T5
// and is not used.
// Backbones (no reference to follow here): the side network carries every backbone token (registers
// included) and pools its tokens the way the backbone pools its own (Backbone::pool_tokens): the cls
// token, or on a mean-pooling backbone (MAE's fine-tuned layout) the mean of the patch tokens.
// No gradient reaches the backbone (light, like LST): the backbone runs under no-grad and only the
// L+1 hidden states it hands to the side network are kept for the down-projections' backward.
// ViT-B/16 (d 96, 12 heads of 8): 13·(768·96 + 96) + 12·(12·96² + 13·96) + 12 + 2·96 = 2,301,996
// trainable without the head. Names: side_downsamples.{i}, side_gates (α), side_blocks.{i}.*
// (timm block names), side_norm, head. Settings: see kOptions below.
#include <cmath>

#include "core/error.h"
#include "methods/common.h"
#include "methods/options.h"

namespace petl {
namespace {

using torch::Tensor;

struct LstOptions {
  int lst_reduction{};
  double gate_temperature{};
};

const methods::OptionTable<LstOptions> kOptions =
    methods::OptionTable<LstOptions>()
        .add("lst_reduction", &LstOptions::lst_reduction, 8, methods::Range::at_least(1),
             "side width d = D / r (r must divide the backbone width D)")
        .add("gate_temperature", &LstOptions::gate_temperature, 0.1, methods::Range::above(0),
             "temperature of the ladder gates g = σ(α / temperature)");

struct HiddenTap : BlockHooks {
  std::vector<Tensor> outs;
  Tensor after_block(int, Tensor x) override {
    outs.push_back(x);
    return x;
  }
};

class Lst : public Method {
 public:
  explicit Lst(const MethodContext& ctx) : Method(ctx) {
    const auto& cfg = backbone_->config();
    o_ = kOptions.parse(ctx.settings);
    PETL_CHECK(cfg.embed_dim % o_.lst_reduction == 0, "setting 'lst_reduction': expected a divisor of the width ",
               cfg.embed_dim, ", got ", o_.lst_reduction);
    backbone_always_eval_ = true;
    d_ = cfg.embed_dim / o_.lst_reduction;
    VitConfig sc = cfg;
    sc.embed_dim = d_;
    sc.num_heads = d_ % cfg.num_heads == 0 ? cfg.num_heads : 1;
    sc.drop_path_rate = 0.0;
    sc.act = Activation::kGelu;  // the side blocks are plain timm blocks in every backbone family
    sc.init_values = 0.0;
    torch::NoGradGuard ng;
    for (int i = 0; i <= cfg.depth; ++i) {
      auto w =
          methods::register_under(*this, "side_downsamples", std::to_string(i), torch::nn::Linear(cfg.embed_dim, d_));
      methods::trunc_normal(w->weight, 0.02);
      w->bias.zero_();
      down_.push_back(w);
    }
    gates = register_parameter("side_gates", torch::zeros({cfg.depth}));
    for (int i = 0; i < cfg.depth; ++i) {
      auto b = methods::register_under(*this, "side_blocks", std::to_string(i), Block(sc, i, 0.0));
      for (auto* lin : {b->attn->qkv.get(), b->attn->proj.get(), b->mlp->fc1.get(), b->mlp->fc2.get()}) {
        methods::trunc_normal(lin->weight, 0.02);
        lin->bias.zero_();
      }
      blocks_.push_back(b);
    }
    side_norm = register_module("side_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_}).eps(cfg.ln_eps)));
    head = register_module("head", torch::nn::Linear(d_, ctx.num_classes));
    methods::init_head(head, methods::HeadInit::trunc_normal);
  }
  BackboneNeeds needs() const override {
    BackboneNeeds n;
    n.block_tokens = true;  // every block's output tokens (not served by the feature cache)
    n.memory_class = MemoryClass::kLight;
    return n;
  }
  std::map<std::string, std::string> effective_settings() const override {
    auto m = kOptions.effective(o_);
    m["side_width"] = std::to_string(d_);
    return m;
  }
  Tensor forward(const Tensor& images) override {
    HiddenTap tap;
    Tensor x0;
    {
      torch::NoGradGuard ng;
      x0 = backbone_->embed(images);
      backbone_->forward_blocks(x0, &tap);
    }
    auto h = down_[0](x0);
    auto g = torch::sigmoid(gates / o_.gate_temperature);
    for (size_t i = 0; i < blocks_.size(); ++i)
      h = g[i] * blocks_[i]->forward(h) + (1 - g[i]) * down_[i + 1](tap.outs[i]);
    return head(side_norm(backbone_->pool_tokens(h)));
  }

  LstOptions o_;
  int d_ = 96;  // side width D / lst_reduction
  std::vector<torch::nn::Linear> down_;
  std::vector<Block> blocks_;
  Tensor gates;
  torch::nn::LayerNorm side_norm{nullptr};
  torch::nn::Linear head{nullptr};
};

PETL_REGISTER_METHOD(MethodSpec("lst")
                         .describe("LST for ViT (petl design): gated ladder side network of width D/8")
                         .recipe("noah")
                         .options(kOptions.describe())
                         .make<Lst>());

}  // namespace
}  // namespace petl

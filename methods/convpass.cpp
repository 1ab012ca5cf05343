// convpass — Convolutional Bypasses (Jie & Deng, 2022), following JieShibo/PETL-ViT
// convpass/vtab/convpass.py: beside attention and MLP of every block,
//   x ← x + DP(Attn(LN1 x)) + s·DP(C_a(LN1 x));  x ← x + DP(MLP(LN2 x)) + s·DP(C_m(LN2 x))
// (each DP an independent draw of the block's stochastic depth).
// C(z): d = QuickGELU(W_d z + b_d) (D→8, xavier weight, zero bias); the patch tokens as a
// (B, 8, g, g) image through Conv2d 8→8 3×3 pad 1; the cls token through the same conv as a 1×1
// image (only the centre tap acts); concat [cls, patches], QuickGELU, Dropout 0.1, W_u (8→D, zero
// weight and bias). Conv init: zero weights with the centre tap = identity, zero bias
// (xavier_uniform weight when the task's xavier_init flag is set).
// ViT-B/16: 12·2·(768·8 + 8 + 8·8·9 + 8 + 8·768 + 768) = 327,552 trainable without the head.
// Names: blocks.{i}.adapter_attn / adapter_mlp .{adapter_down, adapter_conv, adapter_up}.
// Per-task s and xavier_init: config/baselines/convpass_task_configs.csv (PETL-ViT's
// convpass/vtab/configs/convpass, all 19 tasks; oxford_iiit_pet and smallnorb_azi were missing
// there until 2026-12-06); tasks outside VTAB use set_Convpass's defaults s = 1, xavier_init False
// unless --set scale= / xavier_init=. Head: timm 0.4.12 reset_classifier (nn.Linear default init).
// Backbones: the bypass's layout is the reference's [cls, g×g patches]; a backbone with register
// tokens between them (DINOv2 reg4) is refused at construction — the reference has no place for
// them (a grid pixel? a 1×1 image like cls?), and petl does not invent one. Mean-pooling backbones
// are fine: the token sequence keeps its length and the head reads the backbone's pool().
// Settings: see kOptions below (per-task values apply below --set values).
#include <cmath>

#include "core/error.h"
#include "methods/common.h"
#include "methods/options.h"

namespace petl {
namespace {

struct ConvpassOptions {
  double scale{};
  bool xavier_init{};
  int convpass_dim{};
  double adapter_dropout{};
};

const methods::OptionTable<ConvpassOptions> kOptions =
    methods::OptionTable<ConvpassOptions>()
        .add("scale", &ConvpassOptions::scale, 1.0, methods::Range::any(),
             "scale s of both bypasses (per task: convpass_task_configs.csv)")
        .add("xavier_init", &ConvpassOptions::xavier_init, false, methods::BoolText::true_false,
             "xavier_uniform conv weights instead of the identity centre tap (per task)")
        .add("convpass_dim", &ConvpassOptions::convpass_dim, 8, methods::Range::at_least(1),
             "bottleneck width (conv channels)")
        .add("adapter_dropout", &ConvpassOptions::adapter_dropout, 0.1, methods::Range::probability(),
             "dropout after the conv's QuickGELU (the reference's fixed nn.Dropout(0.1))");

struct ConvBypass {
  torch::nn::Linear down{nullptr}, up{nullptr};
  torch::nn::Conv2d conv{nullptr};
};

class Convpass : public methods::HookedMethod {
 public:
  explicit Convpass(const MethodContext& ctx) : HookedMethod(ctx, methods::HeadInit::torch_default) {
    const auto& cfg = backbone_->config();
    methods::refuse_register_tokens(
        *backbone_, "convpass",
        str_cat("its reference code (JieShibo/PETL-ViT Convpass) reshapes tokens 1..", cfg.num_patches(), " into the ",
                cfg.grid(), "x", cfg.grid(), " patch grid and convolves only the cls token on its own"));
    auto row = methods::task_row("baselines/convpass_task_configs.csv", ctx.task, &source_);
    if (source_.empty()) source_ = "default (task not in convpass_task_configs.csv)";
    ConvpassOptions base = kOptions.defaults();
    if (row.count("scale")) base.scale = std::stod(row["scale"]);
    if (row.count("xavier_init")) base.xavier_init = row["xavier_init"] == "True";
    const auto& st = ctx.settings;
    if (st.has("scale") || st.has("xavier_init") || st.has("convpass_dim")) source_ += " + --set overrides";
    o_ = kOptions.parse(st, base);
    grid_ = cfg.grid();
    const int dim = o_.convpass_dim;
    torch::NoGradGuard ng;
    for (int i = 0; i < cfg.depth; ++i) {
      for (const char* which : {"adapter_attn", "adapter_mlp"}) {
        const std::string path = "blocks." + std::to_string(i) + "." + which;
        ConvBypass c;
        c.conv = methods::register_under(*this, path, "adapter_conv",
                                         torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 3).padding(1)));
        if (o_.xavier_init) {
          methods::xavier_uniform(c.conv->weight);
        } else {
          c.conv->weight.zero_();
          c.conv->weight.select(3, 1).select(2, 1).add_(torch::eye(dim));
        }
        c.conv->bias.zero_();
        c.down = methods::register_under(*this, path, "adapter_down", torch::nn::Linear(cfg.embed_dim, dim));
        c.up = methods::register_under(*this, path, "adapter_up", torch::nn::Linear(dim, cfg.embed_dim));
        methods::xavier_uniform(c.down->weight);
        c.down->bias.zero_();
        c.up->weight.zero_();
        c.up->bias.zero_();
        (std::string(which) == "adapter_attn" ? attn_ : mlp_).push_back(c);
      }
    }
  }
  std::map<std::string, std::string> effective_settings() const override {
    auto m = kOptions.effective(o_);
    m["_task_config_source"] = source_;
    return m;
  }
  torch::Tensor bypass(ConvBypass& c, const torch::Tensor& z) {
    const int64_t B = z.size(0), N = z.size(1), dim = o_.convpass_dim;
    PETL_CHECK(N >= 1 + int64_t(grid_) * grid_, "convpass expects cls + ", grid_, "x", grid_, " patch tokens, got ", N);
    auto d = methods::quick_gelu(c.down(z));
    auto patches = d.narrow(1, 1, grid_ * grid_).reshape({B, grid_, grid_, dim}).permute({0, 3, 1, 2});
    patches = c.conv(patches).permute({0, 2, 3, 1}).reshape({B, grid_ * grid_, dim});
    auto cls = d.narrow(1, 0, 1).reshape({B, 1, 1, dim}).permute({0, 3, 1, 2});
    cls = c.conv(cls).permute({0, 2, 3, 1}).reshape({B, 1, dim});
    auto h = torch::dropout(methods::quick_gelu(torch::cat({cls, patches}, 1)), o_.adapter_dropout, is_training());
    return c.up(h);
  }
  torch::Tensor attn_bypass(int layer, const torch::Tensor&, const torch::Tensor& ln1_x) override {
    return backbone_->block(layer).apply_drop_path(bypass(attn_[layer], ln1_x)) * o_.scale;
  }
  torch::Tensor mlp_bypass(int layer, const torch::Tensor&, const torch::Tensor& ln2_x) override {
    return backbone_->block(layer).apply_drop_path(bypass(mlp_[layer], ln2_x)) * o_.scale;
  }

  ConvpassOptions o_;
  int grid_ = 14;
  std::string source_;
  std::vector<ConvBypass> attn_, mlp_;
};

PETL_REGISTER_METHOD(MethodSpec("convpass")
                         .describe("Convpass: parallel convolutional bypasses beside attention and MLP")
                         .recipe("petl_vit")
                         .options(kOptions.describe())
                         .make<Convpass>());

}  // namespace
}  // namespace petl

// dtl / dtl_plus — Disentangled Transfer Learning (Fu et al., AAAI 2024), following heekhero/DTL
// models/vision_transformer.py and train_vit_vtab.py. A compact side path accumulates low-rank
// projections of every block's input and is added back to the token stream after the late blocks:
//   R = 0;  before block b (all b):  R += (x_b Aᵀ_b) Bᵀ_b,   A_b: (2, D) kaiming_uniform(a=√5), B_b: (D, 2) zeros
//   after block b ≥ L/2 (6..11 at L = 12):  x += F(R ⊙ σ(100 R))       (R is never reset)
// F is the identity (DTL) or, for DTL+, one depthwise k×k conv over the patch grid (D groups, no bias,
// PyTorch default init, padding 'same'; shared by all side outputs) with the cls row passed through.
// Classifier input: mean of the patch tokens (cls excluded) → the frozen final norm → head
// (timm init: trunc_normal .02, zero bias). The reference's patch tokens are x[:, 1:]; with register
// tokens (DINOv2 reg4) they are the tokens after cls and the registers (Backbone::patch_tokens, as
// timm's avg pool skips num_prefix_tokens). On a mean-pooling backbone (MAE's fine-tuned layout)
// this is the backbone's own pooled feature, as in the reference. Gradients reach only the blocks
// after the first side output (memory class "partial"). No dropout or scale on the side path.
// ViT-B/16: 12·4·768 = 36,864 trainable without the head (+ 768·k² for DTL+).
// Names: lora_dict.{b}.lora_A, lora_dict.{b}.lora_B, lora_fusion.weight, head.
// Recipe "dtl": AdamW wd 0.05 (not on biases), batch 32, timm cosine stepped by train.py for 100
// epochs + 10 at min_lr, evaluated once at the end (use --protocol final for the paper's number);
// per-task lr / drop_path_rate and the DTL+ kernel: config/baselines/dtl_task_configs.csv.
// DTL+ refuses a backbone with register tokens at construction: its fusion conv folds tokens 1..P
// into the patch grid and passes only the cls row through; the reference has no place for registers.
// Settings: see kDtlOptions / kDtlPlusOptions below.
#include <cmath>

#include "core/error.h"
#include "methods/common.h"
#include "methods/options.h"

namespace petl {
namespace {

using torch::Tensor;

struct DtlOptions {
  int dtl_rank{};
  double dtl_beta{};
  int dtl_first_side_block{};
  int kernel{};  // DTL+ only
};

const methods::OptionTable<DtlOptions> kDtlOptions =
    methods::OptionTable<DtlOptions>()
        .add("dtl_rank", &DtlOptions::dtl_rank, 2, methods::Range::at_least(1), "rank of the side projections B_b A_b")
        .add("dtl_beta", &DtlOptions::dtl_beta, 100.0, methods::Range::any(), "gate sharpness: R ⊙ σ(beta R)")
        .add("dtl_first_side_block", &DtlOptions::dtl_first_side_block, 6, methods::Range::at_least(0),
             "first block after which the side output is added (must be < depth)")
        .default_text("depth/2");
const methods::OptionTable<DtlOptions> kDtlPlusOptions =
    methods::OptionTable<DtlOptions>(kDtlOptions)
        .add("kernel", &DtlOptions::kernel, 3, methods::Range::at_least(1),
             "depthwise conv kernel k (per task: config/baselines/dtl_task_configs.csv)");

class Dtl : public Method, public BlockHooks {
 public:
  Dtl(const MethodContext& ctx, bool plus) : Method(ctx), plus_(plus) {
    const auto& cfg = backbone_->config();
    const int D = cfg.embed_dim;
    if (plus_)
      methods::refuse_register_tokens(
          *backbone_, "dtl_plus",
          str_cat("its reference code (heekhero/DTL) folds side-path tokens 1..", cfg.num_patches(), " into the ",
                  cfg.grid(), "x", cfg.grid(),
                  " patch grid for its depthwise conv and passes only the cls row through"));
    DtlOptions base = options().defaults();
    base.dtl_first_side_block = cfg.depth / 2;
    if (plus_) {
      auto row = methods::task_row("baselines/dtl_task_configs.csv", ctx.task, &source_);
      if (row.count("dtl_plus_kernel")) base.kernel = std::stoi(row["dtl_plus_kernel"]);
      if (source_.empty()) source_ = "default (task not in dtl_task_configs.csv)";
      if (ctx.settings.has("kernel")) source_ += " + --set kernel";
    }
    o_ = options().parse(ctx.settings, base);
    rank_ = o_.dtl_rank;
    beta_ = o_.dtl_beta;
    start_ = o_.dtl_first_side_block;
    kernel_ = o_.kernel;
    PETL_CHECK(start_ < cfg.depth, "setting 'dtl_first_side_block': expected an integer in [0, ", cfg.depth,
               ") (the depth), got ", start_);
    torch::NoGradGuard ng;
    for (int b = 0; b < cfg.depth; ++b) {
      const std::string path = "lora_dict." + std::to_string(b);
      auto a = methods::register_param_under(*this, path, "lora_A", torch::empty({rank_, D}));
      auto bb = methods::register_param_under(*this, path, "lora_B", torch::zeros({D, rank_}));
      torch::nn::init::kaiming_uniform_(a, std::sqrt(5.0));
      A_.push_back(a);
      B_.push_back(bb);
    }
    if (plus_) {
      fusion_ = methods::register_param_under(*this, "lora_fusion", "weight", torch::empty({D, 1, kernel_, kernel_}));
      torch::nn::init::kaiming_uniform_(fusion_, std::sqrt(5.0));  // nn.Conv2d default
    }
    head = register_module("head", torch::nn::Linear(D, ctx.num_classes));
    methods::init_head(head, methods::HeadInit::trunc_normal);
  }
  const methods::OptionTable<DtlOptions>& options() const { return plus_ ? kDtlPlusOptions : kDtlOptions; }
  BackboneNeeds needs() const override {
    BackboneNeeds n;
    n.grad_through_backbone = true;
    n.backbone_stochastic = ctx_.backbone_drop_path > 0;
    n.memory_class = MemoryClass::kPartial;
    return n;
  }
  std::map<std::string, std::string> effective_settings() const override {
    auto m = options().effective(o_);
    if (plus_) m["_task_config_source"] = source_;
    return m;
  }
  Tensor before_block(int layer, Tensor x) override {
    auto d = torch::matmul(torch::matmul(x, A_[layer].t()), B_[layer].t());
    r_ = layer == 0 ? d : r_ + d;
    return x;
  }
  Tensor after_block(int layer, Tensor x) override {
    if (layer < start_) return x;
    auto g = r_ * torch::sigmoid(beta_ * r_);
    if (plus_) g = fuse(g);
    return x + g;
  }
  Tensor fuse(const Tensor& g) {
    const int64_t B = g.size(0), N = g.size(1), D = g.size(2);
    const int grid = backbone_->config().grid();
    PETL_CHECK(N == 1 + int64_t(grid) * grid, "dtl_plus expects cls + ", grid, "x", grid, " tokens, got ", N);
    auto img = g.narrow(1, 1, N - 1).transpose(1, 2).reshape({B, D, grid, grid});
    const int left = (kernel_ - 1) / 2, right = kernel_ - 1 - left;  // PyTorch's padding='same'
    img = torch::constant_pad_nd(img, {left, right, left, right});
    img = torch::conv2d(img, fusion_, Tensor(), torch::IntArrayRef{1}, torch::IntArrayRef{0}, torch::IntArrayRef{1}, D);
    return torch::cat({g.narrow(1, 0, 1), img.flatten(2).transpose(1, 2)}, 1);
  }
  Tensor forward(const Tensor& images) override {
    auto x = backbone_->forward_blocks(backbone_->embed(images), this);
    r_ = Tensor();
    // The reference's x[:, 1:].mean(1): the patch tokens (after cls and any registers), then the
    // backbone's final norm without hooks.
    return head(backbone_->final_norm(backbone_->patch_tokens(x).mean(1)));
  }
  bool plus_;
  DtlOptions o_;
  // Short names for o_'s fields used by the maths below.
  int rank_ = 2, start_ = 6, kernel_ = 3;
  double beta_ = 100.0;
  std::string source_;
  std::vector<Tensor> A_, B_;
  Tensor fusion_, r_;
  torch::nn::Linear head{nullptr};
};

std::map<std::string, std::string> dtl_recipe(const std::string& task, const std::string& prefix) {
  std::string src;
  auto row = methods::task_row("baselines/dtl_task_configs.csv", task, &src);
  std::map<std::string, std::string> out;
  if (row.count(prefix + "lr")) out["lr"] = row[prefix + "lr"];
  if (row.count(prefix + "drop_path_rate")) out["drop_path_rate"] = row[prefix + "drop_path_rate"];
  return out;
}

PETL_REGISTER_METHOD(MethodSpec("dtl")
                         .describe("DTL: low-rank disentangled side path added after the late blocks")
                         .recipe("dtl")
                         .options(kDtlOptions.describe())
                         .task_recipe([](const std::string& t) { return dtl_recipe(t, "dtl_"); })
                         .make<Dtl>(false));
PETL_REGISTER_METHOD(MethodSpec("dtl_plus")
                         .describe("DTL+: DTL with a shared depthwise conv on the side output")
                         .recipe("dtl")
                         .options(kDtlPlusOptions.describe())
                         .task_recipe([](const std::string& t) { return dtl_recipe(t, "dtl_plus_"); })
                         .make<Dtl>(true));

}  // namespace
}  // namespace petl

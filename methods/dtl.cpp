// dtl / dtl_plus — Disentangled Transfer Learning (Fu et al., AAAI 2024), following heekhero/DTL
// models/vision_transformer.py and train_vit_vtab.py. A compact side path accumulates low-rank
// projections of every block's input and is added back to the token stream after the late blocks:
//   R = 0;  before block b (all b):  R += (x_b Aᵀ_b) Bᵀ_b,   A_b: (2, D) kaiming_uniform(a=√5), B_b: (D, 2) zeros
//   after block b ≥ L/2 (6..11 at L = 12):  x += F(R ⊙ σ(100 R))       (R is never reset)
// F is the identity (DTL) or, for DTL+, one depthwise k×k conv over the patch grid (D groups, no bias,
// PyTorch default init, padding 'same'; shared by all side outputs) with the cls row passed through.
// Classifier input: mean of the patch tokens (cls excluded) → the frozen final norm → head
// (timm init: trunc_normal .02, zero bias). Gradients reach only the blocks after the first side
// output (memory class "partial"). No dropout or scale on the side path.
// ViT-B/16: 12·4·768 = 36,864 trainable without the head (+ 768·k² for DTL+).
// Names: lora_dict.{b}.lora_A, lora_dict.{b}.lora_B, lora_fusion.weight, head.
// Recipe "dtl": AdamW wd 0.05 (not on biases), batch 32, timm cosine stepped by train.py for 100
// epochs + 10 at min_lr, evaluated once at the end (use --protocol final for the paper's number);
// per-task lr / drop_path_rate and the DTL+ kernel: config/baselines/dtl_task_configs.csv.
#include <cmath>

#include "core/error.h"
#include "methods/common.h"

namespace petl {
namespace {

using torch::Tensor;

class Dtl : public Method, public BlockHooks {
 public:
  Dtl(const MethodContext& ctx, bool plus) : Method(ctx), plus_(plus) {
    const auto& cfg = backbone_->cfg_;
    const int D = cfg.embed_dim;
    rank_ = ctx.settings.get_int("dtl_rank", 2);
    beta_ = ctx.settings.get_double("dtl_beta", 100.0);
    start_ = ctx.settings.get_int("dtl_first_side_block", cfg.depth / 2);
    PETL_CHECK(rank_ >= 1, "setting 'dtl_rank' must be >= 1, got ", rank_);
    PETL_CHECK(start_ >= 0 && start_ < cfg.depth, "setting 'dtl_first_side_block' must lie in [0, ", cfg.depth,
               "), got ", start_);
    if (plus_) {
      auto row = methods::task_row("baselines/dtl_task_configs.csv", ctx.task, &source_);
      kernel_ = row.count("dtl_plus_kernel") ? std::stoi(row["dtl_plus_kernel"]) : 3;
      if (source_.empty()) source_ = "default (task not in dtl_task_configs.csv)";
      if (ctx.settings.has("kernel")) source_ += " + --set kernel";
      kernel_ = ctx.settings.get_int("kernel", kernel_);
      PETL_CHECK(kernel_ >= 1, "setting 'kernel' must be >= 1, got ", kernel_);
    }
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
  std::string name() const override { return plus_ ? "dtl_plus" : "dtl"; }
  BackboneNeeds needs() const override {
    BackboneNeeds n;
    n.grad_through_backbone = true;
    n.backbone_stochastic = ctx_.backbone_drop_path > 0;
    n.memory_class = "partial";
    return n;
  }
  std::map<std::string, std::string> effective_settings() const override {
    std::map<std::string, std::string> m = {{"dtl_rank", std::to_string(rank_)},
                                            {"dtl_beta", std::to_string(beta_)},
                                            {"dtl_first_side_block", std::to_string(start_)}};
    if (plus_) {
      m["kernel"] = std::to_string(kernel_);
      m["_task_config_source"] = source_;
    }
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
    const int grid = backbone_->cfg_.img_size / backbone_->cfg_.patch_size;
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
    auto pooled = x.narrow(1, 1, x.size(1) - 1).mean(1);
    return head(backbone_->norm(pooled));
  }
  bool plus_;
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

PETL_REGISTER_METHOD((MethodInfo{"dtl", "DTL: low-rank disentangled side path added after the late blocks", "dtl",
                                 true, [](const MethodContext& c) { return std::make_shared<Dtl>(c, false); },
                                 [](const std::string& t) { return dtl_recipe(t, "dtl_"); }}));
PETL_REGISTER_METHOD((MethodInfo{"dtl_plus", "DTL+: DTL with a shared depthwise conv on the side output", "dtl",
                                 true, [](const MethodContext& c) { return std::make_shared<Dtl>(c, true); },
                                 [](const std::string& t) { return dtl_recipe(t, "dtl_plus_"); }}));

}  // namespace
}  // namespace petl

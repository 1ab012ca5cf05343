// Vision Transformer backbone (timm 0.4.12 math and names). See vit.h.
#include "models/vit.h"

#include <cmath>

#include "core/error.h"
#include "core/text.h"
#include "models/arch_registry.h"
#include "models/kv_attention.h"

namespace petl {
namespace {
BlockHooks& no_hooks() {
  static BlockHooks hooks;
  return hooks;
}
inline torch::Tensor add_if(torch::Tensor a, const torch::Tensor& b) { return b.defined() ? a + b : a; }
// timm's trunc_normal_ (bounds a, b absolute), via the inverse CDF like torch.nn.init.
void trunc_normal_(torch::Tensor t, double std, double a = -2.0, double b = 2.0) {
  torch::NoGradGuard ng;
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  double l = cdf(a / std), u = cdf(b / std);
  t.uniform_(2 * l - 1, 2 * u - 1).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(a, b);
}
}  // namespace

torch::Tensor drop_path(const torch::Tensor& x, double prob, bool training) {
  if (prob <= 0.0 || !training) return x;
  double keep = 1.0 - prob;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto mask = (torch::rand(shape, x.options()) + keep).floor_();
  return x.div(keep) * mask;
}

VitConfig vit_config_by_name(const std::string& arch) {
  VitConfig c = arch_by_name(arch).config;
  c.arch = arch;  // an alias keeps its own name (records and job keys carry it)
  return c;
}

std::vector<std::string> known_archs() {
  std::vector<std::string> names;
  for (const auto& e : arch_registry()) names.push_back(e.name);
  return names;
}

std::string to_string(Pooling p) { return p == Pooling::kClsAfterNorm ? "cls_after_norm" : "mean_patches_fc_norm"; }

Pooling parse_pooling(const std::string& s) {
  if (s == "cls_after_norm") return Pooling::kClsAfterNorm;
  if (s == "mean_patches_fc_norm") return Pooling::kMeanPatchesFcNorm;
  throw ArgumentError(str_cat("pooling '", s, "': expected cls_after_norm or mean_patches_fc_norm"));
}

std::string to_string(Activation a) { return a == Activation::kGelu ? "gelu" : "quick_gelu"; }

Activation parse_activation(const std::string& s) {
  if (s == "gelu") return Activation::kGelu;
  if (s == "quick_gelu") return Activation::kQuickGelu;
  throw ArgumentError(str_cat("activation '", s, "': expected gelu or quick_gelu"));
}

namespace {
torch::Tensor activate(const torch::Tensor& x, Activation a) {
  return a == Activation::kGelu ? torch::gelu(x) : x * torch::sigmoid(1.702 * x);
}
}  // namespace

LayerScaleImpl::LayerScaleImpl(int dim, double init_values) {
  gamma = register_parameter("gamma", torch::full({dim}, init_values));
}

MlpImpl::MlpImpl(int dim, int hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

AttentionImpl::AttentionImpl(int dim, int heads) : heads_(heads), dim_(dim) {
  PETL_CHECK(dim % heads == 0, "embed_dim ", dim, " is not divisible by num_heads ", heads);
  scale_ = std::pow(double(dim / heads), -0.5);
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

BlockImpl::BlockImpl(const VitConfig& cfg, int layer, double drop_path)
    : layer_(layer), drop_path_(drop_path), ln_eps_(cfg.ln_eps), act_(cfg.act) {
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.embed_dim}).eps(cfg.ln_eps)));
  attn = register_module("attn", Attention(cfg.embed_dim, cfg.num_heads));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.embed_dim}).eps(cfg.ln_eps)));
  mlp = register_module("mlp", Mlp(cfg.embed_dim, cfg.mlp_hidden()));
  if (cfg.init_values > 0) {  // timm's order of registration: norm1, attn, ls1, norm2, mlp, ls2
    ls1 = register_module("ls1", LayerScale(cfg.embed_dim, cfg.init_values));
    ls2 = register_module("ls2", LayerScale(cfg.embed_dim, cfg.init_values));
  }
}

torch::Tensor BlockImpl::apply_drop_path(const torch::Tensor& t) { return drop_path(t, drop_path_, is_training()); }

torch::Tensor BlockImpl::forward(torch::Tensor x, BlockHooks* hooks_in) {
  BlockHooks& hk = hooks_in ? *hooks_in : no_hooks();
  const int L = layer_;
  x = hk.before_block(L, x);
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), H = attn->heads_;

  auto h = hk.scale_shift(L, HookPoint::norm1, norm1(x));
  auto qkv = hk.scale_shift(L, HookPoint::qkv, add_if(attn->qkv(h), hk.qkv_delta(L, h)));
  qkv = qkv.reshape({B, N, 3, H, D / H}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  if (hk.wants_kv()) hk.on_kv(L, k, v);
  auto a = torch::matmul(q, k.transpose(-2, -1)) * attn->scale_;
  a = a.softmax(-1);
  auto o = torch::matmul(a, v).transpose(1, 2).reshape({B, N, D});
  auto proj = hk.scale_shift(L, HookPoint::proj, add_if(attn->proj(o), hk.proj_delta(L, o)));
  if (!ls1.is_empty()) proj = ls1(proj);
  auto x1 = add_if(x + apply_drop_path(proj), hk.attn_bypass(L, x, h));

  auto h2 = hk.scale_shift(L, HookPoint::norm2, norm2(x1));
  auto f1 = hk.scale_shift(L, HookPoint::fc1, add_if(mlp->fc1(h2), hk.fc1_delta(L, h2)));
  auto g = activate(f1, act_);
  auto f2 = hk.scale_shift(L, HookPoint::fc2, add_if(mlp->fc2(g), hk.fc2_delta(L, g)));
  if (!ls2.is_empty()) f2 = ls2(f2);
  auto branch = hk.after_mlp(L, apply_drop_path(f2));
  auto out = add_if(x1 + branch, hk.mlp_bypass(L, x1, h2));
  return hk.after_block(L, out);
}

std::pair<torch::Tensor, torch::Tensor> BlockImpl::keys_values(const torch::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), H = attn->heads_;
  auto qkv = attn->qkv(norm1(x)).reshape({B, N, 3, H, D / H}).permute({2, 0, 3, 1, 4});
  return {qkv[1], qkv[2]};
}

torch::Tensor BlockImpl::attend_with(const torch::Tensor& p_normed, const torch::Tensor& k, const torch::Tensor& v,
                                     const torch::Tensor& rows) {
  const int64_t B = p_normed.size(0), T = p_normed.size(1), D = p_normed.size(2), H = attn->heads_;
  // Only the q part of qkv is needed for the query tokens: weight rows [0, D).
  auto w = attn->qkv->weight.narrow(0, 0, D);
  auto b = attn->qkv->bias.narrow(0, 0, D);
  auto q = torch::nn::functional::linear(p_normed, w, b).reshape({B, T, H, D / H}).permute({0, 2, 1, 3});
  auto o = frozen_kv_attention(q, k, v, attn->scale_, 0, rows).transpose(1, 2).reshape({B, T, D});
  auto out = attn->proj(o);
  return ls1.is_empty() ? out : ls1(out);
}

torch::Tensor BlockImpl::mlp_branch(const torch::Tensor& p) {
  auto out = mlp->fc2(activate(mlp->fc1(norm2(p)), act_));
  return ls2.is_empty() ? out : ls2(out);
}

PatchEmbedImpl::PatchEmbedImpl(int patch, int in_chans, int dim, bool bias) {
  proj = register_module("proj",
                         torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, dim, patch).stride(patch).bias(bias)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& images) { return proj(images).flatten(2).transpose(1, 2); }

VisionTransformerImpl::VisionTransformerImpl(const VitConfig& cfg) : cfg_(cfg) {
  PETL_CHECK(cfg.img_size % cfg.patch_size == 0, "img_size ", cfg.img_size, " is not a multiple of patch_size ",
             cfg.patch_size);
  PETL_CHECK(cfg.reg_tokens >= 0, "reg_tokens ", cfg.reg_tokens, " is negative");
  patch_embed = register_module("patch_embed", PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.embed_dim, cfg.patch_bias));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, cfg.embed_dim}));
  if (cfg.reg_tokens > 0) reg_token = register_parameter("reg_token", torch::zeros({1, cfg.reg_tokens, cfg.embed_dim}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, cfg.pos_embed_rows(), cfg.embed_dim}));
  if (cfg.pre_norm)
    norm_pre =
        register_module("norm_pre", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.embed_dim}).eps(cfg.ln_eps)));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < cfg.depth; ++i) {
    double dpr = cfg.depth > 1 ? cfg.drop_path_rate * i / (cfg.depth - 1) : 0.0;  // torch.linspace
    auto b = Block(cfg, i, dpr);
    blocks->push_back(b);
    block_list_.push_back(b);
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.embed_dim}).eps(cfg.ln_eps)));
}

void VisionTransformerImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard ng;
  torch::manual_seed(seed);
  // patch embedding: PyTorch's default conv init, drawn from the seeded generator
  torch::nn::init::kaiming_uniform_(patch_embed->proj->weight, std::sqrt(5.0));
  if (patch_embed->proj->bias.defined()) {
    const double fan_in = patch_embed->proj->weight[0].numel();
    patch_embed->proj->bias.uniform_(-1.0 / std::sqrt(fan_in), 1.0 / std::sqrt(fan_in));
  }
  for (auto* ln : {&norm, &norm_pre}) {
    if (ln->is_empty()) continue;
    (*ln)->weight.fill_(1.0);
    (*ln)->bias.zero_();
  }
  for (auto& b : block_list_)
    for (auto* ln : {b->norm1.get(), b->norm2.get()}) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  trunc_normal_(pos_embed, 0.02);
  trunc_normal_(cls_token, 0.02);
  for (auto& b : block_list_) {
    for (auto* lin : {b->attn->qkv.get(), b->attn->proj.get(), b->mlp->fc1.get(), b->mlp->fc2.get()}) {
      trunc_normal_(lin->weight, 0.02);
      lin->bias.zero_();
    }
    for (auto* ls : {&b->ls1, &b->ls2})
      if (!ls->is_empty()) (*ls)->gamma.fill_(cfg_.init_values);
  }
  if (reg_token.defined()) reg_token.normal_(0.0, 1e-6);  // timm 0.9.16
}

torch::Tensor VisionTransformerImpl::embed(const torch::Tensor& images, BlockHooks* hooks) {
  PETL_CHECK(images.dim() == 4 && images.size(1) == cfg_.in_chans && images.size(2) == cfg_.img_size &&
                 images.size(3) == cfg_.img_size,
             "backbone ", cfg_.arch, " expects images (B, ", cfg_.in_chans, ", ", cfg_.img_size, ", ", cfg_.img_size,
             "), got ", images.sizes());
  auto x = patch_embed(images);
  if (hooks) x = hooks->scale_shift(-1, HookPoint::patch_embed, x);
  auto cls = cls_token.expand({x.size(0), -1, -1});
  x = torch::cat({cls, x}, 1) + pos_embed;
  // DINOv2: the registers go after cls, after the position embedding (they have none).
  if (reg_token.defined())
    x = torch::cat({x.narrow(1, 0, 1), reg_token.expand({x.size(0), -1, -1}), x.narrow(1, 1, x.size(1) - 1)}, 1);
  return norm_pre.is_empty() ? x : norm_pre(x);
}

torch::Tensor VisionTransformerImpl::forward_blocks(torch::Tensor x, BlockHooks* hooks) {
  for (auto& b : block_list_) x = b->forward(x, hooks);
  return x;
}

torch::Tensor VisionTransformerImpl::final_norm(const torch::Tensor& x, BlockHooks* hooks) {
  auto y = norm(x);
  if (hooks) y = hooks->scale_shift(-1, HookPoint::final_norm, y);
  return y;
}

torch::Tensor VisionTransformerImpl::patch_tokens(const torch::Tensor& tokens) const {
  PETL_CHECK(tokens.dim() == 3 && tokens.size(1) == cfg_.num_tokens(), "backbone ", cfg_.arch,
             ": the patch tokens are those of the backbone's own ", cfg_.num_tokens(), " tokens (",
             cfg_.num_prefix_tokens(), " prefix + ", cfg_.num_patches(), " patches), got a sequence of shape ",
             tokens.sizes(), " (a method that adds tokens needs cls_after_norm pooling)");
  return tokens.narrow(1, cfg_.num_prefix_tokens(), cfg_.num_patches());
}

torch::Tensor VisionTransformerImpl::pool_tokens(const torch::Tensor& tokens) const {
  if (cfg_.pool == Pooling::kClsAfterNorm) return tokens.select(1, 0);
  return patch_tokens(tokens).mean(1);
}

torch::Tensor VisionTransformerImpl::pool(const torch::Tensor& tokens, BlockHooks* hooks) {
  return final_norm(pool_tokens(tokens), hooks);
}

torch::Tensor VisionTransformerImpl::forward_cls(const torch::Tensor& images, BlockHooks* hooks) {
  return pool(forward_blocks(embed(images, hooks), hooks), hooks);
}

void VisionTransformerImpl::set_trainable(bool on) {
  for (auto& p : parameters()) p.set_requires_grad(on);
}

void VisionTransformerImpl::set_drop_path_enabled(bool on) {
  for (size_t i = 0; i < block_list_.size(); ++i) {
    double dpr = cfg_.depth > 1 ? cfg_.drop_path_rate * i / (cfg_.depth - 1) : 0.0;
    block_list_[i]->set_drop_path_prob(on ? dpr : 0.0);
  }
}

int64_t VisionTransformerImpl::num_parameters() const {
  int64_t n = 0;
  for (auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace petl

// Vision Transformer backbone with timm 0.4.12 math and parameter names
// (patch_embed.proj, cls_token, pos_embed, blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2},
// norm): LayerNorm eps 1e-6, exact GELU, qkv laid out [q|k|v], attention scale (D/H)^-1/2,
// stochastic depth ramped linearly over the blocks. The families' variants are VitConfig flags with
// timm 0.9.16's names: CLIP's norm_pre, bias-free patch embedding and QuickGELU; DINOv2's layer scale
// (blocks.i.ls1/ls2.gamma, applied to each branch before drop path, also in attend_with/mlp_branch)
// and registers (reg_token).
//
// VisionTransformerImpl and BlockImpl implement the interfaces methods use (models/backbone_api.h:
// Backbone, BackboneBlock, with the BlockHooks extension points). The members stay public for the
// rest of petl (checkpoint loading, the feature cache, the CLI); methods never read them.
#pragma once
#include <string>
#include <torch/torch.h>
#include <vector>

#include "models/backbone_api.h"

namespace petl {

// The architecture registry's entries (models/arch_registry.h): the config of a name or alias (its
// arch field is the name as given), and every entry's name in registry order.
VitConfig vit_config_by_name(const std::string& arch);  // throws petl::ArgumentError listing known names
std::vector<std::string> known_archs();

struct MlpImpl : torch::nn::Module {
  MlpImpl(int dim, int hidden);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(int dim, int heads);
  int heads_, dim_;
  double scale_;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

// timm's LayerScale: x · gamma (parameter `gamma`, (D)).
struct LayerScaleImpl : torch::nn::Module {
  LayerScaleImpl(int dim, double init_values);
  torch::Tensor forward(const torch::Tensor& x) { return x * gamma; }
  torch::Tensor gamma;
};
TORCH_MODULE(LayerScale);

struct BlockImpl : torch::nn::Module, BackboneBlock {
  BlockImpl(const VitConfig& cfg, int layer, double drop_path);
  // x ← x + DP(Attn(LN1 x)); x ← x + DP(MLP(LN2 x)), with the hooks' extension points.
  torch::Tensor forward(torch::Tensor x, BlockHooks* hooks = nullptr) override;
  // K and V of tokens x exactly as forward() computes them: (B, H, N, D/H) each.
  std::pair<torch::Tensor, torch::Tensor> keys_values(const torch::Tensor& x) override;
  torch::Tensor apply_norm1(const torch::Tensor& t) override { return norm1(t); }
  // Query-only attention: queries from p_normed (B, T, D, already through norm1), keys/values
  // given in any floating dtype (models/kv_attention.h: float16 K/V are converted per use, never
  // kept as float32 for backward); softmax over the N keys only; returns proj(...) (B, T, D)
  // without drop path. `rows` (optional): k, v are a resident store and image b is its row rows[b]
  // (frozen_kv_attention).
  torch::Tensor attend_with(const torch::Tensor& p_normed, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& rows = {}) override;
  // mlp(norm2(p)) without drop path.
  torch::Tensor mlp_branch(const torch::Tensor& p) override;
  // The block's stochastic depth (identity in eval mode or with rate 0). Each call draws anew.
  torch::Tensor apply_drop_path(const torch::Tensor& t) override;
  double drop_path_prob() const override { return drop_path_; }
  void set_drop_path_prob(double p) { drop_path_ = p; }

  int layer_;
  double drop_path_;
  double ln_eps_;
  Activation act_;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  LayerScale ls1{nullptr}, ls2{nullptr};  // with layer scale only (cfg.init_values > 0)
  Attention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

struct PatchEmbedImpl : torch::nn::Module {
  PatchEmbedImpl(int patch, int in_chans, int dim, bool bias = true);
  torch::Tensor forward(const torch::Tensor& images);  // (B, num_patches, D)
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

struct VisionTransformerImpl : torch::nn::Module, Backbone {
  explicit VisionTransformerImpl(const VitConfig& cfg);
  // timm-style init: trunc_normal(0.02) for pos/cls/linear weights, zero biases, LN (1, 0).
  void init_weights(uint64_t seed);
  const VitConfig& config() const override { return cfg_; }
  BackboneBlock& block(int i) override { return *block_list_.at(i); }
  // cls + patch tokens + pos_embed, then the registers after cls, then norm_pre: (B, num_tokens, D).
  torch::Tensor embed(const torch::Tensor& images, BlockHooks* hooks = nullptr) override;
  // All blocks; returns the tokens before the final norm.
  torch::Tensor forward_blocks(torch::Tensor x, BlockHooks* hooks = nullptr) override;
  torch::Tensor final_norm(const torch::Tensor& x, BlockHooks* hooks = nullptr) override;
  std::pair<torch::Tensor, torch::Tensor> final_norm_affine() override { return {norm->weight, norm->bias}; }
  // The P tokens after the prefix tokens (cls, registers); an error when tokens were added.
  torch::Tensor patch_tokens(const torch::Tensor& tokens) const override;
  torch::Tensor pool_tokens(const torch::Tensor& tokens) const override;
  // The pooled feature of the tokens after the blocks (cfg_.pool): the final-norm cls token, or the
  // final norm of the mean of the patch tokens (an error when tokens were added): (B, D).
  torch::Tensor pool(const torch::Tensor& tokens, BlockHooks* hooks = nullptr) override;
  // The pooled feature of images (what timm's pre-logits feed the head): (B, D).
  torch::Tensor forward_cls(const torch::Tensor& images, BlockHooks* hooks = nullptr) override;
  // Sets requires_grad on every backbone tensor.
  void set_trainable(bool on) override;
  // Per-block stochastic depth on (the configured ramp) or off (deterministic backbone).
  void set_drop_path_enabled(bool on) override;
  torch::nn::Module& module() override { return *this; }
  int64_t num_parameters() const;

  VitConfig cfg_;
  PatchEmbed patch_embed{nullptr};
  torch::Tensor cls_token, pos_embed;
  torch::Tensor reg_token;                 // (1, R, D) when cfg_.reg_tokens > 0
  torch::nn::LayerNorm norm_pre{nullptr};  // when cfg_.pre_norm
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  std::vector<Block> block_list_;
};
TORCH_MODULE(VisionTransformer);

// timm's DropPath: per-sample Bernoulli(keep) mask scaled by 1/keep.
torch::Tensor drop_path(const torch::Tensor& x, double prob, bool training);

}  // namespace petl

// Vision Transformer backbone with timm 0.4.12 math and parameter names
// (patch_embed.proj, cls_token, pos_embed, blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2},
// norm): LayerNorm eps 1e-6, exact GELU, qkv laid out [q|k|v], attention scale (D/H)^-1/2,
// stochastic depth ramped linearly over the blocks. The families' variants are VitConfig flags with
// timm 0.9.16's names: CLIP's norm_pre, bias-free patch embedding and QuickGELU; DINOv2's layer scale
// (blocks.i.ls1/ls2.gamma, applied to each branch before drop path, also in attend_with/mlp_branch)
// and registers (reg_token).
//
// Extension points for PETL methods (docs/spec/conventions.md §4) — a method never rewrites a block:
//   BlockHooks      called inside every block: qkv/proj/fc1/fc2 deltas (LoRA, FacT), scale/shift
//                   points (SSF), parallel bypasses (AdaptFormer, Convpass), a sequential adapter
//                   after the MLP branch, token rewrites before/after a block (VPT-deep, DTL),
//                   and a K/V tap (SynQT, VQT, the feature cache).
//   BlockImpl::attend_with / mlp_branch / apply_drop_path
//                   query-only attention of extra tokens against a block's own K/V (SynQT, VQT).
#pragma once
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/enums.h"  // PosResample

namespace petl {

// What the backbone's feature for a head is (timm's global_pool / MAE's global_pool):
//   kClsAfterNorm       the cls token after the final norm (timm 'token'; the PETL papers' VTAB runs)
//   kMeanPatchesFcNorm  the mean of the patch tokens through the final norm (MAE fine-tuning's
//                       fc_norm; petl keeps it under the name `norm`)
enum class Pooling { kClsAfterNorm, kMeanPatchesFcNorm };
std::string to_string(Pooling p);  // "cls_after_norm" | "mean_patches_fc_norm"
Pooling parse_pooling(const std::string& s);

// The MLP's activation: exact GELU (timm, MAE, MoCo v3, DINOv2) or CLIP's QuickGELU x·σ(1.702x).
enum class Activation { kGelu, kQuickGelu };
std::string to_string(Activation a);  // "gelu" | "quick_gelu"
Activation parse_activation(const std::string& s);

struct VitConfig {
  std::string arch = "custom";
  int img_size = 224;
  int patch_size = 16;
  int in_chans = 3;
  int embed_dim = 768;
  int depth = 12;
  int num_heads = 12;
  double mlp_ratio = 4.0;
  double drop_path_rate = 0.0;  // stochastic depth of the last block; linear ramp from 0
  double ln_eps = 1e-6;
  Pooling pool = Pooling::kClsAfterNorm;
  // Family variants (models/arch_registry.cpp names the sources):
  Activation act = Activation::kGelu;
  bool pre_norm = false;     // CLIP: LayerNorm `norm_pre` (OpenAI ln_pre) after the position embedding
  bool patch_bias = true;    // CLIP: the patch embedding has no bias
  double init_values = 0.0;  // layer scale (DINOv2: blocks.i.ls1.gamma / ls2.gamma); 0 = none
  int reg_tokens = 0;        // DINOv2 registers `reg_token`, after cls, without position embedding
  PosResample pos_resample = PosResample::kTimm;  // of a checkpoint's pos_embed on another grid
  int grid() const { return img_size / patch_size; }
  int num_patches() const { return grid() * grid(); }
  // The tokens before the patch tokens: cls, then the registers.
  int num_prefix_tokens() const { return 1 + reg_tokens; }
  int num_tokens() const { return num_patches() + num_prefix_tokens(); }
  int pos_embed_rows() const { return num_patches() + 1; }  // cls + patches (registers have none)
  int mlp_hidden() const { return int(embed_dim * mlp_ratio); }
};

// The architecture registry's entries (models/arch_registry.h): the config of a name or alias (its
// arch field is the name as given), and every entry's name in registry order.
VitConfig vit_config_by_name(const std::string& arch);  // throws petl::ArgumentError listing known names
std::vector<std::string> known_archs();

// Where SSF-style scale/shift points sit.
enum class HookPoint { patch_embed, norm1, qkv, proj, norm2, fc1, fc2, final_norm };

// Every method is free to override any subset. Returning an undefined tensor from a *_delta or
// *_bypass hook means "nothing to add". `layer` is the block index; tensors are (B, N, ·).
struct BlockHooks {
  virtual ~BlockHooks() = default;
  virtual torch::Tensor before_block(int layer, torch::Tensor x) { return x; }
  virtual torch::Tensor after_block(int layer, torch::Tensor x) { return x; }
  virtual torch::Tensor scale_shift(int layer, HookPoint point, torch::Tensor t) { return t; }
  virtual torch::Tensor qkv_delta(int layer, const torch::Tensor& ln1_x) { return {}; }
  virtual torch::Tensor proj_delta(int layer, const torch::Tensor& attn_out) { return {}; }
  virtual torch::Tensor fc1_delta(int layer, const torch::Tensor& ln2_x) { return {}; }
  virtual torch::Tensor fc2_delta(int layer, const torch::Tensor& hidden) { return {}; }
  // Added to the residual stream beside the attention / MLP branch (after their drop path).
  virtual torch::Tensor attn_bypass(int layer, const torch::Tensor& x, const torch::Tensor& ln1_x) { return {}; }
  virtual torch::Tensor mlp_bypass(int layer, const torch::Tensor& x, const torch::Tensor& ln2_x) { return {}; }
  // Sequential adapter on the MLP branch output (after drop path), before the residual add.
  virtual torch::Tensor after_mlp(int layer, torch::Tensor branch) { return branch; }
  // K/V tap: k, v are (B, H, N, D/H) as used by the block's own attention.
  virtual void on_kv(int layer, const torch::Tensor& k, const torch::Tensor& v) {}
  // Whether this hook object needs on_kv (lets the block skip work otherwise).
  virtual bool wants_kv() const { return false; }
};

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

struct BlockImpl : torch::nn::Module {
  BlockImpl(const VitConfig& cfg, int layer, double drop_path);
  // x ← x + DP(Attn(LN1 x)); x ← x + DP(MLP(LN2 x)), with the hooks' extension points.
  torch::Tensor forward(torch::Tensor x, BlockHooks* hooks = nullptr);
  // K and V of tokens x exactly as forward() computes them: (B, H, N, D/H) each.
  std::pair<torch::Tensor, torch::Tensor> keys_values(const torch::Tensor& x);
  // Query-only attention: queries from p_normed (B, T, D, already through norm1), keys/values
  // given in any floating dtype (models/kv_attention.h: float16 K/V are converted per use, never
  // kept as float32 for backward); softmax over the N keys only; returns proj(...) (B, T, D)
  // without drop path. `rows` (optional): k, v are a resident store and image b is its row rows[b]
  // (frozen_kv_attention).
  torch::Tensor attend_with(const torch::Tensor& p_normed, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& rows = {});
  // mlp(norm2(p)) without drop path.
  torch::Tensor mlp_branch(const torch::Tensor& p);
  // The block's stochastic depth (identity in eval mode or with rate 0). Each call draws anew.
  torch::Tensor apply_drop_path(const torch::Tensor& t);
  double drop_path_prob() const { return drop_path_; }
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

struct VisionTransformerImpl : torch::nn::Module {
  explicit VisionTransformerImpl(const VitConfig& cfg);
  // timm-style init: trunc_normal(0.02) for pos/cls/linear weights, zero biases, LN (1, 0).
  void init_weights(uint64_t seed);
  // cls + patch tokens + pos_embed, then the registers after cls, then norm_pre: (B, num_tokens, D).
  torch::Tensor embed(const torch::Tensor& images, BlockHooks* hooks = nullptr);
  // All blocks; returns the tokens before the final norm.
  torch::Tensor forward_blocks(torch::Tensor x, BlockHooks* hooks = nullptr);
  torch::Tensor final_norm(const torch::Tensor& x, BlockHooks* hooks = nullptr);
  // The pooled feature of the tokens after the blocks (cfg_.pool): the final-norm cls token, or the
  // final norm of the mean of the patch tokens (the P tokens after the prefix tokens; an error when tokens were added):
  // (B, D).
  torch::Tensor pool(const torch::Tensor& tokens, BlockHooks* hooks = nullptr);
  // The pooled feature of images (what timm's pre-logits feed the head): (B, D).
  torch::Tensor forward_cls(const torch::Tensor& images, BlockHooks* hooks = nullptr);
  // Sets requires_grad on every backbone tensor.
  void set_trainable(bool on);
  // Per-block stochastic depth on (the configured ramp) or off (deterministic backbone).
  void set_drop_path_enabled(bool on);
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

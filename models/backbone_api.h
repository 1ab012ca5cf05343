// The backbone as PETL methods see it: its dimensions (VitConfig), its blocks, the extension
// points a block offers (BlockHooks), the final norm and the pooling. Methods hold a Backbone and a
// BackboneBlock per layer, never a concrete model class, so that a family with other block
// internals is a new implementation of these two interfaces (models/vit.h implements them for the
// ViT families: timm/Google supervised, MAE, MoCo v3, CLIP, DINOv2 with and without registers).
//
// Token layout of every implementation: [cls, prefix tokens (DINOv2's registers), patch tokens];
// config().num_prefix_tokens() counts the tokens before the patches (1 + registers). A method that
// means "the patch tokens" reads patch_tokens(), never the tokens from index 1.
//
// Extension points for PETL methods (docs/spec/conventions.md §4) — a method never rewrites a block:
//   BlockHooks      called inside every block: qkv/proj/fc1/fc2 deltas (LoRA, FacT), scale/shift
//                   points (SSF), parallel bypasses (AdaptFormer, Convpass), a sequential adapter
//                   after the MLP branch, token rewrites before/after a block (VPT-deep, DTL),
//                   and a K/V tap (SynQT, VQT, the feature cache).
//   BackboneBlock::attend_with / mlp_branch / apply_drop_path
//                   query-only attention of extra tokens against a block's own K/V (SynQT, VQT).
#pragma once
#include <string>
#include <torch/torch.h>
#include <utility>

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

// One block of a backbone: x ← x + DP(Attn(norm1 x)); x ← x + DP(MLP(norm2 x)) (with its family's
// variants), and the pieces of it that query-only methods reuse.
class BackboneBlock {
 public:
  virtual ~BackboneBlock() = default;
  // The block on tokens x (B, N, D), with the hooks' extension points (null: none).
  virtual torch::Tensor forward(torch::Tensor x, BlockHooks* hooks = nullptr) = 0;
  // K and V of tokens x exactly as forward() computes them: (B, H, N, D/H) each.
  virtual std::pair<torch::Tensor, torch::Tensor> keys_values(const torch::Tensor& x) = 0;
  // The block's first norm (before attention) applied to tokens t (B, T, D).
  virtual torch::Tensor apply_norm1(const torch::Tensor& t) = 0;
  // Query-only attention: queries from p_normed (B, T, D, already through apply_norm1), keys/values
  // given in any floating dtype (models/kv_attention.h); softmax over the N keys only; returns the
  // attention branch (projection, and layer scale where the family has it) (B, T, D) without drop
  // path. `rows` (optional): k, v are a resident store and image b is its row rows[b].
  virtual torch::Tensor attend_with(const torch::Tensor& p_normed, const torch::Tensor& k, const torch::Tensor& v,
                                    const torch::Tensor& rows = {}) = 0;
  // The MLP branch on un-normalised tokens p: mlp(norm2(p)) (and layer scale), without drop path.
  virtual torch::Tensor mlp_branch(const torch::Tensor& p) = 0;
  // The block's stochastic depth (identity in eval mode or with rate 0). Each call draws anew.
  virtual torch::Tensor apply_drop_path(const torch::Tensor& t) = 0;
  virtual double drop_path_prob() const = 0;
};

// A frozen backbone: tokens in, blocks, final norm, pooled feature out.
class Backbone {
 public:
  virtual ~Backbone() = default;
  // Dimensions and layout: embed_dim, depth, num_heads, grid(), num_patches(), num_prefix_tokens(),
  // num_tokens(), pool, reg_tokens, and the architecture's name (arch) for messages.
  virtual const VitConfig& config() const = 0;
  int depth() const { return config().depth; }
  virtual BackboneBlock& block(int i) = 0;
  // Images (B, C, H, W) → tokens (B, num_tokens, D) in the layout above (hooks: the patch_embed
  // scale/shift point).
  virtual torch::Tensor embed(const torch::Tensor& images, BlockHooks* hooks = nullptr) = 0;
  // Every block in order; returns the tokens before the final norm.
  virtual torch::Tensor forward_blocks(torch::Tensor x, BlockHooks* hooks = nullptr) = 0;
  // The final norm on tokens or pooled vectors (hooks: the final_norm scale/shift point).
  virtual torch::Tensor final_norm(const torch::Tensor& x, BlockHooks* hooks = nullptr) = 0;
  // The final norm's affine parameters (weight, bias), each (D).
  virtual std::pair<torch::Tensor, torch::Tensor> final_norm_affine() = 0;
  // The patch tokens of the backbone's own token sequence (B, num_tokens, ·): the num_patches()
  // tokens after the prefix tokens, (B, P, ·). petl::Error when the sequence has another length.
  virtual torch::Tensor patch_tokens(const torch::Tensor& tokens) const = 0;
  // What pool() puts through the final norm, of tokens of any width in the backbone's layout: the
  // cls token (cls_after_norm) or the mean of patch_tokens() (mean_patches_fc_norm), (B, ·).
  virtual torch::Tensor pool_tokens(const torch::Tensor& tokens) const = 0;
  // The pooled feature of the tokens after the blocks: final_norm(pool_tokens(tokens)), (B, D).
  virtual torch::Tensor pool(const torch::Tensor& tokens, BlockHooks* hooks = nullptr) = 0;
  // pool(forward_blocks(embed(images))): what a head classifies, (B, D).
  virtual torch::Tensor forward_cls(const torch::Tensor& images, BlockHooks* hooks = nullptr) = 0;
  // requires_grad on every backbone tensor.
  virtual void set_trainable(bool on) = 0;
  // Per-block stochastic depth on (the configured ramp) or off (deterministic backbone).
  virtual void set_drop_path_enabled(bool on) = 0;
  // The backbone as a torch module: its parameters under their timm names, train/eval mode.
  virtual torch::nn::Module& module() = 0;
};

}  // namespace petl

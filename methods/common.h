// Small helpers shared by the method files (not a method): nested parameter names in the
// reference code's layout, QuickGELU, a base class for methods that plug BlockHooks into the
// frozen backbone and put a head on its pooled feature, the chunked no-grad backbone pass, and the
// refusals of backbone layouts a method's reference code has no place for.
#pragma once
#include <map>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/enum_text.h"
#include "methods/method.h"
#include "methods/task_config.h"

namespace petl::methods {

// An empty module used as a namespace node, so that tensors can be registered under dotted names
// such as "blocks.3.attn.q_FacT.weight" (torch forbids dots in a single registered name).
struct NodeImpl : torch::nn::Module {};
TORCH_MODULE(Node);

// The module at `path` ("blocks.3.attn"), creating empty nodes on the way.
torch::nn::Module& module_at(torch::nn::Module& root, const std::string& path);

// Registers `m` as `name` under `path` and returns it (e.g. register_under(*this, "blocks.0", "adapter", Linear(..))).
template <typename M>
M register_under(torch::nn::Module& root, const std::string& path, const std::string& name, M m) {
  return path.empty() ? root.register_module(name, m) : module_at(root, path).register_module(name, m);
}
torch::Tensor register_param_under(torch::nn::Module& root, const std::string& path, const std::string& name,
                                   torch::Tensor t);

// The init of an added module in NOAH's baselines (adapter, lora: their `init` option): what NOAH's
// code does at step 0 (its model-wide _init_vit_weights re-initialises every Linear with
// trunc_normal(.02) weights and zero biases), or the module's own init.
enum class NoahInit { kNoah, kModule };

// QuickGELU(x) = x·σ(1.702x) (CLIP; used by NOAH's adapter and Convpass).
inline torch::Tensor quick_gelu(const torch::Tensor& x) { return x * torch::sigmoid(1.702 * x); }

// PyTorch's default nn.Linear / nn.Conv init: kaiming_uniform(a=√5) weight, U(±1/√fan_in) bias.
void torch_default_init(torch::nn::Linear& lin);
// xavier_uniform weight (gain 1).
void xavier_uniform(torch::Tensor w);

// Head initialisations of the reference codes:
//   torch_default  nn.Linear default (timm 0.4.12 reset_classifier; PETL-ViT, AdaptFormer)
//   trunc_normal   timm _init_weights: trunc_normal(std .02) weight, zero bias (NOAH, SSF, DTL)
//   vpt            VPT's MLP head: kaiming_normal(fan_out) weight, bias −log(99) (VPT, VQT)
enum class HeadInit { torch_default, trunc_normal, vpt };
void init_head(torch::nn::Linear& head, HeadInit how);
// timm's trunc_normal_(std, a=-2, b=2) (absolute bounds).
void trunc_normal(torch::Tensor t, double std);

// Methods that change the backbone through BlockHooks and classify the final-norm cls token
// with a new head.
class HookedMethod : public Method, public BlockHooks {
 public:
  HookedMethod(const MethodContext& ctx, HeadInit head_init);
  torch::Tensor forward(const torch::Tensor& images) override;
  // Hooked methods change the backbone's token path: gradients flow back through every block
  // ("heavy"); its stochastic depth follows the recipe unless the encoder is kept in eval mode.
  BackboneNeeds needs() const override;
  torch::nn::Linear head{nullptr};
};

// Authors' checkpoints (MethodSpec::import_authors): a renaming importer from `renames` (authors'
// name → petl name; every one must be present) plus `vpt_head` (VPT's MLP head with MLP_NUM 0:
// head.last_layer.weight/bias → head.weight/bias). Everything else is dropped (frozen backbone).
AuthorsImport rename_import(std::vector<std::pair<std::string, std::string>> renames, bool vpt_head);
// VPT's ViT (vit_backbones/vit.py) as BitFit trains it: every bias, with separate query/key/value
// Linears (their biases concatenated into timm's qkv.bias), under enc.transformer.
std::map<std::string, torch::Tensor> import_vpt_vit_biases(const std::map<std::string, torch::Tensor>& authors,
                                                           std::vector<std::string>& dropped);

// The no-grad pass of a light method over the frozen backbone, `chunk` images at a time (0, or
// >= the batch: at once): each block's K/V (kv) copied into whole-batch (B, H, N, dh) tensors and
// the final-norm cls token (cls). Only one chunk's transients are alive at once, so the pass adds
// the K/V that backward needs, not the whole batch's activations. Chunks change the BLAS blocking
// (float round-off) and, with the backbone's stochastic depth on, the order of its random draws.
struct FrozenPass {
  std::vector<torch::Tensor> k, v;
  torch::Tensor cls;
};
FrozenPass frozen_pass(Backbone& backbone, const torch::Tensor& images, int64_t chunk, bool kv, bool cls);

// Construction-time refusals of a backbone whose token layout the method's reference code has no
// place for: petl::ArgumentError naming the method, the architecture, `why` (what the reference
// code does) and a backbone of the same family that fits, where the architecture registry has one.
//   refuse_register_tokens  the backbone has register tokens between the cls and the patch tokens
//   refuse_mean_pooling     the backbone's feature is the mean of the patch tokens (MAE's fine-tuned
//                           layout) and the method adds tokens to the backbone's token sequence
void refuse_register_tokens(const Backbone& backbone, const std::string& method, const std::string& why);
void refuse_mean_pooling(const Backbone& backbone, const std::string& method, const std::string& why);

// The `backbone_micro_batch` option's default and meaning, shared by the light methods. Measured
// with `petl bench --cached` at ViT-B/16, batch 64: chunks of 4 put SynQT's live peak at 1.045x
// its K/V floor at the whole batch's speed (README).
constexpr int kBackboneMicroBatch = 4;
inline const char* backbone_micro_batch_help() {
  return "images per chunk of the no-grad backbone pass (0: whole batch); the features are the same up to "
         "float round-off, the pass's transient activations shrink to one chunk's";
}

}  // namespace petl::methods

namespace petl {
template <>
struct EnumText<methods::NoahInit> {
  static constexpr const char* kWhat = "init";
  static constexpr std::array<EnumName<methods::NoahInit>, 2> kNames{
      {{methods::NoahInit::kNoah, "noah"}, {methods::NoahInit::kModule, "module"}}};
  static constexpr std::array<EnumName<methods::NoahInit>, 0> kAliases{};
};
}  // namespace petl

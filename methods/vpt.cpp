// vpt_shallow / vpt_deep — Visual Prompt Tuning (Jia et al., ECCV 2022), following KMnP/vpt
// src/models/vit_prompt/vit.py (PromptedTransformer): Np prompt tokens inserted after the cls
// token, after the position embedding (prompts get no position embedding of their own):
// [cls, Drop(P), patches]. Deep: before every block i >= 1 the Np prompt tokens are replaced by
// block i's own prompts (Drop applied again). Output: final norm → token 0 → head.
// Init: U(−v, v), v = sqrt(6 / (3·patch² + D)) (xavier-uniform over the patch fan-in, as VPT).
// Names: prompt_embeddings (1, Np, D), deep_prompt_embeddings (L−1, Np, D), head. The authors'
// checkpoints hold them as enc.transformer.{prompt_embeddings, deep_prompt_embeddings} and
// head.last_layer.* (`petl import-checkpoint --method vpt_deep --from authors`).
// Settings: see kOptions below.
// As VPT's train(): the encoder stays in eval mode (no backbone stochastic depth); head as VPT's
// MLP head with MLP_NUM 0: kaiming_normal(fan_out) weight, bias −log(0.99/0.01).
// Recipe: NOAH's (AdamW; VPT's own SGD lr/wd search is not reproduced). NOAH's variant (prompts
// appended after the patches, replaced in every block, xavier init, dropout 0.1) is not built.
// Backbones: with register tokens (DINOv2 reg4) the prompts go right after cls, before the
// registers ([cls, P, registers, patches]) — the reference's "after the CLS token, before the rest".
// A mean-pooling backbone (MAE's fine-tuned layout) is refused at construction: the head reads the
// backbone's pool(), which averages the backbone's own patch tokens, and the prompts have joined
// that sequence (VPT's MAE code, vit_prompt/vit_mae.py, chooses among pool types — the mean over
// prompts and patches, of the patches only, of the prompts only; none of them is built here).
#include <cmath>

#include "core/error.h"
#include "methods/common.h"
#include "methods/options.h"

namespace petl {
namespace {

struct VptOptions {
  int num_tokens{};
  double prompt_dropout{};
};

const methods::OptionTable<VptOptions> kOptions =
    methods::OptionTable<VptOptions>()
        .add("num_tokens", &VptOptions::num_tokens, 10, methods::Range::at_least(1),
             "prompt tokens Np (VPT searches {1,5,10,50,100,200} per task; no per-task VTAB values published)")
        .add("prompt_dropout", &VptOptions::prompt_dropout, 0.0, methods::Range::probability(),
             "dropout on the prompts (0 as VPT's config; NOAH's runs use 0.1)");

class Vpt : public methods::HookedMethod {
 public:
  Vpt(const MethodContext& ctx, bool deep) : HookedMethod(ctx, methods::HeadInit::vpt), deep_(deep) {
    const auto& cfg = backbone_->config();
    methods::refuse_mean_pooling(*backbone_, deep_ ? "vpt_deep" : "vpt_shallow",
                                 "its reference code (KMnP/vpt) inserts prompt tokens into the backbone's token "
                                 "sequence and classifies the final-norm cls token");
    o_ = kOptions.parse(ctx.settings);
    backbone_always_eval_ = true;  // VPT keeps the encoder in eval mode
    const double v = std::sqrt(6.0 / double(3 * cfg.patch_size * cfg.patch_size + cfg.embed_dim));
    prompt = register_parameter("prompt_embeddings", torch::empty({1, o_.num_tokens, cfg.embed_dim}).uniform_(-v, v));
    if (deep_ && cfg.depth > 1)
      deep_prompt = register_parameter("deep_prompt_embeddings",
                                       torch::empty({cfg.depth - 1, o_.num_tokens, cfg.embed_dim}).uniform_(-v, v));
  }
  std::map<std::string, std::string> effective_settings() const override { return kOptions.effective(o_); }
  torch::Tensor before_block(int layer, torch::Tensor x) override {
    const int64_t B = x.size(0);
    if (layer == 0) {
      auto p = torch::dropout(prompt.expand({B, -1, -1}), o_.prompt_dropout, is_training());
      return torch::cat({x.narrow(1, 0, 1), p, x.narrow(1, 1, x.size(1) - 1)}, 1);
    }
    if (!deep_) return x;
    auto p = torch::dropout(deep_prompt[layer - 1].unsqueeze(0).expand({B, -1, -1}), o_.prompt_dropout, is_training());
    return torch::cat({x.narrow(1, 0, 1), p, x.narrow(1, 1 + o_.num_tokens, x.size(1) - 1 - o_.num_tokens)}, 1);
  }

  bool deep_;
  VptOptions o_;
  torch::Tensor prompt, deep_prompt;
};

PETL_REGISTER_METHOD(
    MethodSpec("vpt_shallow")
        .describe("VPT-shallow: Np prompt tokens at the input")
        .recipe("noah")
        .options(kOptions.describe())
        .import_authors(methods::rename_import({{"enc.transformer.prompt_embeddings", "prompt_embeddings"}}, true))
        .make<Vpt>(false));
PETL_REGISTER_METHOD(
    MethodSpec("vpt_deep")
        .describe("VPT-deep: Np prompt tokens replaced before every block")
        .recipe("noah")
        .options(kOptions.describe())
        .import_authors(methods::rename_import({{"enc.transformer.prompt_embeddings", "prompt_embeddings"},
                                                {"enc.transformer.deep_prompt_embeddings", "deep_prompt_embeddings"}},
                                               true))
        .make<Vpt>(true));

}  // namespace
}  // namespace petl

// vpt_shallow / vpt_deep — Visual Prompt Tuning (Jia et al., ECCV 2022), following KMnP/vpt
// src/models/vit_prompt/vit.py (PromptedTransformer): Np prompt tokens inserted after the cls
// token, after the position embedding (prompts get no position embedding of their own):
// [cls, Drop(P), patches]. Deep: before every block i >= 1 the Np prompt tokens are replaced by
// block i's own prompts (Drop applied again). Output: final norm → token 0 → head.
// Init: U(−v, v), v = sqrt(6 / (3·patch² + D)) (xavier-uniform over the patch fan-in, as VPT).
// Names: prompt_embeddings (1, Np, D), deep_prompt_embeddings (L−1, Np, D), head.
// Settings: num_tokens (Np, default 10 — VPT searches per task over {1,5,10,50,100,200}; the repo
// has no per-task VTAB values), prompt_dropout (default 0.0 as VPT's config; NOAH's runs use 0.1).
// As VPT's train(): the encoder stays in eval mode (no backbone stochastic depth); head as VPT's
// MLP head with MLP_NUM 0: kaiming_normal(fan_out) weight, bias −log(0.99/0.01).
// Recipe: NOAH's (AdamW; VPT's own SGD lr/wd search is not reproduced). NOAH's variant (prompts
// appended after the patches, replaced in every block, xavier init, dropout 0.1) is not built.
#include <cmath>

#include "core/error.h"
#include "methods/common.h"

namespace petl {
namespace {

class Vpt : public methods::HookedMethod {
 public:
  Vpt(const MethodContext& ctx, bool deep) : HookedMethod(ctx, methods::HeadInit::vpt), deep_(deep) {
    const auto& cfg = backbone_->cfg_;
    np_ = ctx.settings.get_int("num_tokens", 10);
    drop_ = ctx.settings.get_double("prompt_dropout", 0.0);
    PETL_CHECK(np_ >= 1, "setting 'num_tokens' must be >= 1, got ", np_);
    backbone_always_eval_ = true;  // VPT keeps the encoder in eval mode
    PETL_CHECK(drop_ >= 0 && drop_ < 1, "setting 'prompt_dropout' must be in [0, 1), got ", drop_);
    const double v = std::sqrt(6.0 / double(3 * cfg.patch_size * cfg.patch_size + cfg.embed_dim));
    prompt = register_parameter("prompt_embeddings", torch::empty({1, np_, cfg.embed_dim}).uniform_(-v, v));
    if (deep_ && cfg.depth > 1)
      deep_prompt = register_parameter("deep_prompt_embeddings",
                                       torch::empty({cfg.depth - 1, np_, cfg.embed_dim}).uniform_(-v, v));
  }
  std::string name() const override { return deep_ ? "vpt_deep" : "vpt_shallow"; }

  std::map<std::string, std::string> effective_settings() const override {
    return {{"num_tokens", std::to_string(np_)}, {"prompt_dropout", std::to_string(drop_)}};
  }
  torch::Tensor before_block(int layer, torch::Tensor x) override {
    const int64_t B = x.size(0);
    if (layer == 0) {
      auto p = torch::dropout(prompt.expand({B, -1, -1}), drop_, is_training());
      return torch::cat({x.narrow(1, 0, 1), p, x.narrow(1, 1, x.size(1) - 1)}, 1);
    }
    if (!deep_) return x;
    auto p = torch::dropout(deep_prompt[layer - 1].unsqueeze(0).expand({B, -1, -1}), drop_, is_training());
    return torch::cat({x.narrow(1, 0, 1), p, x.narrow(1, 1 + np_, x.size(1) - 1 - np_)}, 1);
  }

  bool deep_;
  int np_ = 10;
  double drop_ = 0.0;
  torch::Tensor prompt, deep_prompt;
};

PETL_REGISTER_METHOD((MethodInfo{"vpt_shallow", "VPT-shallow: Np prompt tokens at the input", "noah", true,
                                 [](const MethodContext& c) { return std::make_shared<Vpt>(c, false); }}));
PETL_REGISTER_METHOD((MethodInfo{"vpt_deep", "VPT-deep: Np prompt tokens replaced before every block", "noah", true,
                                 [](const MethodContext& c) { return std::make_shared<Vpt>(c, true); }}));

}  // namespace
}  // namespace petl

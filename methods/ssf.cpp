// ssf — Scaling & Shifting your Features (Lian et al., NeurIPS 2022), following dongzelian/SSF
// models/vision_transformer.py (tuning_mode 'ssf'): ssf(x) = x ⊙ γ + β, γ ~ N(1, 0.02),
// β ~ N(0, 0.02), after the patch projection (D); in every block after norm1 (D), after qkv (3D),
// after proj (D), after norm2 (D), after fc1 (4D, before GELU), after fc2 (D); after the final
// norm (D). ViT-B/16: 2·(768 + 12·11·768 + 768) = 205,824 trainable without the head.
// Names as the reference: patch_embed.ssf_scale_1/ssf_shift_1 (its PatchEmbed); blocks.{i}.ssf_scale_1/_shift_1
// (norm1), blocks.{i}.ssf_scale_2/_shift_2 (norm2), blocks.{i}.attn.ssf_scale_1/_shift_1 (qkv),
// blocks.{i}.attn.ssf_scale_2/_shift_2 (proj), blocks.{i}.mlp.ssf_scale_1/_shift_1 (fc1),
// blocks.{i}.mlp.ssf_scale_2/_shift_2 (fc2); ssf_scale_1/ssf_shift_1 (final norm).
// Head: timm's init (trunc_normal .02, zero bias). Recipe "ssf" with per-task lr / weight decay / drop path from
// config/baselines/ssf_task_configs.csv (SSF's train_scripts/vit/vtab). Settings: none.
#include "core/error.h"
#include "methods/common.h"

namespace petl {
namespace {

struct ScaleShift {
  torch::Tensor scale, shift;
  torch::Tensor apply(const torch::Tensor& x) const { return x * scale + shift; }
};

class Ssf : public methods::HookedMethod {
 public:
  explicit Ssf(const MethodContext& ctx) : HookedMethod(ctx, methods::HeadInit::trunc_normal) {
    const auto& cfg = backbone_->config();
    const int D = cfg.embed_dim, H = cfg.mlp_hidden();
    patch_ = make("patch_embed", "ssf_scale_1", "ssf_shift_1", D);
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i);
      Per p;
      p.norm1 = make(b, "ssf_scale_1", "ssf_shift_1", D);
      p.qkv = make(b + ".attn", "ssf_scale_1", "ssf_shift_1", 3 * D);
      p.proj = make(b + ".attn", "ssf_scale_2", "ssf_shift_2", D);
      p.norm2 = make(b, "ssf_scale_2", "ssf_shift_2", D);
      p.fc1 = make(b + ".mlp", "ssf_scale_1", "ssf_shift_1", H);
      p.fc2 = make(b + ".mlp", "ssf_scale_2", "ssf_shift_2", D);
      blocks_.push_back(p);
    }
    final_ = make("", "ssf_scale_1", "ssf_shift_1", D);
  }
  torch::Tensor scale_shift(int layer, HookPoint point, torch::Tensor t) override {
    switch (point) {
      case HookPoint::patch_embed:
        return patch_.apply(t);
      case HookPoint::final_norm:
        return final_.apply(t);
      case HookPoint::norm1:
        return blocks_[layer].norm1.apply(t);
      case HookPoint::qkv:
        return blocks_[layer].qkv.apply(t);
      case HookPoint::proj:
        return blocks_[layer].proj.apply(t);
      case HookPoint::norm2:
        return blocks_[layer].norm2.apply(t);
      case HookPoint::fc1:
        return blocks_[layer].fc1.apply(t);
      case HookPoint::fc2:
        return blocks_[layer].fc2.apply(t);
    }
    return t;
  }

 private:
  struct Per {
    ScaleShift norm1, qkv, proj, norm2, fc1, fc2;
  };
  ScaleShift make(const std::string& path, const std::string& sname, const std::string& bname, int dim) {
    ScaleShift s;
    s.scale = methods::register_param_under(*this, path, sname, torch::empty({dim}).normal_(1.0, 0.02));
    s.shift = methods::register_param_under(*this, path, bname, torch::empty({dim}).normal_(0.0, 0.02));
    return s;
  }
  ScaleShift patch_, final_;
  std::vector<Per> blocks_;
};

std::map<std::string, std::string> ssf_task_recipe(const std::string& task) {
  std::string src;
  auto row = methods::task_row("baselines/ssf_task_configs.csv", task, &src);
  return row;
}

PETL_REGISTER_METHOD(MethodSpec("ssf")
                         .describe("SSF: learnable scale and shift of the features at 7 points per block")
                         .recipe("ssf")
                         .task_recipe(ssf_task_recipe)
                         .make<Ssf>());

}  // namespace
}  // namespace petl

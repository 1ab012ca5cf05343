// The architecture registry (see arch_registry.h). Facts and their sources:
//   supervised  timm 0.4.12 vision_transformer.py default_cfgs (*_in21k: Google's ImageNet-21k .npz;
//               _cfg: mean = std = 0.5, crop_pct 0.9, bicubic); jobs keep their recipes' normalisation.
//   mae         facebookresearch/mae models_vit.py (timm ViT, LayerNorm eps 1e-6, global_pool: mean of
//               the patch tokens through fc_norm, `norm` deleted), models_mae.py (pre-training adds
//               mask_token and decoder_* tensors), main_linprobe.py / main_finetune.py (checkpoint['model'];
//               eval: Resize(256, bicubic), CenterCrop(224), ImageNet mean/std); timm 0.9.16
//               vit_base_patch16_224.mae (IMAGENET_DEFAULT mean/std).
//   mocov3      facebookresearch/moco-v3 vits.py (timm ViT, conv patch embedding for ViT-B/16, fixed 2D
//               sin-cos pos_embed stored as a parameter, learned cls token), moco/builder.py (the
//               projector replaces base_encoder.head; momentum_encoder and predictor beside it),
//               main_lincls.py (keeps module.base_encoder.* but its head, drops the rest; eval:
//               Resize(256) (bilinear), CenterCrop(224), ImageNet mean/std).
#include "models/arch_registry.h"

#include "core/error.h"
#include "core/text.h"

namespace petl {
namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

VitConfig vit(const std::string& name, int img, int patch, int dim, int depth, int heads,
              Pooling pool = Pooling::kClsAfterNorm) {
  VitConfig c;
  c.arch = name;
  c.img_size = img;
  c.patch_size = patch;
  c.embed_dim = dim;
  c.depth = depth;
  c.num_heads = heads;
  c.pool = pool;
  return c;
}

CheckpointLayout timm_layout_def() {
  CheckpointLayout l;
  l.name = "timm";
  l.description = "timm state dict (timm names; head.* and pre_logits.* ignored), or a Google ViT .npz";
  l.ignored_prefixes = {"head.", "pre_logits."};
  return l;
}

Preprocessing supervised_preprocessing() {
  Preprocessing p;
  p.mean = {0.5, 0.5, 0.5};
  p.std = {0.5, 0.5, 0.5};
  p.profile = "inception";
  p.family_sets_normalisation = false;  // the PETL recipes decide (most use ImageNet mean/std)
  p.resize = 248;                       // 224 / crop_pct 0.9
  p.source = "timm 0.4.12 _cfg (crop_pct 0.9, bicubic, mean = std = 0.5); jobs use the recipe's normalisation";
  return p;
}

ArchEntry supervised(const std::string& name, std::vector<std::string> aliases, int img, int patch, int dim, int depth,
                     int heads) {
  ArchEntry e;
  e.name = name;
  e.aliases = std::move(aliases);
  e.family = BackboneFamily::kSupervised;
  e.config = vit(name, img, patch, dim, depth, heads);
  e.preprocessing = supervised_preprocessing();
  e.layouts = {timm_layout_def()};
  e.weights = "Google ViT ImageNet-21k .npz (timm 0.4.12 default_cfgs) or a timm state dict";
  return e;
}

ArchEntry mini(const std::string& name, int patch) {
  ArchEntry e;
  e.name = name;
  e.family = BackboneFamily::kPetlMini;
  e.config = vit(name, 32, patch, 96, 6, 3);
  e.preprocessing.resize = 32;
  e.preprocessing.crop = 32;
  e.preprocessing.source = "petl's embedded suite (32 px); jobs use the recipe's normalisation";
  e.layouts = {timm_layout_def()};
  e.weights = "`petl pretrain` (the embedded backbone, assets/)";
  return e;
}

Preprocessing imagenet_family(const std::string& interpolation, const std::string& source) {
  Preprocessing p;  // ImageNet mean/std, Resize(256) + CenterCrop(224)
  p.family_sets_normalisation = true;
  p.interpolation = interpolation;
  p.source = source;
  return p;
}

ArchEntry mae(bool global_pool) {
  ArchEntry e;
  e.family = BackboneFamily::kMae;
  e.inferable = false;  // by marker only (fc_norm); the pre-trained file has timm's names: pass --arch
  e.preprocessing = imagenet_family("bicubic",
                                    "facebookresearch/mae main_linprobe.py eval transform; timm 0.9.16 "
                                    "vit_base_patch16_224.mae (IMAGENET_DEFAULT mean/std)");
  CheckpointLayout l;
  l.pth_key = "model";
  if (!global_pool) {
    e.name = "vit_base_patch16_224_mae";
    e.config = vit(e.name, 224, 16, 768, 12, 12, Pooling::kClsAfterNorm);
    l.name = "mae_pretrain";
    l.description =
        "mae_pretrain_vit_base.pth ['model']: encoder in timm names with `norm` (decoder_* and "
        "mask_token of a full models_mae checkpoint ignored)";
    l.ignored_prefixes = {"decoder_", "mask_token", "head."};
    e.weights = "facebookresearch/mae: mae_pretrain_vit_base.pth (ImageNet-1k, MAE pre-training)";
  } else {
    e.name = "vit_base_patch16_224_mae_gap";
    e.config = vit(e.name, 224, 16, 768, 12, 12, Pooling::kMeanPatchesFcNorm);
    l.name = "mae_finetune";
    l.description =
        "mae_finetuned_vit_base.pth ['model']: timm names, `fc_norm` instead of `norm` (global pool), "
        "head.* ignored";
    l.marker = "fc_norm.weight";
    l.renames = {{"fc_norm.", "norm."}};
    l.ignored_prefixes = {"head."};
    e.weights = "facebookresearch/mae: mae_finetuned_vit_base.pth (MAE pre-training, ImageNet-1k fine-tuning)";
  }
  e.layouts = {l};
  return e;
}

ArchEntry mocov3() {
  ArchEntry e;
  e.name = "vit_base_patch16_224_mocov3";
  e.family = BackboneFamily::kMocoV3;
  e.config = vit(e.name, 224, 16, 768, 12, 12);
  e.preprocessing = imagenet_family("bilinear",
                                    "facebookresearch/moco-v3 main_lincls.py eval transform "
                                    "(torchvision Resize default: bilinear)");
  CheckpointLayout pre;
  pre.name = "mocov3_pretrain";
  pre.description =
      "vit-b-300ep.pth.tar ['state_dict']: module.base_encoder.* (its head = the projector, "
      "ignored), module.momentum_encoder.* and module.predictor.* ignored";
  pre.pth_key = "state_dict";
  pre.marker = "base_encoder.cls_token";
  pre.ignored_prefixes = {"base_encoder.head.", "momentum_encoder.", "predictor."};
  pre.strip_prefix = "base_encoder.";
  CheckpointLayout lincls = timm_layout_def();
  lincls.name = "mocov3_lincls";
  lincls.description = "linear-classification checkpoint of main_lincls.py ['state_dict']: timm names, head ignored";
  lincls.pth_key = "state_dict";
  e.layouts = {pre, lincls};
  e.weights = "facebookresearch/moco-v3: vit-b-300ep.pth.tar (ImageNet-1k, MoCo v3 pre-training)";
  e.inferable = false;
  return e;
}

std::vector<ArchEntry> build_registry() {
  std::vector<ArchEntry> r;
  // Inference picks the first inferable entry of matching shapes: vit_base_patch16_224_in21k first.
  r.push_back(supervised("vit_base_patch16_224_in21k", {}, 224, 16, 768, 12, 12));
  r.push_back(supervised("vit_base_patch16_224", {}, 224, 16, 768, 12, 12));
  r.push_back(supervised("vit_base_patch32_224_in21k", {"vit_base_patch32_224"}, 224, 32, 768, 12, 12));
  r.push_back(supervised("vit_large_patch16_224_in21k", {"vit_large_patch16_224"}, 224, 16, 1024, 24, 16));
  r.push_back(supervised("vit_huge_patch14_224_in21k", {"vit_huge_patch14_224"}, 224, 14, 1280, 32, 16));
  r.push_back(supervised("vit_small_patch16_224_in21k", {"vit_small_patch16_224"}, 224, 16, 384, 12, 6));
  r.push_back(supervised("vit_tiny_patch16_224_in21k", {"vit_tiny_patch16_224"}, 224, 16, 192, 12, 3));
  r.push_back(mini("petl_vit_mini_p4_32", 4));
  r.push_back(mini("petl_vit_mini_p8_32", 8));
  r.push_back(mae(false));
  r.push_back(mae(true));
  r.push_back(mocov3());
  return r;
}

}  // namespace

std::string to_string(BackboneFamily f) {
  switch (f) {
    case BackboneFamily::kSupervised:
      return "supervised";
    case BackboneFamily::kPetlMini:
      return "petl_mini";
    case BackboneFamily::kMae:
      return "mae";
    case BackboneFamily::kMocoV3:
      return "mocov3";
  }
  return "?";
}

std::string CheckpointLayout::file_name(const std::string& petl_name) const {
  std::string n = petl_name;
  for (const auto& [from, to] : renames)
    if (starts_with(n, to)) {
      n = from + n.substr(to.size());
      break;
    }
  return strip_prefix + n;
}

const std::vector<ArchEntry>& arch_registry() {
  static const std::vector<ArchEntry> r = build_registry();
  return r;
}

const ArchEntry* find_arch(const std::string& name) {
  for (const auto& e : arch_registry()) {
    if (e.name == name) return &e;
    for (const auto& a : e.aliases)
      if (a == name) return &e;
  }
  return nullptr;
}

const ArchEntry& arch_by_name(const std::string& name) {
  if (const ArchEntry* e = find_arch(name)) return *e;
  std::vector<std::string> names;
  for (const auto& e : arch_registry()) names.push_back(e.name);
  throw ArgumentError(
      str_cat("unknown architecture '", name, "'", did_you_mean(name, names), "; known: ", join(names, ", ")));
}

const CheckpointLayout& timm_layout() {
  static const CheckpointLayout l = timm_layout_def();
  return l;
}

const CheckpointLayout& detect_layout(const ArchEntry& entry, const std::map<std::string, torch::Tensor>& tensors,
                                      const std::string& path) {
  for (const auto& l : entry.layouts)
    if (!l.marker.empty() && tensors.count(l.marker)) return l;
  for (const auto& l : entry.layouts)
    if (l.marker.empty()) return l;
  std::vector<std::string> want;
  for (const auto& l : entry.layouts) want.push_back("'" + l.marker + "' (" + l.name + ")");
  PETL_FAIL(path, ": not a checkpoint of ", entry.name, ": none of its layouts' tensors ", join(want, ", "),
            " is present");
}

const CheckpointLayout* detect_marked_layout(const std::map<std::string, torch::Tensor>& tensors,
                                             const ArchEntry** entry) {
  for (const auto& e : arch_registry())
    for (const auto& l : e.layouts)
      if (!l.marker.empty() && tensors.count(l.marker)) {
        if (entry) *entry = &e;
        return &l;
      }
  return nullptr;
}

std::map<std::string, torch::Tensor> apply_layout(const CheckpointLayout& layout,
                                                  std::map<std::string, torch::Tensor> tensors,
                                                  const std::string& path) {
  std::map<std::string, torch::Tensor> out;
  std::map<std::string, std::string> origin;
  for (auto& [key, t] : tensors) {
    bool ignored = false;
    for (const auto& p : layout.ignored_prefixes) ignored |= starts_with(key, p);
    if (ignored) continue;
    std::string name = key;
    if (!layout.strip_prefix.empty()) {
      PETL_CHECK(starts_with(name, layout.strip_prefix), path, ": unexpected tensor '", key, "' in a ", layout.name,
                 " checkpoint (expected names under '", layout.strip_prefix,
                 "' or an ignored prefix: ", join(layout.ignored_prefixes, ", "), ")");
      name = name.substr(layout.strip_prefix.size());
    }
    for (const auto& [from, to] : layout.renames)
      if (starts_with(name, from)) {
        name = to + name.substr(from.size());
        break;
      }
    PETL_CHECK(!origin.count(name), path, ": tensors '", origin[name], "' and '", key, "' both map to '", name,
               "' under the ", layout.name, " layout");
    origin[name] = key;
    out[name] = std::move(t);
  }
  return out;
}

}  // namespace petl

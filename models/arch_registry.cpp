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
//   clip        openai/CLIP model.py VisionTransformer (conv1 without bias, class_embedding,
//               positional_embedding, ln_pre, resblocks of nn.MultiheadAttention in_proj/out_proj,
//               QuickGELU c_fc/c_proj MLP, ln_post, proj; nn.LayerNorm eps 1e-5), clip.py
//               _transform (Resize(224, bicubic), CenterCrop(224), OpenAI CLIP mean/std); timm 0.9.16
//               _convert_openai_clip (the same renames; proj becomes timm's head, which PETL replaces).
//   dinov2      facebookresearch/dinov2 vision_transformer.py (vit_base: patch 14, LayerScale init 1e-5,
//               qkv bias, exact GELU MLP, LayerNorm eps 1e-6, 518-px 37×37 pos_embed with a cls row,
//               register_tokens inserted after cls after the position embedding, mask_token unused at
//               inference; interpolate_pos_encoding offset 0.1, antialias off), hubconf/eval transforms
//               (Resize(256, bicubic), CenterCrop(224), ImageNet mean/std); timm 0.9.16
//               vit_base_patch14_dinov2 / _reg4_dinov2 (resample_abs_pos_embed: bicubic, antialias).
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

ArchEntry clip() {
  ArchEntry e;
  e.name = "vit_base_patch16_clip_224";
  e.aliases = {"vit_base_patch16_clip_224.openai"};
  e.family = BackboneFamily::kClip;
  e.config = vit(e.name, 224, 16, 768, 12, 12);
  e.config.ln_eps = 1e-5;  // torch.nn.LayerNorm's default
  e.config.act = Activation::kQuickGelu;
  e.config.pre_norm = true;
  e.config.patch_bias = false;
  e.inferable = false;
  e.preprocessing.mean = {0.48145466, 0.4578275, 0.40821073};
  e.preprocessing.std = {0.26862954, 0.26130258, 0.27577711};
  e.preprocessing.profile = "clip";
  e.preprocessing.family_sets_normalisation = true;
  e.preprocessing.resize = 224;
  e.preprocessing.source = "openai/CLIP clip.py _transform; timm 0.9.16 OPENAI_CLIP_MEAN/STD";
  CheckpointLayout l;
  l.name = "clip_openai";
  l.description =
      "ViT-B-16.pt state dict (TorchScript; convert with tools/pth_to_safetensors.py): visual.* in OpenAI "
      "names; the text tower and visual.proj (the 768→512 image projection, timm's head) ignored";
  l.marker = "visual.class_embedding";
  l.ignored_prefixes = {"visual.proj",     "transformer.", "token_embedding.", "positional_embedding", "ln_final.",
                        "text_projection", "logit_scale",  "input_resolution", "context_length",       "vocab_size"};
  l.strip_prefix = "visual.";
  l.renames = {{"conv1.", "patch_embed.proj."},
               {"class_embedding", "cls_token"},
               {"positional_embedding", "pos_embed"},
               {"ln_pre.", "norm_pre."},
               {"ln_post.", "norm."},
               {"transformer.resblocks.", "blocks."}};
  l.part_renames = {{".ln_1.", ".norm1."},
                    {".ln_2.", ".norm2."},
                    {".attn.in_proj_weight", ".attn.qkv.weight"},
                    {".attn.in_proj_bias", ".attn.qkv.bias"},
                    {".attn.out_proj.", ".attn.proj."},
                    {".mlp.c_fc.", ".mlp.fc1."},
                    {".mlp.c_proj.", ".mlp.fc2."}};
  l.petl_rank = {{"cls_token", 3}, {"pos_embed", 3}};
  CheckpointLayout t = timm_layout_def();
  t.description = "timm vit_base_patch16_clip_224.openai state dict (norm_pre, no patch bias; head = proj, ignored)";
  e.layouts = {l, t};
  e.weights = "openai/CLIP: ViT-B-16.pt (WIT-400M image-text pre-training), image tower only";
  return e;
}

ArchEntry dinov2(bool registers) {
  ArchEntry e;
  e.name = registers ? "vit_base_patch14_reg4_dinov2" : "vit_base_patch14_dinov2";
  e.aliases = {e.name + ".lvd142m"};
  e.family = BackboneFamily::kDinov2;
  e.config = vit(e.name, 224, 14, 768, 12, 12);  // run at 224 px: pos_embed resampled from 37×37 to 16×16
  e.config.init_values = 1e-5;
  e.config.reg_tokens = registers ? 4 : 0;
  e.inferable = false;
  e.preprocessing = imagenet_family("bicubic",
                                    "facebookresearch/dinov2 eval transforms (Resize(256, bicubic), "
                                    "CenterCrop(224), ImageNet mean/std); timm 0.9.16 (IMAGENET_DEFAULT)");
  CheckpointLayout l;
  l.name = registers ? "dinov2_reg_original" : "dinov2_original";
  l.description = registers
                      ? "dinov2_vitb14_reg4_pretrain.pth: DINOv2's names, register_tokens, 518-px pos_embed "
                        "with a cls row, mask_token ignored"
                      : "dinov2_vitb14_pretrain.pth: DINOv2's names (timm's), 518-px pos_embed, mask_token ignored";
  l.marker = registers ? "register_tokens" : "mask_token";
  l.renames = {{"register_tokens", "reg_token"}};
  l.ignored_prefixes = {"mask_token", "head."};
  e.layouts = {l};
  if (!registers) {  // timm's vit_base_patch14_dinov2 file has the same names without mask_token
    CheckpointLayout t = timm_layout_def();
    t.description = "timm vit_base_patch14_dinov2.lvd142m state dict (518-px pos_embed; head ignored)";
    e.layouts.push_back(t);
  }
  e.weights = registers ? "facebookresearch/dinov2: dinov2_vitb14_reg4_pretrain.pth (LVD-142M, with 4 registers)"
                        : "facebookresearch/dinov2: dinov2_vitb14_pretrain.pth (LVD-142M)";
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
  r.push_back(clip());
  r.push_back(dinov2(true));  // before the plain entry: a registers file also has mask_token
  r.push_back(dinov2(false));
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
    case BackboneFamily::kClip:
      return "clip";
    case BackboneFamily::kDinov2:
      return "dinov2";
  }
  return "?";
}

namespace {
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}
}  // namespace

std::string CheckpointLayout::file_name(const std::string& petl_name) const {
  std::string n = petl_name;
  for (auto it = part_renames.rbegin(); it != part_renames.rend(); ++it) n = replace_all(n, it->second, it->first);
  for (const auto& [from, to] : renames)
    if (starts_with(n, to)) {
      n = from + n.substr(to.size());
      break;
    }
  return strip_prefix + n;
}

torch::Tensor CheckpointLayout::file_tensor(const std::string& petl_name, const torch::Tensor& t) const {
  auto it = petl_rank.find(petl_name);
  if (it == petl_rank.end()) return t;
  auto out = t;
  while (out.dim() > 1 && out.size(0) == 1) out = out.squeeze(0);
  return out;
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
    for (const auto& [from, to] : layout.part_renames) name = replace_all(name, from, to);
    if (auto r = layout.petl_rank.find(name); r != layout.petl_rank.end())
      while (t.dim() < r->second) t = t.unsqueeze(0);
    PETL_CHECK(!origin.count(name), path, ": tensors '", origin[name], "' and '", key, "' both map to '", name,
               "' under the ", layout.name, " layout");
    origin[name] = key;
    out[name] = std::move(t);
  }
  return out;
}

}  // namespace petl

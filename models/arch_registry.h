// The architecture registry: every backbone petl knows, in one table (timm's register_model and
// pretrained_cfg in one place). An entry holds its name and aliases, its family (where the weights
// come from and how they were trained), its VitConfig, its preprocessing, the checkpoint layouts its
// downloadable files come in (how their tensor names map to petl's timm-style names, which prefixes
// are ignored) and its pooling. vit_config_by_name, known_archs, checkpoint inference and loading,
// `petl list` and the sweep planner all read it; tests/test_archs.cpp walks every entry.
//
// A family's block variants (CLIP's QuickGELU and ln_pre, DINOv2's layer scale and registers) are
// VitConfig flags; its checkpoint names a layout here.
#pragma once
#include <array>
#include <map>
#include <string>
#include <torch/torch.h>
#include <utility>
#include <vector>

#include "models/vit.h"

namespace petl {

enum class BackboneFamily {
  kSupervised,  // timm / Google ViT, supervised on ImageNet-21k (the PETL papers' VTAB backbone)
  kPetlMini,    // petl's embedded small ViTs (`petl pretrain`)
  kMae,         // facebookresearch/mae, masked autoencoder pre-training
  kMocoV3,      // facebookresearch/moco-v3, contrastive pre-training
  kClip,        // openai/CLIP image tower, contrastive image-text pre-training
  kDinov2,      // facebookresearch/dinov2, self-distillation pre-training (LVD-142M)
};
std::string to_string(BackboneFamily f);

// How the authors' evaluation transform prepares an image. Jobs on VTAB-1k resize straight to
// img_size (docs/spec/vtab1k.md); resize/crop/interpolation are recorded facts of the family.
struct Preprocessing {
  std::array<double, 3> mean{0.485, 0.456, 0.406};
  std::array<double, 3> std{0.229, 0.224, 0.225};
  std::string profile = "imagenet";        // datasets' normalisation profile with these numbers
  bool family_sets_normalisation = false;  // true: jobs use `profile` unless the user sets normalisation
  int resize = 256;                        // shorter side before the centre crop
  int crop = 224;
  std::string interpolation = "bicubic";
  std::string source;  // where these numbers come from
};

// A downloadable checkpoint's tensor names → petl names. Applied after the leading "module." of a
// (Distributed)DataParallel wrapper is removed (every layout; tools/pth_to_safetensors.py removes
// it too). Every rule is an EXACT PREFIX: a tensor is ignored when its name starts with one of
// ignored_prefixes; else it must start with strip_prefix (when set), which is removed; then the
// first rename whose prefix it starts with is applied, then every part rename (a dotted part of the
// name: CLIP's ".ln_1." → ".norm1."), in order. Anything else is kept and must be a parameter of the
// model (strict loading names it otherwise). Tensors a file stores without their leading unit
// dimensions (CLIP's class_embedding (D) is cls_token (1, 1, D)) get them back (petl_rank).
struct CheckpointLayout {
  std::string name;         // "timm", "mae_pretrain", "mae_finetune", "mocov3_pretrain", ...
  std::string description;  // what file this is, as people download it
  std::string marker;       // a tensor name (after "module." removal) that only this layout has; "" = any
  std::string strip_prefix;
  std::vector<std::pair<std::string, std::string>> renames;       // file prefix → petl prefix
  std::vector<std::pair<std::string, std::string>> part_renames;  // file part → petl part (".x." inside a name)
  std::map<std::string, int> petl_rank;  // petl name → its rank, for tensors stored with fewer dimensions
  std::vector<std::string> ignored_prefixes;
  std::string pth_key;  // the key of the .pth pickle holding the state dict ("" = top level)
  // The tensor name this layout's file uses for a petl parameter name (the inverse mapping), and the
  // tensor as the file stores it.
  std::string file_name(const std::string& petl_name) const;
  torch::Tensor file_tensor(const std::string& petl_name, const torch::Tensor& t) const;
};

struct ArchEntry {
  std::string name;
  std::vector<std::string> aliases;
  BackboneFamily family = BackboneFamily::kSupervised;
  VitConfig config;  // config.arch == name; config.pool is the entry's pooling
  Preprocessing preprocessing;
  std::vector<CheckpointLayout> layouts;  // the first is the default
  std::string weights;                    // where the weights come from
  bool inferable = true;                  // checkpoint inference may pick it from tensor shapes in its timm layout
};

const std::vector<ArchEntry>& arch_registry();
// By name or alias; null when unknown.
const ArchEntry* find_arch(const std::string& name);
// By name or alias; petl::ArgumentError with a did-you-mean and the known names otherwise.
const ArchEntry& arch_by_name(const std::string& name);

// The layout of `entry` that a file's tensor names (after "module." removal) are in: the first
// layout whose marker is present, else the first layout without a marker; petl::Error naming the
// layouts' markers when none fits.
const CheckpointLayout& detect_layout(const ArchEntry& entry, const std::map<std::string, torch::Tensor>& tensors,
                                      const std::string& path);
// The layout of a file whose architecture is unknown (inference): a marker layout of any entry,
// else null (the timm layout).
const CheckpointLayout* detect_marked_layout(const std::map<std::string, torch::Tensor>& tensors,
                                             const ArchEntry** entry = nullptr);
// Renames a file's tensors into petl names under `layout`; petl::Error naming the key for a tensor
// outside the layout or two file tensors mapping to one petl name.
std::map<std::string, torch::Tensor> apply_layout(const CheckpointLayout& layout,
                                                  std::map<std::string, torch::Tensor> tensors,
                                                  const std::string& path);

// The layout of timm state dicts (and of petl's own backbone files): head and pre_logits ignored.
const CheckpointLayout& timm_layout();

}  // namespace petl

// Backbone checkpoints: Google ViT .npz (timm's _load_weights mapping, docs/spec/vtab1k.md) and timm
// state dicts in safetensors; strict loading (a missing, unexpected or mis-shaped tensor is an
// error naming the key and both shapes); torch <-> RawTensor conversion; safetensors saving of
// named tensors (checkpoints keep the reference code's parameter names).
#pragma once
#include <map>
#include <string>
#include <torch/torch.h>
#include <utility>
#include <vector>

#include "io/tensor_file.h"
#include "models/vit.h"

namespace petl {

torch::Tensor to_torch(const io::RawTensor& t);    // copies; keeps dtype
io::RawTensor from_torch(const torch::Tensor& t);  // contiguous CPU copy

// The backbone tensors of a checkpoint file under timm names ("blocks.0.attn.qkv.weight", ...),
// float32. Google .npz keys are mapped as timm's loader does; safetensors names through a checkpoint
// layout of the architecture registry (models/arch_registry.h): `arch`'s layout detected by its
// marker tensor, or for an unregistered/empty arch any entry's marker layout, else timm's (head and
// pre_logits dropped: heads belong to methods). `metadata` receives the safetensors metadata when
// present, `layout` the layout's name ("google_npz" for .npz).
std::map<std::string, torch::Tensor> read_backbone_tensors(const std::string& path,
                                                           std::map<std::string, std::string>* metadata = nullptr,
                                                           const std::string& arch = "", std::string* layout = nullptr);

// The architecture of a checkpoint: from its petl metadata when present, else from tensor shapes
// (patch size, width, depth, image size; heads from the registry's entry of that width); the arch
// name of the registry entry it matches (a marker layout names its entry, e.g. MoCo v3's; timm names
// match inferable entries only, the first of equal shapes).
VitConfig infer_vit_config(const std::string& path);

struct LoadedBackbone {
  std::string path, format, sha256;
  std::string layout;                // the checkpoint layout it was read with (models/arch_registry.h)
  int pos_embed_resampled_from = 0;  // the file's patch grid when its pos_embed was resampled (0: not)
};
// A (1, 1 + G*G, D) position embedding (cls row first) resampled to new_grid × new_grid patches
// (VitConfig's PosResample says how); the cls row is kept.
torch::Tensor resample_pos_embed(const torch::Tensor& pos, int new_grid, PosResample mode);
// Strict load into `model`; returns provenance (file SHA-256). A pos_embed of another square grid is
// resampled to the model's with model->cfg_.pos_resample.
LoadedBackbone load_backbone(VisionTransformer& model, const std::string& path);

// Saves the backbone under timm names with its config as metadata ("petl_vit_config").
void save_backbone(const VisionTransformer& model, const std::string& path,
                   std::map<std::string, std::string> extra_metadata = {});

// Named tensors → safetensors (float tensors as stored), and back.
void save_named_tensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata = {});
std::map<std::string, torch::Tensor> load_named_tensors(const std::string& path,
                                                        std::map<std::string, std::string>* metadata = nullptr);

std::string vit_config_to_json(const VitConfig& c);
VitConfig vit_config_from_json(const std::string& json, const std::string& where);

}  // namespace petl

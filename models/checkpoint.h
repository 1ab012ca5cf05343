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
// float32. Google .npz keys are mapped as timm's loader does; head/pre_logits tensors are dropped
// (heads belong to methods). `metadata` receives the safetensors metadata when present.
std::map<std::string, torch::Tensor> read_backbone_tensors(const std::string& path,
                                                           std::map<std::string, std::string>* metadata = nullptr);

// The architecture of a checkpoint: from its petl metadata when present, else from tensor shapes
// (patch size, width, depth, image size; heads from the usual width → heads table).
VitConfig infer_vit_config(const std::string& path);

struct LoadedBackbone {
  std::string path, format, sha256;
};
// Strict load into `model`; returns provenance (file SHA-256).
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

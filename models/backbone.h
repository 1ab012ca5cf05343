// The backbone of a job (torch): a pretrained file (Google .npz or timm .safetensors, loaded
// strictly), the embedded one, or random weights for dry runs; frozen, with its provenance.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "models/vit.h"

namespace petl {

struct JobBackbone {
  VisionTransformer model{nullptr};
  nlohmann::json info;  // arch, config, path, format, sha256
};

// backbone_file empty and arch empty: the embedded backbone. arch without a file: random weights,
// only when allow_random (dry runs); petl::Error otherwise.
// pos_resample: how a checkpoint's pos_embed on another grid is brought to the run's (VitConfig).
JobBackbone make_job_backbone(const std::string& backbone_file, const std::string& arch, double drop_path_rate,
                              bool allow_random, PosResample pos_resample = PosResample::kTimm);

}  // namespace petl

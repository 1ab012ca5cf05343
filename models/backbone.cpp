// The backbone of a job; see backbone.h.
#include "models/backbone.h"

#include <filesystem>

#include "core/error.h"
#include "core/paths.h"
#include "models/arch_registry.h"
#include "models/checkpoint.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

JobBackbone make_job_backbone(const std::string& backbone_file, const std::string& arch, double drop_path_rate,
                              bool allow_random, PosResample pos_resample) {
  std::string file = backbone_file;
  if (file.empty() && arch.empty()) file = embedded_backbone_path();
  VitConfig cfg;
  if (!arch.empty()) {
    cfg = vit_config_by_name(arch);
  } else {
    PETL_CHECK(fs::exists(file), "backbone file not found: ", file,
               backbone_file.empty() ? " (the embedded backbone; build it with `petl pretrain`)" : "");
    cfg = infer_vit_config(file);
  }
  cfg.drop_path_rate = drop_path_rate;
  cfg.pos_resample = pos_resample;
  JobBackbone b;
  b.model = VisionTransformer(cfg);
  b.info = {{"arch", cfg.arch}, {"config", json::parse(vit_config_to_json(cfg))}};
  if (file.empty()) {
    PETL_CHECK(allow_random, "no --backbone given for --arch ", arch,
               ": pass the pretrained checkpoint (.npz or .safetensors); random weights only with --dry-run");
    b.model->init_weights(0);
    b.info["path"] = nullptr;
    b.info["sha256"] = "random-init";
  } else {
    auto lb = load_backbone(b.model, file);
    torch::NoGradGuard ng;
    for (const auto& p : b.model->named_parameters())
      PETL_CHECK(torch::isfinite(p.value()).all().item<bool>(), "backbone file ", file, ": tensor '", p.key(),
                 "' holds NaN or infinite values (a corrupt or diverged checkpoint)");
    b.info["path"] = lb.path;
    b.info["format"] = lb.format;
    if (lb.layout != "timm" && lb.layout != "google_npz") b.info["layout"] = lb.layout;
    if (lb.pos_embed_resampled_from > 0)
      b.info["pos_embed_resampled"] = {
          {"from_grid", lb.pos_embed_resampled_from}, {"to_grid", cfg.grid()}, {"method", to_string(cfg.pos_resample)}};
    b.info["sha256"] = lb.sha256;
  }
  // Families beyond the supervised ViTs say where they come from (older records stay as they were).
  const ArchEntry* entry = find_arch(cfg.arch);
  if (entry && entry->family != BackboneFamily::kSupervised && entry->family != BackboneFamily::kPetlMini) {
    const Preprocessing& pp = entry->preprocessing;
    b.info["family"] = to_string(entry->family);
    b.info["pooling"] = to_string(cfg.pool);
    b.info["preprocessing"] = {{"mean", pp.mean},       {"std", pp.std},
                               {"profile", pp.profile}, {"resize", pp.resize},
                               {"crop", pp.crop},       {"interpolation", pp.interpolation},
                               {"source", pp.source},   {"normalisation_rule", "the family's unless set"}};
  }
  b.model->set_trainable(false);
  return b;
}

}  // namespace petl

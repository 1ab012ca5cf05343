// Where petl finds its run-time data: the config directory (recipes, per-task data files), the
// curated results directory and the embedded backbone. Each honours its environment variable
// (core/env.h), then looks beside the executable, then in the source tree.
#pragma once
#include <string>

namespace petl {

// Directory with recipes.yaml and per-method data files: $PETL_CONFIG_DIR, else <exe>/config,
// <exe>/../config or <exe>/../share/petl/config, else the source tree's config/.
std::string config_dir();
// A file of the curated results directory (e.g. "vpetl_bench_vtab1k.csv"): $PETL_RESULTS_DIR, beside
// the executable, the source tree, ./results — the first that holds it; "" when none does.
std::string find_results_file(const std::string& name);
// The embedded backbone shipped with petl (assets/petl_vit_mini_p8_32.safetensors), or
// $PETL_EMBEDDED_BACKBONE.
std::string embedded_backbone_path();

}  // namespace petl

// `petl cache build ...`: computes frozen-backbone features for a task/split and stores them as a
// feature cache (io/feature_store.h). Declared here so the torch-free `petl cache` dispatcher
// (app/cmd_cache.cpp) can forward to it; defined with the torch code (backbone forward passes).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/sweep/sweep_config.h"

namespace petl::cli {

// args: everything after `petl cache build`; returns the process exit status. User mistakes are
// thrown as petl::Error (main() prints them and exits 2), like every other subcommand.
int cmd_cache_build(const std::vector<std::string>& args);

}  // namespace petl::cli

namespace petl {
// The sweep planner's view of the method registry (harness/sweep/sweep_config.h CacheNeedFn):
// which taps / splits / normalisation `method` needs on `task` under `recipe` with `sets` (resolved
// exactly as `petl run` resolves them), or nullopt when it cannot train from cached features. Defined with the torch
// code (app/cmd_cache_build.cpp); the torch-free test stand-in of `petl sweep` defines its own. The sweep's backbone
// dimensions for its byte estimates: the architecture by name when given, else the backbone file's ("" = the embedded
// one); zeros when neither can be read (no estimate).
BackboneDims backbone_dims(const std::string& backbone, const std::string& arch);

std::optional<CacheNeed> method_cache_need(const std::string& method, const std::string& task,
                                           const std::string& recipe, const std::map<std::string, std::string>& sets,
                                           Benchmark benchmark);
// The planner's JobProfileFn: epochs and evaluations of the resolved recipe, whether the method
// back-propagates through the backbone, and why it cannot train from a feature cache.
JobProfile method_job_profile(const std::string& method, const std::string& task, const std::string& recipe,
                              Protocol protocol, const std::map<std::string, std::string>& sets, Benchmark benchmark);
// Protocol val_select: a method's default search grid (config/val_grids.yaml; harness/train/selection.h).
std::map<std::string, std::vector<std::string>> method_default_grid(const std::string& method);
}  // namespace petl

// `petl cache build ...`: computes frozen-backbone features for a task/split and stores them as a
// feature cache (harness/feature_store.h). Declared here so the torch-free `petl cache` dispatcher
// (app/cmd_cache.cpp) can forward to it; defined with the torch code (backbone forward passes).
#pragma once
#include <string>
#include <vector>

namespace petl::cli {

// args: everything after `petl cache build`; returns the process exit status. User mistakes are
// thrown as petl::Error (main() prints them and exits 2), like every other subcommand.
int cmd_cache_build(const std::vector<std::string>& args);

}  // namespace petl::cli

// A torch-free `petl` that knows only `sweep`, for the multi-rank tests of the sweep command
// (tests/mpi/sweep_signal_test.py) on machines or CI jobs without LibTorch. It stands in for the
// method registry: methods whose name starts with "lin" need a "cls" feature cache of the splits
// train800val200 and test, every other method none; the embedded backbone is the real file.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "app/cache_build.h"
#include "core/error.h"

namespace petl {
std::optional<CacheNeed> method_cache_need(const std::string& method, const std::string&, const std::string&,
                                           const std::map<std::string, std::string>&, Benchmark) {
  if (method.rfind("lin", 0) == 0) return CacheNeed{CacheTaps::parse("cls"), {"train800val200", "test"}, ""};
  return std::nullopt;
}
JobProfile method_job_profile(const std::string& method, const std::string&, const std::string&, Protocol,
                              const std::map<std::string, std::string>&, Benchmark) {
  const bool lin = method.rfind("lin", 0) == 0;
  return {10, 1, !lin, lin ? "" : "it back-propagates through the backbone (stand-in)"};
}
// No default search grids (protocol val_select plans one point per method).
std::map<std::string, std::vector<std::string>> method_default_grid(const std::string&) { return {}; }
// Fixed dimensions (2 blocks, 17 tokens, width 32) for the plan's byte estimates.
BackboneDims backbone_dims(const std::string&, const std::string&) { return {2, 17, 32}; }
namespace cli {
int cmd_sweep(const std::vector<std::string>& args);
}
}  // namespace petl

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "sweep") != 0) {
    std::fprintf(stderr, "usage: %s sweep CONFIG [options]   (a test stand-in for `petl sweep`)\n", argv[0]);
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    return petl::cli::cmd_sweep(args);
  } catch (const petl::Error& e) {
    std::fprintf(stderr, "petl sweep: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petl sweep: internal error: %s\n", e.what());
    return 3;
  }
}

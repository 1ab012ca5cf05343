#include "core/paths.h"

#include <unistd.h>

#include <filesystem>
#include <vector>

#include "core/env.h"

namespace petl {
namespace fs = std::filesystem;

namespace {
fs::path exe_dir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  buf[n] = 0;
  return fs::path(buf).parent_path();
}
}  // namespace

std::string config_dir() {
  if (auto e = env::get(env::kConfigDir); !e.empty()) return e;
  if (fs::path p = exe_dir(); !p.empty())
    for (auto c : {p / "config", p.parent_path() / "config", p.parent_path() / "share" / "petl" / "config"})
      if (fs::exists(c / "recipes.yaml")) return c.string();
  return std::string(PETL_SOURCE_DIR) + "/config";
}

std::string find_results_file(const std::string& name) {
  std::vector<fs::path> candidates;
  if (auto e = env::get(env::kResultsDir); !e.empty()) candidates.push_back(fs::path(e));
  if (fs::path p = exe_dir(); !p.empty())
    for (auto c : {p / "results", p.parent_path() / "results", p.parent_path() / "share" / "petl" / "results"})
      candidates.push_back(c);
  candidates.push_back(fs::path(PETL_SOURCE_DIR) / "results");
  candidates.push_back("results");
  for (auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c / name, ec)) return (c / name).string();
  }
  return "";
}

std::string embedded_backbone_path() {
  if (auto e = env::get(env::kEmbeddedBackbone); !e.empty()) return e;
  return (fs::path(config_dir()).parent_path() / "assets" / "petl_vit_mini_p8_32.safetensors").string();
}

}  // namespace petl

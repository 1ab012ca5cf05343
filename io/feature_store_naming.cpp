// Cache naming (cache_key, cache_path) and temporary-file hygiene: the "<key>.h5.tmp.<pid>" files
// of writers that died, found (stale_tmp_files) and removed by the next build of the key.
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/hashing.h"
#include "io/feature_store.h"
#include "io/feature_store_internal.h"

namespace petl::io {

namespace fs = std::filesystem;

namespace {
bool pid_alive(int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}
}  // namespace

std::string cache_key(const AttributeMap& identity) {
  PETL_CHECK(!identity.empty(), "cache_key: empty identity (expected backbone_sha256, task, split, ...)");
  std::string lines;
  for (const auto& [k, v] : identity) {
    PETL_CHECK(!k.empty() && k.find_first_of("=\n") == std::string::npos, "cache_key: identity key '", k,
               "' must be non-empty without '=' or newlines");
    PETL_CHECK(v.find('\n') == std::string::npos, "cache_key: value of identity key '", k, "' contains a newline");
    lines += k + "=" + v + "\n";
  }
  return key_of_text(lines);
}

std::string cache_path(const std::string& root, const std::string& key) {
  return (fs::path(root) / (key + ".h5")).string();
}

bool is_tmp_file(const std::string& path, int64_t* pid) {
  std::string name = fs::path(path).filename().string();
  size_t p = name.rfind(".h5.tmp.");
  if (p == std::string::npos) return false;
  std::string digits = name.substr(p + 8);
  if (digits.empty() || digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  if (pid) *pid = std::stoll(digits);
  return true;
}

std::vector<std::string> stale_tmp_files(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    int64_t pid = 0;
    if (e.is_regular_file(ec) && is_tmp_file(e.path().string(), &pid) && !pid_alive(pid))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace internal {

void remove_stale_tmp_files_of(const std::string& final_path) {
  const fs::path dir = fs::path(final_path).parent_path().empty() ? fs::path(".") : fs::path(final_path).parent_path();
  const std::string prefix = fs::path(final_path).filename().string() + ".tmp.";
  for (const std::string& t : stale_tmp_files(dir.string())) {
    if (fs::path(t).filename().string().rfind(prefix, 0) != 0) continue;
    std::error_code ec;
    if (fs::remove(t, ec))
      std::fprintf(stderr, "[petl] removed %s: the temporary file of a cache build whose process is gone\n", t.c_str());
  }
}

}  // namespace internal

}  // namespace petl::io

// Shared by the feature store's source files (internal to io/; the public API is io/feature_store.h):
// the schema constants and the helpers one file defines and another uses. HDF5-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace petl::io::internal {

constexpr const char* kSchema = "petl.feature_cache";
constexpr int64_t kSchemaVersion = 1;

// A non-negative decimal integer attribute value (h5::read_all_attributes' text of an integer).
inline bool parse_count(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoll(s);
  return true;
}

// The temporary files <final>.tmp.<pid> of writers of this key that died (killed mid-build): the
// next build of the key removes them. (pids are this host's: keep one writer per key per host.)
void remove_stale_tmp_files_of(const std::string& final_path);  // feature_store_naming.cpp

// half_to_float of every uint16_t, built once (float16.cpp).
const std::vector<float>& half_table();

}  // namespace petl::io::internal

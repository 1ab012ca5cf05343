// SHA-256 (OpenSSL) of files and bytes, hex-encoded; used for provenance (backbone hash,
// data-list hash) and deterministic job/cache keys.
#pragma once
#include <cstddef>
#include <string>

namespace petl {
std::string sha256_file(const std::string& path);  // throws petl::Error naming an unreadable file
std::string sha256_bytes(const void* data, size_t size);
inline std::string sha256_string(const std::string& s) { return sha256_bytes(s.data(), s.size()); }
// The key of a canonical text: the first 16 hex digits of its SHA-256 (job keys, sweep keys, cache
// keys). The one place that length is chosen.
constexpr size_t kKeyHexDigits = 16;
inline std::string key_of_text(const std::string& canonical) {
  return sha256_string(canonical).substr(0, kKeyHexDigits);
}
}  // namespace petl

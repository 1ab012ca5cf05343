// SHA-256 (OpenSSL) of files and bytes, hex-encoded; used for provenance (backbone hash,
// data-list hash) and deterministic job/cache keys.
#pragma once
#include <cstddef>
#include <string>

namespace petl {
std::string sha256_file(const std::string& path);  // throws petl::Error naming an unreadable file
std::string sha256_bytes(const void* data, size_t size);
inline std::string sha256_string(const std::string& s) { return sha256_bytes(s.data(), s.size()); }
}  // namespace petl

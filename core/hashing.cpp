// SHA-256 of files and byte buffers via OpenSSL EVP, hex-encoded lowercase.
// Files are streamed in 1 MiB chunks so large checkpoints never sit in memory twice.
#include "core/hashing.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <openssl/evp.h>
#include <vector>

#include "core/error.h"

namespace petl {
namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

MdCtx new_sha256_ctx() {
  MdCtx ctx(EVP_MD_CTX_new());
  PETL_CHECK(ctx != nullptr, "sha256: EVP_MD_CTX_new failed");
  PETL_CHECK(EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1, "sha256: EVP_DigestInit_ex failed");
  return ctx;
}

std::string finish_hex(EVP_MD_CTX* ctx) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  PETL_CHECK(EVP_DigestFinal_ex(ctx, digest, &len) == 1, "sha256: EVP_DigestFinal_ex failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 0xF]);
  }
  return out;
}

}  // namespace

std::string sha256_bytes(const void* data, size_t size) {
  MdCtx ctx = new_sha256_ctx();
  PETL_CHECK(EVP_DigestUpdate(ctx.get(), data, size) == 1, "sha256: EVP_DigestUpdate failed");
  return finish_hex(ctx.get());
}

std::string sha256_file(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  PETL_CHECK(f != nullptr, "sha256: cannot open file '", path, "': ", std::strerror(errno));
  MdCtx ctx = new_sha256_ctx();
  std::vector<unsigned char> buf(size_t(1) << 20);
  while (true) {
    size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    if (n > 0)
      PETL_CHECK(EVP_DigestUpdate(ctx.get(), buf.data(), n) == 1, "sha256: EVP_DigestUpdate failed for '", path, "'");
    if (n < buf.size()) {
      PETL_CHECK(!std::ferror(f.get()), "sha256: read error on file '", path, "'");
      break;
    }
  }
  return finish_hex(ctx.get());
}

}  // namespace petl

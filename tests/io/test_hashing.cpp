// Tests for harness/hashing: SHA-256 of the FIPS 180-2 test vectors, and of files (empty, smaller
// than, exactly, and larger than the 1 MiB read chunk) compared with python's hashlib.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <random>
#include <string>

#include "core/error.h"
#include "core/hashing.h"

namespace petl {
namespace {

namespace fs = std::filesystem;

TEST(HashingTest, KnownVectors) {
  EXPECT_EQ(sha256_string(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_string("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million_a(1000000, 'a');
  EXPECT_EQ(sha256_bytes(million_a.data(), million_a.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(HashingTest, FilesMatchPythonHashlib) {
  const fs::path dir = fs::temp_directory_path() / ("petl_hashing_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::mt19937 rng(1234);
  const size_t mib = size_t(1) << 20;
  for (size_t size : {size_t(0), size_t(3), mib - 1, mib, 2 * mib, 3 * mib + 123}) {
    SCOPED_TRACE(size);
    std::string data(size, '\0');
    for (char& c : data) c = static_cast<char>(rng() & 0xFF);
    const std::string p = (dir / ("f" + std::to_string(size) + ".bin")).string();
    std::ofstream(p, std::ios::binary).write(data.data(), static_cast<std::streamsize>(size));
    const std::string hex = sha256_file(p);
    EXPECT_EQ(hex, sha256_string(data));
    EXPECT_EQ(hex.size(), 64u);
    EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
    const std::string cmd = std::string(PETL_PYTHON " '" PETL_TEST_DIR "/io/py/sha256_check.py' '") + p + "' " + hex;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  fs::remove_all(dir);
}

TEST(HashingTest, UnreadableFileNamesThePath) {
  const std::string p = "/nonexistent/petl/backbone.npz";
  try {
    sha256_file(p);
    FAIL() << "expected petl::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
  // A directory opens but cannot be read.
  EXPECT_THROW(sha256_file(fs::temp_directory_path().string()), Error);
}

}  // namespace
}  // namespace petl

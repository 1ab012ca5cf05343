// Tests for harness/feature_store: float32 / float16 round trips (values, labels, paths,
// attributes), float16 conversion against an independent reference (nearest representable half
// by search, ties to even), chunked partial reads, every reader error (missing, not HDF5,
// truncated, incomplete, wrong attribute, wrong schema, corrupt chunk), atomic finish, cache
// naming and listing, and an h5py check of our files (tests/py/test_cache_h5py.py --file).
#include <unistd.h>

#include <H5Cpp.h>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "core/error.h"
#include "core/hashing.h"
#include "io/feature_store.h"

namespace petl::io {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------- helpers

class FeatureStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("petl_feature_store_" + std::to_string(::getpid()) + "_" + info->name() + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

AttributeMap identity(const std::string& task = "dtd") {
  return {{"backbone_sha256", std::string(64, 'a')},
          {"task", task},
          {"split", "train800val200"},
          {"normalisation", "imagenet"},
          {"taps", "cls"},
          {"dtype", "float32"},
          {"list_sha256", std::string(64, 'b')},
          {"petl_commit", "abc123"},
          {"created_utc", "2024-01-01T00:00:00Z"}};
}

// Deterministic test values: smooth plus a row/element pattern, with a sign.
float value_at(int64_t row, int64_t elem) {
  return static_cast<float>(std::sin(0.37 * static_cast<double>(row) + 0.011 * static_cast<double>(elem)) *
                            (1.0 + static_cast<double>(elem % 7)));
}

std::vector<float> make_rows(int64_t row0, int64_t count, int64_t elems) {
  std::vector<float> v(static_cast<size_t>(count * elems));
  for (int64_t r = 0; r < count; ++r)
    for (int64_t e = 0; e < elems; ++e) v[static_cast<size_t>(r * elems + e)] = value_at(row0 + r, e);
  return v;
}

std::vector<std::string> make_paths(int64_t n) {
  std::vector<std::string> p;
  for (int64_t i = 0; i < n; ++i)
    p.push_back("images/class_" + std::to_string(i % 3) + "/img_\xc3\xa9" + std::to_string(i) + ".jpg");
  return p;
}

std::vector<int64_t> make_labels(int64_t n) {
  std::vector<int64_t> l;
  for (int64_t i = 0; i < n; ++i) l.push_back((i * 7) % 10);
  return l;
}

// Writes a complete cache with the given features; writes in pieces of `piece` rows.
void write_cache(const std::string& file, int64_t n, const std::vector<FeatureSpec>& specs, const AttributeMap& attrs,
                 int64_t piece = 16) {
  FeatureStoreWriter w(file, n, specs, attrs);
  for (const FeatureSpec& s : specs)
    for (int64_t r = 0; r < n; r += piece) {
      int64_t c = std::min(piece, n - r);
      auto v = make_rows(r, c, s.row_elements());
      w.write_rows(s.name, r, c, v.data());
    }
  auto labels = make_labels(n);
  w.write_labels(0, n, labels.data());
  w.write_paths(0, make_paths(n));
  w.finish();
}

// File access in the HDF5 1.10 format, as the writer uses (checksummed metadata).
H5::FileAccPropList v110_access() {
  H5::FileAccPropList fa;
  H5Pset_libver_bounds(fa.getId(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  return fa;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const petl::Error& e) {
    return e.what();
  }
  return "<no petl::Error thrown>";
}

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float float_of(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// ---------------------------------------------------------------------------------- float16 reference

// Independent reference: the value of a half by its definition, and float → half as the nearest
// representable value found by binary search over all finite halves (ties to the even pattern;
// overflow by treating +inf as the next value 65536 after 65504, as IEEE round-to-nearest does).
double ref_half_value(uint16_t h) {
  int sign = (h & 0x8000) ? -1 : 1;
  int exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -24);
  if (exp == 31)
    return mant ? std::numeric_limits<double>::quiet_NaN() : sign * std::numeric_limits<double>::infinity();
  return sign * std::ldexp(1.0 + mant / 1024.0, exp - 15);
}

uint16_t ref_float_to_half(float f) {
  static const std::vector<double> pos = [] {  // value of pattern i for i in 0 .. 0x7C00 (inf as 65536)
    std::vector<double> v(0x7C01);
    for (uint32_t i = 0; i < 0x7C00; ++i) v[i] = ref_half_value(static_cast<uint16_t>(i));
    v[0x7C00] = 65536.0;
    return v;
  }();
  if (std::isnan(f)) return 0x7E00;
  uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  double a = std::fabs(static_cast<double>(f));
  if (a >= 65536.0) return sign | 0x7C00;
  auto it = std::lower_bound(pos.begin(), pos.end(), a);  // first ≥ a
  size_t hi = static_cast<size_t>(it - pos.begin());
  if (pos[hi] == a) return static_cast<uint16_t>(sign | hi);
  size_t lo = hi - 1;
  double dlo = a - pos[lo], dhi = pos[hi] - a;
  size_t pick = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) == 0 ? lo : hi);
  return static_cast<uint16_t>(sign | pick);
}

void expect_half_matches(float f) {
  uint16_t got = float_to_half(f), want = ref_float_to_half(f);
  if (std::isnan(f)) {
    EXPECT_TRUE((got & 0x7C00) == 0x7C00 && (got & 0x3FF) != 0) << "NaN " << std::hex << bits_of(f) << " → " << got;
    EXPECT_EQ(got & 0x8000, bits_of(f) >> 31 << 15);
    return;
  }
  ASSERT_EQ(got, want) << "float bits 0x" << std::hex << bits_of(f) << " (" << f << ")";
}

TEST(Float16, EdgeCasesMatchReference) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> cases = {0.0f,
                              -0.0f,
                              1.0f,
                              -1.0f,
                              65504.0f,
                              -65504.0f,
                              65519.99f,
                              65520.0f,
                              -65520.0f,
                              65536.0f,
                              1e6f,
                              -1e30f,
                              inf,
                              -inf,
                              3.4e38f,
                              std::ldexp(1.0f, -14),
                              std::ldexp(1.0f, -24),
                              -std::ldexp(1.0f, -24),
                              std::ldexp(1.0f, -25),                        // tie between 0 and min subnormal → 0
                              std::nextafter(std::ldexp(1.0f, -25), 1.0f),  // just above the tie → min subnormal
                              std::ldexp(3.0f, -25),                        // tie 1.5 units → 2 (even)
                              std::ldexp(5.0f, -25),                        // tie 2.5 units → 2 (even)
                              std::ldexp(1023.5f, -24),                     // tie at the top of subnormals → 0x400
                              std::ldexp(1.0f, -26),
                              1e-10f,
                              std::numeric_limits<float>::denorm_min(),
                              1.0f + std::ldexp(1.0f, -11),      // tie → 1.0 (even)
                              1.0f + 3 * std::ldexp(1.0f, -11),  // tie → 1 + 2^-9 (even)
                              2048.0f + 1.0f,
                              2048.0f + 3.0f,  // ties at spacing 2
                              0.1f,
                              0.333333f,
                              -2.71828f,
                              1000.06f};
  for (float f : cases) expect_half_matches(f);
  EXPECT_EQ(float_to_half(65520.0f), 0x7C00);
  EXPECT_EQ(float_to_half(-65520.0f), 0xFC00);
  EXPECT_EQ(float_to_half(65519.99f), 0x7BFF);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(float_to_half(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(float_to_half(std::ldexp(1023.5f, -24)), 0x0400);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  for (float nan : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::signaling_NaN(), float_of(0x7F800001u), float_of(0xFFFFFFFFu)}) {
    expect_half_matches(nan);
    EXPECT_TRUE(std::isnan(half_to_float(float_to_half(nan))));
  }
}

TEST(Float16, EveryMidpointAndNeighboursMatchReference) {
  // For every pair of adjacent finite halves: the exact midpoint (a tie) and the floats either side.
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    double a = ref_half_value(static_cast<uint16_t>(h)),
           b = h + 1 == 0x7C00 ? 65536.0 : ref_half_value(static_cast<uint16_t>(h + 1));
    float mid = static_cast<float>((a + b) / 2);  // exact in float (halves have 11 significant bits)
    ASSERT_EQ(static_cast<double>(mid), (a + b) / 2);
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), static_cast<float>(a)}) {
      expect_half_matches(f);
      expect_half_matches(-f);
    }
  }
}

TEST(Float16, StridedSweepOfAllFloatsMatchesReference) {
  for (uint64_t b = 0; b < (1ull << 32); b += 4093) expect_half_matches(float_of(static_cast<uint32_t>(b)));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-70000.0f, 70000.0f);
  for (int i = 0; i < 200000; ++i) expect_half_matches(u(rng));
}

TEST(Float16, HalfToFloatIsExactForAllPatterns) {
  std::vector<uint16_t> all(65536);
  std::vector<float> bulk(65536);
  for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
  halves_to_floats(all.data(), bulk.data(), all.size());
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = half_to_float(static_cast<uint16_t>(h));
    double want = ref_half_value(static_cast<uint16_t>(h));
    EXPECT_EQ(bits_of(bulk[h]), bits_of(f));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << h;
    } else {
      ASSERT_EQ(static_cast<double>(f), want) << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
      ASSERT_EQ(float_to_half(f), h) << "half → float → half round trip of 0x" << std::hex << h;
    }
  }
}

// ---------------------------------------------------------------------------------- round trips

TEST_F(FeatureStoreTest, RoundTripFloat32) {
  const int64_t n = 37;
  std::vector<FeatureSpec> specs = {{"cls", {5}, "float32"}, {"kv", {2, 2, 3, 4}, "float32"}};
  const std::string file = path("c.h5");
  write_cache(file, n, specs, identity(), 10);

  FeatureStoreReader r(file, identity());
  EXPECT_EQ(r.n_rows(), n);
  ASSERT_EQ(r.specs().size(), 2u);
  EXPECT_EQ(r.spec("cls").row_shape, std::vector<int64_t>({5}));
  EXPECT_EQ(r.spec("kv").row_shape, std::vector<int64_t>({2, 2, 3, 4}));
  EXPECT_EQ(r.spec("kv").dtype, "float32");
  for (const auto& [k, v] : identity()) EXPECT_EQ(r.attributes().at(k), v) << k;
  EXPECT_EQ(r.attributes().at("schema"), "petl.feature_cache");
  EXPECT_EQ(r.attributes().at("schema_version"), "1");
  EXPECT_EQ(r.attributes().at("complete"), "1");
  EXPECT_EQ(r.attributes().at("n_rows_written"), "37");
  for (const FeatureSpec& s : specs) {
    std::vector<float> got(static_cast<size_t>(n * s.row_elements()));
    r.read_rows(s.name, 0, n, got.data());
    EXPECT_EQ(got, make_rows(0, n, s.row_elements())) << s.name;
  }
  std::vector<int64_t> labels(n);
  r.read_labels(0, n, labels.data());
  EXPECT_EQ(labels, make_labels(n));
  EXPECT_EQ(r.read_paths(0, n), make_paths(n));
  auto part = r.read_paths(30, 7);
  ASSERT_EQ(part.size(), 7u);
  EXPECT_EQ(part[0], make_paths(n)[30]);
  EXPECT_NE(error_of([&] { r.spec("nope"); }).find("present: cls, kv"), std::string::npos);
  EXPECT_NE(error_of([&] {
              std::vector<float> buf(100);
              r.read_rows("cls", 30, 8, buf.data());
            }).find("outside 0..36"),
            std::string::npos);
}

TEST_F(FeatureStoreTest, RoundTripFloat16) {
  const int64_t n = 21;
  std::vector<FeatureSpec> specs = {{"cls", {9}, "float16"}, {"f32", {3}, "float32"}};
  const std::string file = path("h.h5");
  write_cache(file, n, specs, identity(), 4);
  FeatureStoreReader r(file);
  EXPECT_EQ(r.spec("cls").dtype, "float16");
  EXPECT_EQ(r.spec("f32").dtype, "float32");
  std::vector<float> got(n * 9);
  r.read_rows("cls", 0, n, got.data());
  auto src = make_rows(0, n, 9);
  for (size_t i = 0; i < src.size(); ++i)
    ASSERT_EQ(bits_of(got[i]), bits_of(half_to_float(float_to_half(src[i])))) << i;
  // Partial read at an odd offset (the in-place widening must not depend on alignment of row0).
  std::vector<float> part(3 * 9);
  r.read_rows("cls", 5, 3, part.data());
  for (size_t i = 0; i < part.size(); ++i) ASSERT_EQ(part[i], got[5 * 9 + i]);
  // Special values survive the file.
  {
    std::vector<FeatureSpec> s1 = {{"x", {8}, "float16"}};
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> v = {1e6f,  -1e6f,   inf, std::nanf(""), std::ldexp(1.0f, -24), std::ldexp(3.0f, -25),
                            -0.0f, 65504.0f};
    FeatureStoreWriter w(path("s.h5"), 1, s1, {});
    w.write_rows("x", 0, 1, v.data());
    int64_t l = 0;
    w.write_labels(0, 1, &l);
    w.write_paths(0, {"a.png"});
    w.finish();
    FeatureStoreReader r1(path("s.h5"));
    std::vector<float> o(8);
    r1.read_rows("x", 0, 1, o.data());
    EXPECT_EQ(o[0], inf);
    EXPECT_EQ(o[1], -inf);
    EXPECT_EQ(o[2], inf);
    EXPECT_TRUE(std::isnan(o[3]));
    EXPECT_EQ(o[4], std::ldexp(1.0f, -24));
    EXPECT_EQ(o[5], std::ldexp(2.0f, -24));
    EXPECT_TRUE(o[6] == 0.0f && std::signbit(o[6]));
    EXPECT_EQ(o[7], 65504.0f);
  }
}

// Both dtypes, a dataset of several chunks written and read in pieces that straddle chunks.
TEST_F(FeatureStoreTest, DatasetBiggerThanOneChunkReadInPieces) {
  const int64_t n = 1300;
  std::vector<FeatureSpec> specs = {{"tok", {1024}, "float32"}, {"half", {2048}, "float16"}};
  const std::string file = path("big.h5");
  {
    FeatureStoreWriter w(file, n, specs, identity());
    for (const FeatureSpec& s : specs) {
      int64_t cr = w.chunk_rows(s.name);
      int64_t chunk_bytes = cr * s.row_elements() * (s.dtype == "float16" ? 2 : 4);
      EXPECT_GT(cr, 1);
      EXPECT_LT(cr, n) << "needs more than one chunk for this test";
      EXPECT_GE(chunk_bytes, 1 << 20);
      EXPECT_LE(chunk_bytes, 4 << 20);
    }
    // Write out of order in uneven pieces.
    for (const FeatureSpec& s : specs)
      for (auto [r0, c] : std::vector<std::pair<int64_t, int64_t>>{{700, 300}, {0, 333}, {333, 367}, {1000, 300}}) {
        auto v = make_rows(r0, c, s.row_elements());
        w.write_rows(s.name, r0, c, v.data());
      }
    auto labels = make_labels(n);
    w.write_labels(0, 500, labels.data());
    w.write_labels(500, n - 500, labels.data() + 500);
    auto p = make_paths(n);
    w.write_paths(0, std::vector<std::string>(p.begin(), p.begin() + 650));
    w.write_paths(650, std::vector<std::string>(p.begin() + 650, p.end()));
    w.finish();
  }
  FeatureStoreReader r(file);
  for (const FeatureSpec& s : specs) {
    EXPECT_GT(r.chunk_rows(s.name), 1);
    for (int64_t r0 = 0; r0 < n; r0 += 97) {
      int64_t c = std::min<int64_t>(97, n - r0);
      std::vector<float> got(static_cast<size_t>(c * s.row_elements()));
      r.read_rows(s.name, r0, c, got.data());
      auto want = make_rows(r0, c, s.row_elements());
      if (s.dtype == "float16")
        for (auto& x : want) x = half_to_float(float_to_half(x));
      ASSERT_EQ(got, want) << s.name << " rows " << r0;
    }
  }
  std::vector<int64_t> l(10);
  r.read_labels(1290, 10, l.data());
  EXPECT_EQ(l[9], make_labels(n)[1299]);
  EXPECT_EQ(r.read_paths(1299, 1)[0], make_paths(n)[1299]);
  auto v = verify(file);
  EXPECT_TRUE(v.ok) << v.message;
  EXPECT_EQ(v.rows, n);
  EXPECT_EQ(v.bytes, fs::file_size(file));
}

TEST_F(FeatureStoreTest, ChunkIsAtLeastOneRow) {
  std::vector<FeatureSpec> specs = {{"huge", {1100000}, "float32"}};  // 4.4 MB per row
  const std::string file = path("huge.h5");
  FeatureStoreWriter w(file, 3, specs, {});
  EXPECT_EQ(w.chunk_rows("huge"), 1);
  for (int64_t r = 0; r < 3; ++r) {
    auto v = make_rows(r, 1, 1100000);
    w.write_rows("huge", r, 1, v.data());
  }
  int64_t l[3] = {0, 1, 2};
  w.write_labels(0, 3, l);
  w.write_paths(0, {"a", "b", "c"});
  w.finish();
  FeatureStoreReader r(file);
  std::vector<float> got(1100000);
  r.read_rows("huge", 2, 1, got.data());
  EXPECT_EQ(got, make_rows(2, 1, 1100000));
}

// ---------------------------------------------------------------------------------- writer rules

TEST_F(FeatureStoreTest, FinishIsAtomicAndTmpRemovedWithoutFinish) {
  std::vector<FeatureSpec> specs = {{"cls", {4}, "float32"}};
  const std::string file = path("sub/dir/a.h5");  // parent directories are created
  {
    FeatureStoreWriter w(file, 2, specs, identity());
    EXPECT_EQ(w.tmp_path(), file + ".tmp." + std::to_string(::getpid()));
    EXPECT_TRUE(fs::exists(w.tmp_path()));
    EXPECT_FALSE(fs::exists(file));
    auto v = make_rows(0, 2, 4);
    w.write_rows("cls", 0, 2, v.data());
    // A cache still being written cannot be opened as a finished one.
    std::string err = error_of([&] { FeatureStoreReader r(w.tmp_path()); });
    EXPECT_NE(err.find(w.tmp_path()), std::string::npos) << err;
    int64_t l[2] = {1, 2};
    w.write_labels(0, 2, l);
    w.write_paths(0, {"x", "y"});
    EXPECT_FALSE(fs::exists(file));
    w.finish();
    EXPECT_TRUE(fs::exists(file));
    EXPECT_FALSE(fs::exists(w.tmp_path()));
    EXPECT_NE(error_of([&] { w.finish(); }).find("twice"), std::string::npos);
  }
  EXPECT_TRUE(fs::exists(file));  // the destructor after finish() keeps the file

  std::string tmp;
  {
    FeatureStoreWriter w(path("b.h5"), 2, specs, identity());
    tmp = w.tmp_path();
    auto v = make_rows(0, 2, 4);
    w.write_rows("cls", 0, 2, v.data());
    EXPECT_TRUE(fs::exists(tmp));
  }
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(path("b.h5")));
}

TEST_F(FeatureStoreTest, NextBuildOfAKeyRemovesTmpFilesOfDeadWriters) {
  std::vector<FeatureSpec> specs = {{"cls", {4}, "float32"}};
  // A dead writer's tmp file (a pid that no process has: above pid_max), a live one's (ours, from
  // another writer of the same key), and a dead writer's of another key.
  const std::string dead = path("k.h5.tmp.999999999"), live = path("k.h5.tmp.1"), other = path("j.h5.tmp.999999999");
  for (auto& f : {dead, live, other}) std::ofstream(f) << "partial";
  testing::internal::CaptureStderr();
  {
    FeatureStoreWriter w(path("k.h5"), 2, specs, identity());
    EXPECT_TRUE(fs::exists(w.tmp_path()));
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_NE(err.find(dead), std::string::npos) << err;
  EXPECT_TRUE(fs::exists(live));   // pid 1 is alive: never touched
  EXPECT_TRUE(fs::exists(other));  // another key: left to its own next build or `petl cache rm --incomplete`
}

TEST_F(FeatureStoreTest, FinishRequiresEveryRowOfEveryDataset) {
  std::vector<FeatureSpec> specs = {{"cls", {4}, "float32"}, {"kv", {2}, "float16"}};
  std::string tmp;
  {
    FeatureStoreWriter w(path("a.h5"), 5, specs, {});
    tmp = w.tmp_path();
    auto v = make_rows(0, 5, 4);
    w.write_rows("cls", 0, 5, v.data());
    auto k = make_rows(0, 5, 2);
    w.write_rows("kv", 0, 2, k.data());
    w.write_rows("kv", 3, 2, k.data() + 6);
    int64_t l[5] = {0, 1, 2, 3, 4};
    w.write_labels(0, 5, l);
    w.write_paths(0, {"a", "b", "c", "d", "e"});
    std::string err = error_of([&] { w.finish(); });
    EXPECT_NE(err.find("features/kv written for 4 of 5 rows (first missing row 2)"), std::string::npos) << err;
    EXPECT_NE(err.find(tmp), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(path("a.h5")));
    EXPECT_NE(error_of([&] { w.write_rows("kv", 4, 2, k.data()); }).find("outside 0..4"), std::string::npos);
    EXPECT_NE(error_of([&] { w.write_rows("nope", 0, 1, k.data()); }).find("no feature dataset 'nope'"),
              std::string::npos);
  }
  EXPECT_FALSE(fs::exists(tmp));
}

TEST_F(FeatureStoreTest, WriterRejectsBadSpecs) {
  EXPECT_NE(error_of([&] {
              FeatureStoreWriter w(path("a.h5"), 3, {{"x", {2}, "bfloat16"}}, {});
            }).find("expected float16 or float32"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              FeatureStoreWriter w(path("a.h5"), 3, {{"a/b", {2}, "float32"}}, {});
            }).find("no '/'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              FeatureStoreWriter w(path("a.h5"), 3, {{"x", {2}, "float32"}}, {{"complete", "1"}});
            }).find("reserved"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              FeatureStoreWriter w(path("a.h5"), 0, {{"x", {2}, "float32"}}, {});
            }).find("n_rows"),
            std::string::npos);
  EXPECT_TRUE(fs::is_empty(dir_));
}

// ---------------------------------------------------------------------------------- reader errors

class FeatureStoreErrors : public FeatureStoreTest {
 protected:
  void SetUp() override {
    FeatureStoreTest::SetUp();
    good_ = path("good.h5");
    write_cache(good_, 600, {{"cls", {1024}, "float32"}, {"kv", {512}, "float16"}}, identity(), 100);
  }
  std::string good_;
};

TEST_F(FeatureStoreErrors, MissingFile) {
  std::string err = error_of([&] { FeatureStoreReader r(path("nope.h5")); });
  EXPECT_NE(err.find(path("nope.h5")), std::string::npos) << err;
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
}

TEST_F(FeatureStoreErrors, NotHdf5) {
  std::ofstream(path("text.h5")) << "hello, this is not HDF5\n";
  std::string err = error_of([&] { FeatureStoreReader r(path("text.h5")); });
  EXPECT_NE(err.find(path("text.h5")), std::string::npos) << err;
  EXPECT_NE(err.find("cannot be opened as HDF5"), std::string::npos) << err;
}

TEST_F(FeatureStoreErrors, WrongExpectedAttribute) {
  std::string err = error_of([&] { FeatureStoreReader r(good_, identity("caltech101")); });
  EXPECT_NE(err.find(good_), std::string::npos) << err;
  EXPECT_NE(err.find("attribute 'task' is 'dtd', expected 'caltech101'"), std::string::npos) << err;
  AttributeMap extra = identity();
  extra["image_size"] = "224";
  err = error_of([&] { FeatureStoreReader r(good_, extra); });
  EXPECT_NE(err.find("has no attribute 'image_size' (expected '224')"), std::string::npos) << err;
}

TEST_F(FeatureStoreErrors, IncompleteFile) {
  fs::copy_file(good_, path("inc.h5"));
  {
    H5::H5File f(path("inc.h5"), H5F_ACC_RDWR);
    int64_t zero = 0;
    f.openAttribute("complete").write(H5::PredType::NATIVE_INT64, &zero);
  }
  std::string err = error_of([&] { FeatureStoreReader r(path("inc.h5")); });
  EXPECT_NE(err.find(path("inc.h5")), std::string::npos) << err;
  EXPECT_NE(err.find("is incomplete (complete = 0"), std::string::npos) << err;
  EXPECT_FALSE(verify(path("inc.h5")).ok);
}

TEST_F(FeatureStoreErrors, WrongSchemaAndVersionAndShapes) {
  fs::copy_file(good_, path("s.h5"));
  {
    H5::H5File f(path("s.h5"), H5F_ACC_RDWR);
    int64_t two = 2;
    f.openAttribute("schema_version").write(H5::PredType::NATIVE_INT64, &two);
  }
  EXPECT_NE(
      error_of([&] { FeatureStoreReader r(path("s.h5")); }).find("has schema_version 2, this petl reads version 1"),
      std::string::npos);
  {
    H5::H5File f(path("o.h5"), H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, v110_access());
    H5::StrType st(H5::PredType::C_S1, 11);
    f.createAttribute("schema", st, H5::DataSpace(H5S_SCALAR)).write(st, std::string("petl.result"));
  }
  EXPECT_NE(error_of([&] {
              FeatureStoreReader r(path("o.h5"));
            }).find("has schema 'petl.result', expected 'petl.feature_cache'"),
            std::string::npos);
  fs::copy_file(good_, path("n.h5"));
  {
    H5::H5File f(path("n.h5"), H5F_ACC_RDWR);
    int64_t n = 601;
    f.openAttribute("n_rows").write(H5::PredType::NATIVE_INT64, &n);
    f.openAttribute("n_rows_written").write(H5::PredType::NATIVE_INT64, &n);
  }
  std::string err = error_of([&] { FeatureStoreReader r(path("n.h5")); });
  EXPECT_NE(err.find("dataset labels has 600 rows, expected n_rows = 601"), std::string::npos) << err;
}

// HDF5 1.10 crashes or hangs on corrupt metadata that has no checksum (tests/fuzz), so files in the
// older formats, variable-length strings (global heap) and unchunked datasets are refused before
// HDF5 reads them; a dataset with unwritten chunks is refused by its size.
TEST_F(FeatureStoreErrors, UncheckedFormatsAreRefused) {
  auto expect_refused = [&](const std::string& file, const std::string& what) {
    const std::string err = error_of([&] { FeatureStoreReader r(file); });
    EXPECT_NE(err.find(file), std::string::npos) << err;
    EXPECT_NE(err.find(what), std::string::npos) << err;
    EXPECT_NE(err.find("delete it or let petl rebuild it"), std::string::npos) << err;
    EXPECT_FALSE(verify(file).ok);
  };
  {  // HDF5's default (oldest) format: superblock version 0, no metadata checksums
    H5::H5File f(path("old.h5"), H5F_ACC_TRUNC);
    H5::StrType st(H5::PredType::C_S1, 18);
    f.createAttribute("schema", st, H5::DataSpace(H5S_SCALAR)).write(st, std::string("petl.feature_cache"));
  }
  expect_refused(path("old.h5"), "uses HDF5 superblock version 0, a format whose metadata has no checksums");
  bool listed = false;
  for (const CacheEntry& e : list_caches(dir_.string()))
    if (e.path == path("old.h5")) {
      listed = true;
      EXPECT_NE(e.error.find("superblock version 0"), std::string::npos) << e.error;
    }
  EXPECT_TRUE(listed);

  fs::copy_file(good_, path("vlen_attr.h5"));
  {
    H5::H5File f(path("vlen_attr.h5"), H5F_ACC_RDWR);
    H5::StrType st(H5::PredType::C_S1, H5T_VARIABLE);
    f.createAttribute("note", st, H5::DataSpace(H5S_SCALAR)).write(st, std::string("from another tool"));
  }
  expect_refused(path("vlen_attr.h5"), "attribute 'note' is a variable-length string");

  const hsize_t n = 600, chunk = 100, dims2[2] = {600, 4}, chunk2[2] = {100, 4};
  fs::copy_file(good_, path("vlen_paths.h5"));
  {
    H5::H5File f(path("vlen_paths.h5"), H5F_ACC_RDWR);
    f.unlink("paths");
    H5::DSetCreatPropList cp;
    cp.setChunk(1, &chunk);
    H5::StrType st(H5::PredType::C_S1, H5T_VARIABLE);
    H5::DataSet ds = f.createDataSet("paths", st, H5::DataSpace(1, &n), cp);
    std::vector<const char*> p(n, "a.png");
    ds.write(p.data(), st);
  }
  expect_refused(path("vlen_paths.h5"), "dataset paths holds variable-length strings");

  fs::copy_file(good_, path("unwritten.h5"));
  {
    H5::H5File f(path("unwritten.h5"), H5F_ACC_RDWR);
    H5::DSetCreatPropList cp;
    cp.setChunk(2, chunk2);
    cp.setFletcher32();
    f.createDataSet("features/extra", H5::PredType::IEEE_F32LE, H5::DataSpace(2, dims2), cp);
  }
  expect_refused(path("unwritten.h5"), "dataset features/extra holds 9600 bytes (600 rows) but only 0 bytes");

  fs::copy_file(good_, path("flat.h5"));
  {
    H5::H5File f(path("flat.h5"), H5F_ACC_RDWR);
    H5::DataSet ds = f.createDataSet("features/flat", H5::PredType::IEEE_F32LE, H5::DataSpace(2, dims2));
    std::vector<float> zeros(600 * 4, 0.0f);
    ds.write(zeros.data(), H5::PredType::NATIVE_FLOAT);
  }
  expect_refused(path("flat.h5"), "dataset features/flat is not chunked");
}

TEST_F(FeatureStoreErrors, TruncatedFile) {
  const std::string t = path("trunc.h5");
  fs::copy_file(good_, t);
  fs::resize_file(t, fs::file_size(t) / 2);
  std::string err = error_of([&] { FeatureStoreReader r(t); });
  EXPECT_NE(err.find(t), std::string::npos) << err;
  EXPECT_NE(err.find("cannot be opened as HDF5"), std::string::npos) << err;
  auto v = verify(t);
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.message.find(t), std::string::npos) << v.message;
}

// Damages bytes inside the stored data of chunk `chunk` of a dataset; returns its rows.
std::pair<int64_t, int64_t> corrupt_chunk(const std::string& file, const std::string& dataset, hsize_t chunk) {
  haddr_t addr = 0;
  hsize_t size = 0, offset[2] = {0, 0};
  {
    H5::H5File f(file, H5F_ACC_RDONLY);
    H5::DataSet ds = f.openDataSet(dataset);
    H5::DataSpace sp = ds.getSpace();
    unsigned mask = 0;
    EXPECT_GE(H5Dget_chunk_info(ds.getId(), sp.getId(), chunk, offset, &mask, &addr, &size), 0);
  }
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  // Near the start of the chunk (an edge chunk's tail is padding); XOR 0x5A, not ~: fletcher32
  // cannot tell 0x0000 from 0xFFFF words.
  const std::streamoff at = static_cast<std::streamoff>(addr + std::min<hsize_t>(size / 4, 100));
  io.seekg(at);
  char b[8];
  io.read(b, 8);
  for (char& c : b) c = static_cast<char>(c ^ 0x5A);
  io.seekp(at);
  io.write(b, 8);
  H5::H5File f(file, H5F_ACC_RDONLY);
  hsize_t chunk_dims[2], dims[2];
  H5::DataSet ds = f.openDataSet(dataset);
  ds.getCreatePlist().getChunk(2, chunk_dims);
  ds.getSpace().getSimpleExtentDims(dims);
  return {static_cast<int64_t>(offset[0]), static_cast<int64_t>(std::min(offset[0] + chunk_dims[0], dims[0]) - 1)};
}

TEST_F(FeatureStoreErrors, CorruptChunkIsDetected) {
  const std::string c = path("corrupt.h5");
  fs::copy_file(good_, c);
  auto [a, b] = corrupt_chunk(c, "features/cls", 1);  // the edge chunk: rows 512..599
  FeatureStoreReader r(c);                            // attributes and metadata are intact
  const int64_t cr = r.chunk_rows("cls");
  ASSERT_EQ(a, cr);
  std::vector<float> buf(static_cast<size_t>(600 * 1024));
  // Rows of the intact first chunk still read; a read touching the bad chunk names it.
  r.read_rows("cls", 0, cr, buf.data());
  EXPECT_EQ(std::vector<float>(buf.begin(), buf.begin() + 1024), make_rows(0, 1, 1024));
  std::string want = "feature cache " + c + " is corrupt (checksum error in dataset features/cls rows " +
                     std::to_string(a) + ".." + std::to_string(b) + "): delete it or let petl rebuild it";
  EXPECT_EQ(error_of([&] { r.read_rows("cls", 0, 600, buf.data()); }), want);
  EXPECT_EQ(error_of([&] { r.read_rows("cls", a + 3, 2, buf.data()); }), want);
  auto v = verify(c);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.message, want);
  EXPECT_EQ(v.rows, 600);

  // float16 dataset too, and the labels.
  const std::string c2 = path("corrupt2.h5");
  fs::copy_file(good_, c2);
  auto [a2, b2] = corrupt_chunk(c2, "features/kv", 0);
  FeatureStoreReader r2(c2);
  std::string err = error_of([&] { r2.read_rows("kv", 0, 10, buf.data()); });
  EXPECT_NE(err.find("is corrupt (checksum error in dataset features/kv rows " + std::to_string(a2) + ".." +
                     std::to_string(b2) + ")"),
            std::string::npos)
      << err;
  EXPECT_FALSE(verify(c2).ok);

  const std::string c3 = path("corrupt3.h5");
  fs::copy_file(good_, c3);
  corrupt_chunk(c3, "labels", 0);
  FeatureStoreReader r3(c3);
  std::vector<int64_t> l(600);
  EXPECT_NE(error_of([&] { r3.read_labels(0, 600, l.data()); }).find("checksum error in dataset labels rows 0..599"),
            std::string::npos);
  auto v3 = verify(c3);
  EXPECT_FALSE(v3.ok);
  EXPECT_NE(v3.message.find("labels"), std::string::npos) << v3.message;
}

// ---------------------------------------------------------------------------------- naming, listing

TEST(FeatureStoreNaming, CacheKeyIsSha256OfSortedLines) {
  AttributeMap id = {{"task", "dtd"}, {"backbone_sha256", "ff"}, {"split", "test"}};
  std::string key = cache_key(id);
  EXPECT_EQ(key.size(), 16u);
  EXPECT_EQ(key, sha256_string("backbone_sha256=ff\nsplit=test\ntask=dtd\n").substr(0, 16));
  id["split"] = "train";
  EXPECT_NE(cache_key(id), key);
  EXPECT_EQ(cache_path("/x/cache", "0123456789abcdef"), "/x/cache/0123456789abcdef.h5");
  EXPECT_THROW(cache_key({{"a=b", "c"}}), petl::Error);
  EXPECT_THROW(cache_key({{"a", "c\nd"}}), petl::Error);
}

TEST_F(FeatureStoreTest, ListCachesAndStaleTmpFiles) {
  std::vector<FeatureSpec> specs = {{"cls", {8}, "float16"}};
  AttributeMap id1 = identity("dtd"), id2 = identity("eurosat");
  const std::string p1 = cache_path(dir_.string(), cache_key(id1)), p2 = cache_path(dir_.string(), cache_key(id2));
  write_cache(p1, 10, specs, id1);
  write_cache(p2, 20, specs, id2);
  std::ofstream(path("broken.h5")) << "garbage";
  std::ofstream(path("notes.txt")) << "ignored";
  // A tmp file of a dead writer and one of a live writer (this process).
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  const std::string dead = p1 + ".tmp." + std::to_string(child), live = p2 + ".tmp." + std::to_string(::getpid());
  std::ofstream(dead) << "x";
  std::ofstream(live) << "x";

  auto entries = list_caches(dir_.string());
  ASSERT_EQ(entries.size(), 3u);
  std::map<std::string, CacheEntry> by_path;
  for (auto& e : entries) by_path[e.path] = e;
  EXPECT_TRUE(by_path[p1].complete);
  EXPECT_EQ(by_path[p1].rows, 10);
  EXPECT_EQ(by_path[p1].key, cache_key(id1));
  EXPECT_EQ(by_path[p1].attributes.at("task"), "dtd");
  EXPECT_EQ(by_path[p2].rows, 20);
  EXPECT_EQ(by_path[p2].attributes.at("task"), "eurosat");
  EXPECT_EQ(by_path[p2].size_bytes, fs::file_size(p2));
  EXPECT_FALSE(by_path[path("broken.h5")].complete);
  EXPECT_FALSE(by_path[path("broken.h5")].error.empty());
  EXPECT_TRUE(std::is_sorted(entries.begin(), entries.end(),
                             [](const CacheEntry& a, const CacheEntry& b) { return a.path < b.path; }));

  int64_t pid = 0;
  EXPECT_TRUE(is_tmp_file(dead, &pid));
  EXPECT_EQ(pid, child);
  EXPECT_FALSE(is_tmp_file(p1));
  EXPECT_EQ(stale_tmp_files(dir_.string()), std::vector<std::string>({dead}));
  EXPECT_THROW(list_caches(path("missing")), petl::Error);
}

// ---------------------------------------------------------------------------------- h5py interop

#if defined(PETL_PYTHON) && defined(PETL_TEST_DIR)
TEST_F(FeatureStoreTest, H5pyReadsOurFiles) {
  // Sources for the float16 check: numpy's float16 conversion (round to nearest even) must give
  // exactly our halves, including subnormals, ties and overflow.
  std::vector<float> src;
  for (uint32_t h = 0; h + 1 < 0x7C00; h += 3) {  // midpoints (ties) and their neighbours
    float lo = half_to_float(static_cast<uint16_t>(h)), hi = half_to_float(static_cast<uint16_t>(h + 1));
    float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
    src.insert(src.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), -mid});
  }
  for (float f : {65504.0f, 65519.0f, 65520.0f, 1e6f, -1e6f, std::numeric_limits<float>::infinity(), 0.0f, -0.0f,
                  std::ldexp(1.0f, -25), std::ldexp(3.0f, -25)})
    src.push_back(f);
  const int64_t cols = 4, n = static_cast<int64_t>(src.size()) / cols;
  src.resize(static_cast<size_t>(n * cols));
  const std::string file = path("py.h5");
  {
    FeatureStoreWriter w(file, n, {{"src32", {cols}, "float32"}, {"half16", {cols}, "float16"}}, identity());
    w.write_rows("src32", 0, n, src.data());
    w.write_rows("half16", 0, n, src.data());
    auto l = make_labels(n);
    w.write_labels(0, n, l.data());
    w.write_paths(0, make_paths(n));
    w.finish();
  }
  std::string cmd = std::string(PETL_PYTHON) + " '" + PETL_TEST_DIR + "/py/test_cache_h5py.py' --file '" + file + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}
#endif

}  // namespace
}  // namespace petl::io

// Tests for harness/tensor_file: safetensors round trips and python interop (files written by a
// hand-rolled python writer, and our files checked by an independent python reader), numpy
// .npy/.npz written by numpy (savez, savez_compressed, format versions, Fortran order), and every
// error path, whose messages must name the file and the offending key.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/tensor_file.h"

namespace petl::io {
namespace {

namespace fs = std::filesystem;

// ----------------------------------------------------------------------------------------------
// Helpers

// A fresh directory per test, removed afterwards.
class TensorFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("petl_tensor_file_" + std::to_string(::getpid()) + "_" + info->name() + "_" + std::to_string(counter++));
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

// Runs tests/io/py/<script> with /usr/bin/python3; returns true on exit status 0.
bool run_python(const std::string& script, const std::vector<std::string>& args) {
  std::string cmd = PETL_PYTHON " '" PETL_TEST_DIR "/io/py/" + script + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  return std::system(cmd.c_str()) == 0;
}

std::vector<uint8_t> read_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}
template <typename T>
T get(const RawTensor& t, int64_t i) {
  T v;
  std::memcpy(&v, t.data.data() + i * sizeof(T), sizeof(T));
  return v;
}

uint16_t float_to_half(float f) {  // exact for the normal / zero values used here
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  if ((x & 0x7FFFFFFF) == 0) return static_cast<uint16_t>(sign);
  const int exp = static_cast<int>((x >> 23) & 0xFF) - 127 + 15;
  return static_cast<uint16_t>(sign | (exp << 10) | ((x >> 13) & 0x3FF));
}
float half_to_float(uint16_t h) {
  const int exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  float v = exp == 0 ? std::ldexp(float(mant), -24) : std::ldexp(float(mant | 0x400), exp - 25);
  return (h & 0x8000) ? -v : v;
}
float bf16_to_float(uint16_t b) {
  const uint32_t x = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// The deterministic contents of tests/io/py/tensor_values.py, element i in C order.
double float_value(int64_t i) { return double(i % 17) * 0.25 - 2.0; }
int64_t int_value(DType d, int64_t i) {
  const int64_t s = i % 200 - 100;
  switch (d) {
    case DType::i64:
      return s * 1000000007000LL;
    case DType::i32:
      return s * 1000003;
    case DType::i16:
      return s * 300;
    case DType::i8:
      return s;
    case DType::u8:
      return i % 251;
    case DType::boolean:
      return i % 3 == 0;
    default:
      return 0;
  }
}

RawTensor make_expected(DType d, std::vector<int64_t> shape) {
  RawTensor t;
  t.dtype = d;
  t.shape = std::move(shape);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double f = float_value(i);
    const int64_t n = int_value(d, i);
    switch (d) {
      case DType::f64:
        put<double>(t.data, f);
        break;
      case DType::f32:
        put<float>(t.data, float(f));
        break;
      case DType::f16:
        put<uint16_t>(t.data, float_to_half(float(f)));
        break;
      case DType::bf16: {
        const float ff = float(f);
        uint32_t x;
        std::memcpy(&x, &ff, 4);
        put<uint16_t>(t.data, uint16_t(x >> 16));
        break;
      }
      case DType::i64:
        put<int64_t>(t.data, n);
        break;
      case DType::i32:
        put<int32_t>(t.data, int32_t(n));
        break;
      case DType::i16:
        put<int16_t>(t.data, int16_t(n));
        break;
      case DType::i8:
        put<int8_t>(t.data, int8_t(n));
        break;
      case DType::u8:
        put<uint8_t>(t.data, uint8_t(n));
        break;
      case DType::boolean:
        put<uint8_t>(t.data, uint8_t(n));
        break;
    }
  }
  return t;
}

// Checks dtype, shape and every value (decoded, not just bytes) against tensor_values.py.
void expect_values(const RawTensor& t, DType d, const std::vector<int64_t>& shape, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(dtype_name(t.dtype), dtype_name(d));
  ASSERT_EQ(t.shape, shape);
  ASSERT_EQ(t.data.size(), size_t(t.numel()) * dtype_size(d));
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (d) {
      case DType::f64:
        ASSERT_EQ(get<double>(t, i), float_value(i)) << i;
        break;
      case DType::f32:
        ASSERT_EQ(get<float>(t, i), float(float_value(i))) << i;
        break;
      case DType::f16:
        ASSERT_EQ(half_to_float(get<uint16_t>(t, i)), float(float_value(i)));
        break;
      case DType::bf16:
        ASSERT_EQ(bf16_to_float(get<uint16_t>(t, i)), float(float_value(i)));
        break;
      case DType::i64:
        ASSERT_EQ(get<int64_t>(t, i), int_value(d, i)) << i;
        break;
      case DType::i32:
        ASSERT_EQ(get<int32_t>(t, i), int_value(d, i)) << i;
        break;
      case DType::i16:
        ASSERT_EQ(get<int16_t>(t, i), int_value(d, i)) << i;
        break;
      case DType::i8:
        ASSERT_EQ(get<int8_t>(t, i), int_value(d, i)) << i;
        break;
      case DType::u8:
        ASSERT_EQ(get<uint8_t>(t, i), int_value(d, i)) << i;
        break;
      case DType::boolean:
        ASSERT_EQ(get<uint8_t>(t, i), int_value(d, i)) << i;
        break;
    }
  }
}

// Expects `fn` to throw petl::Error whose message contains every one of `needles`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const petl::Error& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "message lacks '" << n << "': " << msg;
    return;
  }
  ADD_FAILURE() << "expected petl::Error";
}

// The tensors of tests/io/py/tensor_values.py SAFETENSORS_TABLE.
struct TableEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};
const std::vector<TableEntry>& safetensors_table() {
  static const std::vector<TableEntry> table = {
      {"f64", DType::f64, {4}},
      {"f32", DType::f32, {2, 3}},
      {"f16", DType::f16, {3, 2}},
      {"bf16", DType::bf16, {2, 2, 2}},
      {"i64", DType::i64, {5}},
      {"i32", DType::i32, {2, 3}},
      {"i16", DType::i16, {7}},
      {"i8", DType::i8, {3, 3}},
      {"u8", DType::u8, {10}},
      {"bool", DType::boolean, {2, 5}},
      {"scalar", DType::f32, {}},
      {"empty", DType::f32, {0, 3}},
      {"blocks.0.attn.qkv.weight", DType::f32, {6, 4}},
  };
  return table;
}
const std::map<std::string, std::string> kPyMetadata = {{"format", "pt"}, {"note", "h\xc3\xa9llo \xe2\x9c\x93"}};

// The arrays of tests/io/py/make_npz.py NPZ_TABLE (as C-order results).
const std::vector<TableEntry>& npz_table() {
  static const std::vector<TableEntry> table = {
      {"Transformer/encoderblock_0/LayerNorm_0/scale", DType::f32, {8}},
      {"Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel", DType::f32, {4, 6}},
      {"embedding/kernel", DType::f32, {2, 2, 3, 4}},
      {"f64", DType::f64, {3, 5}},
      {"f16", DType::f16, {4}},
      {"i64", DType::i64, {6}},
      {"i32", DType::i32, {2, 2}},
      {"i16", DType::i16, {3}},
      {"i8", DType::i8, {5}},
      {"u8", DType::u8, {2, 3}},
      {"bool", DType::boolean, {3, 4}},
      {"fortran2d", DType::f32, {3, 4}},
      {"fortran3d", DType::f64, {2, 3, 4}},
      {"scalar", DType::f64, {}},
      {"empty", DType::f32, {0, 5}},
  };
  return table;
}

// A safetensors file from a raw header string and data bytes.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(char((uint64_t(header.size()) >> (8 * i)) & 0xFF));
  return out + header + data;
}

// An .npy file from a raw header dict string (format 1.0) and data bytes.
std::string npy_bytes(const std::string& dict, const std::string& data) {
  std::string header = dict + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(char(header.size() & 0xFF));
  out.push_back(char(header.size() >> 8));
  return out + header + data;
}
RawTensor parse_npy_string(const std::string& bytes, const std::string& name = "test") {
  return parse_npy(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
}

// ----------------------------------------------------------------------------------------------
// dtype basics

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::f64), 8u);
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  EXPECT_EQ(dtype_size(DType::i32), 4u);
  EXPECT_EQ(dtype_size(DType::i16), 2u);
  EXPECT_EQ(dtype_size(DType::i8), 1u);
  EXPECT_EQ(dtype_size(DType::u8), 1u);
  EXPECT_EQ(dtype_size(DType::boolean), 1u);
  EXPECT_EQ(dtype_name(DType::f32), "F32");
  EXPECT_EQ(dtype_name(DType::bf16), "BF16");
  EXPECT_EQ(dtype_name(DType::boolean), "BOOL");
  RawTensor scalar;
  EXPECT_EQ(scalar.numel(), 1);
  scalar.shape = {3, 0, 2};
  EXPECT_EQ(scalar.numel(), 0);
}

// ----------------------------------------------------------------------------------------------
// safetensors

TEST_F(TensorFileTest, SafetensorsRoundTripEveryDtype) {
  TensorMap in;
  for (const TableEntry& e : safetensors_table()) in[e.name] = make_expected(e.dtype, e.shape);
  in["zero_size_i64"] = make_expected(DType::i64, {0});
  in["scalar_bool"] = make_expected(DType::boolean, {});
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "12"}, {"", ""}};
  const std::string p = path("round.safetensors");
  write_safetensors(p, in, meta);
  EXPECT_FALSE(fs::exists(p + ".tmp"));

  const auto bytes = read_bytes(p);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u) << "header must be padded to a multiple of 8";

  std::map<std::string, std::string> meta_out = {{"stale", "x"}};
  TensorMap out = read_safetensors(p, &meta_out);
  EXPECT_EQ(meta_out, meta);
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [name, t] : in) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(out.count(name));
    EXPECT_EQ(out[name].dtype, t.dtype);
    EXPECT_EQ(out[name].shape, t.shape);
    EXPECT_EQ(out[name].data, t.data);
  }
  for (const TableEntry& e : safetensors_table()) expect_values(out[e.name], e.dtype, e.shape, e.name);

  // No metadata: read works with and without the out-parameter; overwriting works.
  write_safetensors(p, {{"a", make_expected(DType::f32, {2})}});
  meta_out = {{"stale", "x"}};
  EXPECT_EQ(read_safetensors(p, &meta_out).size(), 1u);
  EXPECT_TRUE(meta_out.empty());
  write_safetensors(p, {});
  EXPECT_TRUE(read_safetensors(p).empty());
}

TEST_F(TensorFileTest, SafetensorsReadsPythonWrittenFile) {
  const std::string p = path("py.safetensors");
  ASSERT_TRUE(run_python("make_safetensors.py", {p}));
  std::map<std::string, std::string> meta;
  TensorMap t = read_safetensors(p, &meta);
  EXPECT_EQ(meta, kPyMetadata);
  ASSERT_EQ(t.size(), safetensors_table().size());
  for (const TableEntry& e : safetensors_table()) {
    ASSERT_TRUE(t.count(e.name)) << e.name;
    expect_values(t[e.name], e.dtype, e.shape, e.name);
  }
}

TEST_F(TensorFileTest, SafetensorsWrittenFileReadByPython) {
  TensorMap in;
  for (const TableEntry& e : safetensors_table()) in[e.name] = make_expected(e.dtype, e.shape);
  const std::string p = path("ours.safetensors");
  write_safetensors(p, in, kPyMetadata);
  EXPECT_TRUE(run_python("check_safetensors.py", {p}));
}

TEST_F(TensorFileTest, SafetensorsHeaderMayBeSpacePaddedAndUnordered) {
  std::string data;
  for (float f : {1.5f, -2.0f}) data.append(reinterpret_cast<const char*>(&f), 4);
  const std::string header = R"({ "b" : {"shape":[1],"data_offsets":[4,8],"dtype":"F32"}, "a": {"dtype": "F32",)"
                             R"( "shape": [1], "data_offsets": [0, 4]}}       )";
  const std::string p = path("pad.safetensors");
  write_bytes(p, safetensors_bytes(header, data));
  TensorMap t = read_safetensors(p);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(get<float>(t["a"], 0), 1.5f);
  EXPECT_EQ(get<float>(t["b"], 0), -2.0f);
}

TEST_F(TensorFileTest, SafetensorsReadErrors) {
  const std::string p = path("bad.safetensors");
  const std::string f8(8, '\0');
  auto expect_read_error = [&](const std::string& bytes, std::vector<std::string> needles) {
    write_bytes(p, bytes);
    needles.push_back(p);
    expect_error([&] { read_safetensors(p); }, needles);
  };
  expect_error([&] { read_safetensors(path("missing.safetensors")); }, {path("missing.safetensors"), "cannot open"});
  expect_read_error("", {"too small"});
  expect_read_error("abcde", {"too small"});
  expect_read_error(safetensors_bytes("{}", "").substr(0, 7), {"too small"});
  {
    std::string bytes = safetensors_bytes("{}", "");
    bytes[0] = char(0xE8);  // claims a 1000-byte header
    bytes[1] = char(0x03);
    expect_read_error(bytes, {"header size 1000", "exceeds"});
  }
  expect_read_error(safetensors_bytes("{\"w\": {\"dtype\": ", ""), {"not valid JSON"});
  expect_read_error(safetensors_bytes("[1, 2]", ""), {"not an object"});
  expect_read_error(safetensors_bytes(R"({"w": {"dtype": "F8", "shape": [1], "data_offsets": [0, 1]}})", "x"),
                    {"'w'", "unknown dtype 'F8'"});
  expect_read_error(safetensors_bytes(R"({"w": {"shape": [1], "data_offsets": [0, 1]}})", "x"),
                    {"'w'", "missing field 'dtype'"});
  expect_read_error(safetensors_bytes(R"({"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}})", "x"),
                    {"'w'", "non-negative"});
  expect_read_error(safetensors_bytes(R"({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0]}})", "x"),
                    {"'w'", "data_offsets"});
  expect_read_error(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", std::string(8, '\0')),
      {"'w'", "out of range"});
  expect_read_error(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", std::string(8, '\0')),
      {"'w'", "out of range"});
  expect_read_error(
      safetensors_bytes(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", std::string(8, '\0')),
      {"'w'", "needs 12 bytes"});
  expect_read_error(safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                                      R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                      std::string(12, '\0')),
                    {"'a'", "'b'", "overlap"});
  expect_read_error(safetensors_bytes(R"({"__metadata__": {"epoch": 3}})", ""), {"'epoch'", "not a string"});
  expect_read_error(safetensors_bytes(R"({"w": {"dtype": "U8", "shape": [4294967296, 4294967296, 4294967296],)"
                                      R"( "data_offsets": [0, 0]}})",
                                      ""),
                    {"'w'", "too large"});
}

TEST_F(TensorFileTest, SafetensorsTruncatedFile) {
  const std::string p = path("trunc.safetensors");
  write_safetensors(p, {{"weight", make_expected(DType::f32, {16})}});
  const auto full = read_bytes(p);
  std::string bytes(full.begin(), full.end());
  write_bytes(p, bytes.substr(0, bytes.size() - 3));  // lose the end of the data
  expect_error([&] { read_safetensors(p); }, {p, "'weight'", "out of range"});
  write_bytes(p, bytes.substr(0, 20));  // lose the end of the header
  expect_error([&] { read_safetensors(p); }, {p, "exceeds"});
}

TEST_F(TensorFileTest, SafetensorsEmptyTensorsDoNotOverlap) {
  std::string data(4, '\0');
  const std::string header = R"({"e1": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},)"
                             R"( "e2": {"dtype": "I64", "shape": [0, 3], "data_offsets": [0, 0]},)"
                             R"( "x": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}})";
  const std::string p = path("empty.safetensors");
  write_bytes(p, safetensors_bytes(header, data));
  TensorMap t = read_safetensors(p);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t["e2"].shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(t["x"].shape.empty());
}

TEST_F(TensorFileTest, SafetensorsWriteErrors) {
  const std::string p = path("w.safetensors");
  RawTensor bad = make_expected(DType::f32, {3});
  bad.data.pop_back();
  expect_error([&] { write_safetensors(p, {{"layer.weight", bad}}); }, {p, "'layer.weight'", "needs 12"});
  expect_error([&] { write_safetensors(p, {{"__metadata__", make_expected(DType::u8, {1})}}); }, {p, "__metadata__"});
  expect_error([&] { write_safetensors(p, {{"x\xff", make_expected(DType::u8, {1})}}); }, {p, "UTF-8"});
  expect_error([&] { write_safetensors(path("no/such/dir/x.safetensors"), {}); }, {"no/such/dir/x.safetensors"});
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

// ----------------------------------------------------------------------------------------------
// npy

TEST_F(TensorFileTest, NpyFormatVersions) {
  ASSERT_TRUE(run_python("make_npz.py", {dir_.string()}));
  for (const char* v : {"v1.npy", "v2.npy", "v3.npy"}) expect_values(read_npy(path(v)), DType::f32, {3, 4}, v);
  expect_values(read_npy(path("fortran.npy")), DType::i32, {2, 3, 4}, "fortran.npy");
  expect_error([&] { read_npy(path("bigendian.npy")); }, {path("bigendian.npy"), "big-endian", ">f4"});
}

TEST(NpyParseTest, HeaderSpellings) {
  const std::string data(12, '\x01');
  // Odd spacing, key order, double quotes, no trailing comma.
  RawTensor t =
      parse_npy_string(npy_bytes("{ \"shape\" : ( 3 ,  1 ) ,'fortran_order':False,  'descr':'<i4'   }  ", data));
  EXPECT_EQ(t.dtype, DType::i32);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{3, 1}));
  // Python 2 long literals, '=' byte order.
  t = parse_npy_string(npy_bytes("{'descr': '=i2', 'fortran_order': False, 'shape': (2L, 3L), }", data));
  EXPECT_EQ(t.dtype, DType::i16);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  // Scalar, 1-d, zero-size.
  t = parse_npy_string(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", std::string(8, '\0')));
  EXPECT_TRUE(t.shape.empty());
  EXPECT_EQ(t.numel(), 1);
  t = parse_npy_string(npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }", std::string(5, '\0')));
  EXPECT_EQ(t.shape, (std::vector<int64_t>{5}));
  t = parse_npy_string(npy_bytes("{'descr': '<f2', 'fortran_order': True, 'shape': (0, 4), }", ""));
  EXPECT_EQ(t.shape, (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(t.data.empty());
  // Every supported descr.
  const std::vector<std::pair<std::string, DType>> descrs = {
      {"<f8", DType::f64}, {"<f4", DType::f32}, {"<f2", DType::f16}, {"<i8", DType::i64},    {"<i4", DType::i32},
      {"<i2", DType::i16}, {"|i1", DType::i8},  {"|u1", DType::u8},  {"|b1", DType::boolean}};
  for (const auto& [descr, dtype] : descrs) {
    t = parse_npy_string(npy_bytes("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (1,), }",
                                   std::string(dtype_size(dtype), '\0')));
    EXPECT_EQ(t.dtype, dtype) << descr;
  }
}

TEST(NpyParseTest, FortranOrderIsTransposed) {
  // Fortran layout of [[0, 1, 2], [3, 4, 5]] is 0 3 1 4 2 5.
  std::string data;
  for (int32_t v : {0, 3, 1, 4, 2, 5}) data.append(reinterpret_cast<const char*>(&v), 4);
  RawTensor t = parse_npy_string(npy_bytes("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", data));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(get<int32_t>(t, i), i);
}

TEST(NpyParseTest, Errors) {
  const std::string name = "file 'x.npz' member 'blk/w.npy'";
  auto expect_parse_error = [&](const std::string& bytes, std::vector<std::string> needles) {
    needles.push_back(name);
    expect_error([&] { parse_npy_string(bytes, name); }, needles);
  };
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::string ok = npy_bytes(ok_dict, std::string(8, '\0'));
  expect_parse_error("", {"magic"});
  expect_parse_error("\x93NUMPX\x01\x00\x10\x00", {"magic"});
  std::string v4 = ok;
  v4[6] = 4;
  expect_parse_error(v4, {"version 4.0"});
  expect_parse_error(ok.substr(0, 30), {"header length"});
  expect_parse_error(ok.substr(0, ok.size() - 1), {"expected 8 data bytes", "found 7", "truncated"});
  expect_parse_error(ok + "x", {"expected 8 data bytes", "found 9"});
  expect_parse_error(npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", std::string(8, '\0')),
                     {"big-endian", "'>f4'"});
  expect_parse_error(npy_bytes("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", std::string(16, '\0')),
                     {"unsupported dtype", "'<c8'"});
  expect_parse_error(npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", ""),
                     {"unsupported dtype", "'|O'"});
  expect_parse_error(npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", ""),
                     {"structured"});
  expect_parse_error(npy_bytes("{'descr': '<f4', 'fortran_order': False}", ""), {"'shape'"});
  expect_parse_error(npy_bytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", ""), {"fortran_order"});
  expect_parse_error(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", ""), {"non-negative"});
  expect_parse_error(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", ""), {"cannot parse header"});
  expect_parse_error(npy_bytes("{'descr': '<f4' 'fortran_order': False}", ""),
                     {"cannot parse header", "expected ',' or '}'"});
  expect_parse_error(npy_bytes("{'descr': '<f4', 'fortran_order': Fals, 'shape': ()}", ""), {"cannot parse header"});
  expect_parse_error(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': ()} x", ""), {"trailing"});
  expect_parse_error(npy_bytes("(1, 2)", ""), {"not a dict"});
  expect_parse_error(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': "
                               "(99999999999999999999,)}",
                               ""),
                     {"too large"});
}

TEST_F(TensorFileTest, NpyWriteReadAndNumpyLoads) {
  const std::vector<TableEntry> cases = {
      {"f64", DType::f64, {2, 3}}, {"f32", DType::f32, {4}},       {"f16", DType::f16, {2, 2}},
      {"i64", DType::i64, {3}},    {"i32", DType::i32, {1, 2, 3}}, {"i16", DType::i16, {5}},
      {"i8", DType::i8, {4}},      {"u8", DType::u8, {2, 2}},      {"bool", DType::boolean, {7}},
      {"scalar", DType::f32, {}},  {"empty", DType::f64, {0, 2}},
  };
  std::vector<std::string> args;
  for (const TableEntry& e : cases) {
    const std::string p = path(e.name + ".npy");
    write_npy(p, make_expected(e.dtype, e.shape));
    const auto bytes = read_bytes(p);
    EXPECT_EQ((bytes[8] | bytes[9] << 8) % 64, 54) << "header must end on a 64-byte boundary";
    expect_values(read_npy(p), e.dtype, e.shape, e.name);
    std::string shape;
    for (size_t i = 0; i < e.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(e.shape[i]);
    args.push_back(p + ":" + dtype_name(e.dtype) + ":" + shape);
  }
  EXPECT_TRUE(run_python("check_npy.py", args));
  expect_error([&] { write_npy(path("bf16.npy"), make_expected(DType::bf16, {2})); }, {"BF16", "numpy"});
  RawTensor bad = make_expected(DType::f32, {3});
  bad.data.resize(4);
  expect_error([&] { write_npy(path("bad.npy"), bad); }, {path("bad.npy"), "needs 12"});
  expect_error([&] { read_npy(path("missing.npy")); }, {path("missing.npy")});
}

// ----------------------------------------------------------------------------------------------
// npz

TEST_F(TensorFileTest, NpzFromNumpySavezAndSavezCompressed) {
  ASSERT_TRUE(run_python("make_npz.py", {dir_.string()}));
  for (const char* file : {"plain.npz", "compressed.npz"}) {
    SCOPED_TRACE(file);
    TensorMap t = read_npz(path(file));
    ASSERT_EQ(t.size(), npz_table().size());
    for (const TableEntry& e : npz_table()) {
      ASSERT_TRUE(t.count(e.name)) << e.name;
      expect_values(t[e.name], e.dtype, e.shape, e.name);
    }
  }
}

TEST_F(TensorFileTest, NpzErrors) {
  ASSERT_TRUE(run_python("make_npz.py", {dir_.string()}));
  // Not a zip at all.
  const std::string text = path("text.npz");
  write_bytes(text, "hello, this is not a zip archive");
  expect_error([&] { read_npz(text); }, {text, "zip"});
  expect_error([&] { read_npz(path("missing.npz")); }, {path("missing.npz")});
  // A member that is not .npy data.
  expect_error([&] { read_npz(path("bad_member.npz")); }, {path("bad_member.npz"), "'layer/bad.npy'", "magic"});
  // A stored member whose bytes were corrupted: the CRC check must catch it.
  const auto bytes = read_bytes(path("pattern.npz"));
  std::string s(bytes.begin(), bytes.end());
  const size_t at = s.find(std::string(256, '\xAB'));
  ASSERT_NE(at, std::string::npos);
  s[at + 100] = '\xAC';
  const std::string crc = path("crc.npz");
  write_bytes(crc, s);
  expect_error([&] { read_npz(crc); }, {crc, "'pattern.npy'", "CRC"});
  // A truncated archive (central directory lost).
  const auto plain = read_bytes(path("plain.npz"));
  const std::string trunc = path("trunc.npz");
  write_bytes(trunc, std::string(plain.begin(), plain.begin() + plain.size() / 2));
  expect_error([&] { read_npz(trunc); }, {trunc});
}

}  // namespace
}  // namespace petl::io

// Feature caches in HDF5 (layout documented in feature_store.h). HDF5's own error printing is
// replaced by a handler that records the error stack of the failing call (per thread), so every
// H5::Exception becomes a petl::Error naming the file and carrying HDF5's innermost reason; a
// fletcher32 mismatch is reported as a corrupt cache with the dataset and the rows of the chunk.
#include "io/feature_store.h"

#include <H5Cpp.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <set>

#include "core/error.h"
#include "core/hashing.h"

namespace petl::io {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSchema = "petl.feature_cache";
constexpr int64_t kSchemaVersion = 1;
constexpr int64_t kTargetChunkBytes = 2 << 20;  // 2 MiB: within the 1–4 MiB sweet spot
constexpr size_t kConvertBlockBytes = 8 << 20;  // float16 write conversion buffer bound
const std::set<std::string> kReservedAttributes = {"schema", "schema_version", "complete", "n_rows",
                                                   "n_rows_written"};

// ------------------------------------------------------------------------------- HDF5 errors

struct H5ErrorCapture {
  std::string text;       // innermost reason first, then the API call that failed
  bool checksum = false;  // the filter pipeline (fletcher32) failed
};
thread_local H5ErrorCapture g_h5_error;

herr_t walk_error(unsigned n, const H5E_error2_t* e, void* data) {
  auto* entries = static_cast<std::vector<const H5E_error2_t*>*>(data);
  (void)n;
  entries->push_back(e);
  return 0;
}

// Installed as HDF5's automatic error handler: silent, records the stack of the failing call.
herr_t capture_error(hid_t estack, void*) {
  std::vector<const H5E_error2_t*> entries;
  H5Ewalk2(estack, H5E_WALK_DOWNWARD, walk_error, &entries);
  H5ErrorCapture c;
  for (const H5E_error2_t* e : entries) {
    std::string desc = e->desc ? e->desc : "";
    if (e->maj_num == H5E_PLINE || desc.find("Fletcher32") != std::string::npos ||
        desc.find("checksum") != std::string::npos)
      c.checksum = true;
  }
  if (!entries.empty()) {
    const H5E_error2_t* inner = entries.back();
    const H5E_error2_t* outer = entries.front();
    c.text = str_cat(inner->desc ? inner->desc : "?", " (HDF5 ", inner->func_name ? inner->func_name : "?", ")");
    if (outer != inner)
      c.text += str_cat(" in ", outer->func_name ? outer->func_name : "?", ": ", outer->desc ? outer->desc : "?");
  }
  g_h5_error = std::move(c);
  return 0;
}

// Called at every public entry point: this thread's HDF5 errors are captured, never printed
// (the effect of H5::Exception::dontPrint(), plus the recorded reason), and stale text cleared.
void quiet_hdf5() {
  H5::Exception::dontPrint();
  H5Eset_auto2(H5E_DEFAULT, capture_error, nullptr);
  g_h5_error = H5ErrorCapture{};
}

std::string h5_reason(const H5::Exception& e) {
  if (!g_h5_error.text.empty()) return g_h5_error.text;
  std::string s = e.getDetailMsg();
  if (!e.getFuncName().empty()) s += " (" + e.getFuncName() + ")";
  return s;
}

[[noreturn]] void rethrow_h5(const H5::Exception& e, const std::string& context) {
  PETL_FAIL(context, ": ", h5_reason(e));
}

// ------------------------------------------------------------------------------- types

H5::FloatType half_type() {
  H5::FloatType t(H5::PredType::IEEE_F32LE);
  t.setFields(15, 10, 5, 0, 10);
  t.setSize(2);
  t.setEbias(15);
  return t;
}

// Fixed-length (NUL-padded) UTF-8 of the value's length: variable-length strings live in HDF5's
// global heap, the one metadata structure without a checksum (see OpenCache::open).
H5::StrType utf8_fixed_type(size_t bytes) {
  H5::StrType t(H5::PredType::C_S1, std::max<size_t>(1, bytes));
  t.setCset(H5T_CSET_UTF8);
  t.setStrpad(H5T_STR_NULLPAD);
  return t;
}

int64_t choose_chunk_rows(int64_t n_rows, int64_t row_bytes) {
  int64_t rows = std::max<int64_t>(1, kTargetChunkBytes / std::max<int64_t>(1, row_bytes));
  return std::min(rows, n_rows);
}

std::string join_shape(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

void write_string_attribute(H5::H5Object& obj, const std::string& key, const std::string& value) {
  H5::StrType st = utf8_fixed_type(value.size());
  H5::DataSpace scalar(H5S_SCALAR);
  if (obj.attrExists(key)) obj.removeAttr(key);
  obj.createAttribute(key, st, scalar).write(st, value);
}

void write_int_attribute(H5::H5Object& obj, const std::string& key, int64_t value) {
  H5::DataSpace scalar(H5S_SCALAR);
  H5::Attribute a = obj.attrExists(key) ? obj.openAttribute(key)
                                        : obj.createAttribute(key, H5::PredType::STD_I64LE, scalar);
  a.write(H5::PredType::NATIVE_INT64, &value);
}

// A single value as text. Variable-length strings are not read (see OpenCache::open): `problem`
// names the first such attribute.
std::string read_attribute_as_string(const H5::Attribute& a, std::string* problem) {
  H5::DataSpace sp = a.getSpace();
  switch (a.getTypeClass()) {
    case H5T_STRING: {
      if (sp.getSimpleExtentNpoints() != 1) break;
      H5::StrType st = a.getStrType();
      if (st.isVariableStr()) {
        if (problem->empty())
          *problem = "attribute '" + a.getName() +
                     "' is a variable-length string, which petl does not read (HDF5 keeps those in its global "
                     "heap, which has no checksum); write string attributes as fixed-length strings "
                     "(h5py: f.attrs[k] = numpy.bytes_(v))";
        return "<variable-length string>";
      }
      std::string s;
      a.read(st, s);
      while (!s.empty() && s.back() == '\0') s.pop_back();
      return s;
    }
    case H5T_INTEGER:
      if (sp.getSimpleExtentNpoints() == 1) {
        int64_t v = 0;
        a.read(H5::PredType::NATIVE_INT64, &v);
        return std::to_string(v);
      }
      break;
    case H5T_FLOAT:
      if (sp.getSimpleExtentNpoints() == 1) {
        double v = 0;
        a.read(H5::PredType::NATIVE_DOUBLE, &v);
        return str_cat(v);
      }
      break;
    default:
      break;
  }
  return "<unsupported attribute type>";
}

AttributeMap read_all_attributes(const H5::H5Object& obj, std::string* problem) {
  AttributeMap m;
  int n = obj.getNumAttrs();
  for (int i = 0; i < n; ++i) {
    H5::Attribute a = obj.openAttribute(static_cast<unsigned>(i));
    m[a.getName()] = read_attribute_as_string(a, problem);
  }
  return m;
}

// A non-negative decimal integer attribute value (read_attribute_as_string's text of an integer).
bool parse_count(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoll(s);
  return true;
}

// The version of the file's HDF5 superblock, read directly (its signature is at byte 0, 512, 1024,
// 2048, ... after a user block), or -1 when the file has no HDF5 signature.
int superblock_version(const std::string& path) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  std::ifstream is(path, std::ios::binary);
  if (!is) return -1;
  is.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(is.tellg());
  for (uint64_t at = 0; at + 9 <= size; at = at == 0 ? 512 : 2 * at) {
    char buf[9];
    is.seekg(static_cast<std::streamoff>(at));
    if (!is.read(buf, 9)) return -1;
    if (std::memcmp(buf, kSignature, 8) == 0) return static_cast<unsigned char>(buf[8]);
  }
  return -1;
}

// Checks done before HDF5 parses a byte of the file: HDF5 1.10 does not survive corrupt metadata
// (fuzzing crashed and hung it in the global heap, the metadata accumulator and compact-layout
// reads), so petl reads only files whose metadata HDF5 checks before using it: superblock version 3
// (the 1.10 format: superblock, object headers, fixed-array / extensible-array / v2 B-tree chunk
// indexes and fractal heaps all carry checksums). Returns "" or the problem.
std::string format_problem(const std::string& path) {
  const int sb = superblock_version(path);
  if (sb < 0) return "cannot be opened as HDF5: it has no HDF5 signature (not an HDF5 file)";
  if (sb < 3)
    return str_cat("uses HDF5 superblock version ", sb,
                   ", a format whose metadata has no checksums, which petl does not read (caches of older petl "
                   "versions; h5py files written without libver='v110')");
  return "";
}

// File access: HDF5's file locking stays on, but a file system without flock() (some NFS / Lustre
// mounts) is not an error (ignore_when_disabled).
H5::FileAccPropList file_access() {
  H5::FileAccPropList fa;
  H5Pset_file_locking(fa.getId(), true, true);
  return fa;
}

// Writing: the HDF5 1.10 format, whose metadata all carries checksums (see format_problem).
H5::FileAccPropList writer_access() {
  H5::FileAccPropList fa = file_access();
  H5Pset_libver_bounds(fa.getId(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  return fa;
}

H5::DSetAccPropList access_with_cache(int64_t chunk_bytes) {
  // Room for two chunks, so sequential reads / writes in pieces smaller than a chunk hit the cache
  // instead of re-reading (and re-checksumming) the whole chunk each time. Bounded by chunk size.
  H5::DSetAccPropList ap;
  size_t bytes = static_cast<size_t>(std::max<int64_t>(1 << 20, 2 * chunk_bytes + 1024));
  ap.setChunkCache(521, bytes, 1.0);
  return ap;
}

int64_t dataset_chunk_rows(const H5::DataSet& ds, int rank) {
  H5::DSetCreatPropList cp = ds.getCreatePlist();
  if (cp.getLayout() != H5D_CHUNKED) return -1;
  std::vector<hsize_t> c(static_cast<size_t>(rank));
  cp.getChunk(rank, c.data());
  return static_cast<int64_t>(c[0]);
}

// Rows row0 .. row0+count-1 of a dataset: the file selection, and a memory space of the same
// shape (count, row_shape...). The same shape matters: with a flat 1-D memory space HDF5 maps
// the selections element-run by element-run, ~100x slower for large rows.
struct RowSpaces {
  H5::DataSpace file, mem;
};
RowSpaces select_rows(const H5::DataSet& ds, int64_t row0, int64_t count) {
  RowSpaces s;
  s.file = ds.getSpace();
  int rank = s.file.getSimpleExtentNdims();
  std::vector<hsize_t> dims(static_cast<size_t>(rank)), start(static_cast<size_t>(rank), 0);
  s.file.getSimpleExtentDims(dims.data());
  start[0] = static_cast<hsize_t>(row0);
  dims[0] = static_cast<hsize_t>(count);
  s.file.selectHyperslab(H5S_SELECT_SET, dims.data(), start.data());
  s.mem = H5::DataSpace(rank, dims.data());
  return s;
}

bool pid_alive(int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

void fsync_path(const std::string& path, bool directory, const std::string& what) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  PETL_CHECK(fd >= 0, "feature cache ", what, ": cannot open ", path, " to fsync: ", std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  PETL_CHECK(rc == 0, "feature cache ", what, ": fsync of ", path, " failed: ", std::strerror(err));
}

}  // namespace

// ------------------------------------------------------------------------------- float16

int64_t FeatureSpec::row_elements() const {
  return std::accumulate(row_shape.begin(), row_shape.end(), int64_t{1}, std::multiplies<int64_t>());
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // inf or NaN
    if (ax == 0x7F800000u) return sign | 0x7C00u;
    return static_cast<uint16_t>(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));  // quiet NaN, top payload kept
  }
  if (ax >= 0x477FF000u) return sign | 0x7C00u;  // ≥ 65520 (halfway above 65504, ties to even) → inf
  if (ax < 0x38800000u) {                         // below 2^-14: half subnormal or zero
    if (ax < 0x33000000u) return sign;            // ≤ 2^-25 exclusive: rounds to ±0
    const int e = static_cast<int>(ax >> 23) - 127;          // -25 .. -15
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;         // value = m · 2^(e-23)
    const int shift = -e - 1;                                 // units of 2^-24: m >> shift
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t h = (((ax >> 23) - 112u) << 10) | ((ax >> 13) & 0x3FFu);  // rebias 127 → 15
  const uint32_t rem = ax & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry into the exponent is correct
  return static_cast<uint16_t>(sign | h);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -14;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --e;
      }
      bits = sign | (static_cast<uint32_t>(e + 127) << 23) | ((mant & 0x3FFu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

namespace {
const std::vector<float>& half_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t i = 0; i < 65536; ++i) t[i] = half_to_float(static_cast<uint16_t>(i));
    return t;
  }();
  return table;
}
}  // namespace

void floats_to_halves(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = float_to_half(in[i]);
}

void halves_to_floats(const uint16_t* in, float* out, size_t n) {
  const float* t = half_table().data();
  for (size_t i = 0; i < n; ++i) out[i] = t[in[i]];
}

// ------------------------------------------------------------------------------- naming

std::string cache_key(const AttributeMap& identity) {
  PETL_CHECK(!identity.empty(), "cache_key: empty identity (expected backbone_sha256, task, split, ...)");
  std::string lines;
  for (const auto& [k, v] : identity) {
    PETL_CHECK(!k.empty() && k.find_first_of("=\n") == std::string::npos,
               "cache_key: identity key '", k, "' must be non-empty without '=' or newlines");
    PETL_CHECK(v.find('\n') == std::string::npos, "cache_key: value of identity key '", k,
               "' contains a newline");
    lines += k + "=" + v + "\n";
  }
  return sha256_string(lines).substr(0, 16);
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

// The temporary files <final>.tmp.<pid> of writers of this key that died (killed mid-build): the
// next build of the key removes them. (pids are this host's: keep one writer per key per host.)
static void remove_stale_tmp_files_of(const std::string& final_path) {
  const fs::path dir = fs::path(final_path).parent_path().empty() ? fs::path(".") : fs::path(final_path).parent_path();
  const std::string prefix = fs::path(final_path).filename().string() + ".tmp.";
  for (const std::string& t : stale_tmp_files(dir.string())) {
    if (fs::path(t).filename().string().rfind(prefix, 0) != 0) continue;
    std::error_code ec;
    if (fs::remove(t, ec))
      std::fprintf(stderr, "[petl] removed %s: the temporary file of a cache build whose process is gone\n", t.c_str());
  }
}

// ------------------------------------------------------------------------------- writer

namespace {
struct WriteTarget {
  std::string name;          // "features/<name>", "labels" or "paths"
  FeatureSpec spec;          // features only
  bool half = false;
  H5::DataSet ds;
  int64_t chunk_rows = 1;
  std::vector<bool> written;  // per row
  int64_t n_written = 0;

  void mark(int64_t row0, int64_t count) {
    for (int64_t r = row0; r < row0 + count; ++r) {
      if (!written[static_cast<size_t>(r)]) {
        written[static_cast<size_t>(r)] = true;
        ++n_written;
      }
    }
  }
  int64_t first_missing() const {
    auto it = std::find(written.begin(), written.end(), false);
    return it == written.end() ? -1 : static_cast<int64_t>(it - written.begin());
  }
};
}  // namespace

struct FeatureStoreWriter::Impl {
  std::string final_path, tmp_path;
  int64_t n_rows = 0;
  std::unique_ptr<H5::H5File> file;
  std::map<std::string, WriteTarget> features;
  WriteTarget labels, paths;
  // Paths are kept in memory (small) and written at finish() as fixed-length UTF-8 strings as
  // wide as the longest: HDF5 refuses filters (fletcher32) on variable-length strings.
  std::vector<std::string> path_values;
  bool finished = false;
  std::mutex mu;

  WriteTarget& feature(const std::string& name) {
    auto it = features.find(name);
    if (it == features.end()) {
      std::string names;
      for (const auto& [k, v] : features) names += (names.empty() ? "" : ", ") + k;
      PETL_FAIL("feature cache ", tmp_path, ": no feature dataset '", name, "' (declared: ", names, ")");
    }
    return it->second;
  }
  void check_range(const std::string& what, int64_t row0, int64_t count) const {
    PETL_CHECK(row0 >= 0 && count >= 0 && row0 + count <= n_rows, "feature cache ", tmp_path, ": ", what,
               " rows ", row0, "..", row0 + count - 1, " are outside 0..", n_rows - 1);
  }
  void close_all() {
    for (auto& [k, t] : features) t.ds.close();
    labels.ds.close();
    if (file) file->close();
    file.reset();
  }
};

FeatureStoreWriter::FeatureStoreWriter(const std::string& final_path, int64_t n_rows,
                                       const std::vector<FeatureSpec>& specs, const AttributeMap& attributes)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.final_path = final_path;
  m.tmp_path = final_path + ".tmp." + std::to_string(::getpid());
  m.n_rows = n_rows;
  PETL_CHECK(!final_path.empty(), "feature cache: empty output path");
  remove_stale_tmp_files_of(final_path);
  PETL_CHECK(n_rows > 0, "feature cache ", final_path, ": n_rows must be positive, got ", n_rows);
  PETL_CHECK(!specs.empty(), "feature cache ", final_path, ": no feature datasets declared");
  std::set<std::string> seen;
  for (const FeatureSpec& s : specs) {
    PETL_CHECK(!s.name.empty() && s.name.find('/') == std::string::npos && s.name != "." && s.name != "..",
               "feature cache ", final_path, ": feature name '", s.name, "' must be non-empty and contain no '/'");
    PETL_CHECK(seen.insert(s.name).second, "feature cache ", final_path, ": feature '", s.name, "' declared twice");
    PETL_CHECK(s.dtype == "float16" || s.dtype == "float32", "feature cache ", final_path, ": feature '", s.name,
               "' has dtype '", s.dtype, "', expected float16 or float32");
    for (int64_t d : s.row_shape)
      PETL_CHECK(d > 0, "feature cache ", final_path, ": feature '", s.name, "' row shape ", join_shape(s.row_shape),
                 " has a non-positive dimension");
  }
  for (const auto& [k, v] : attributes)
    PETL_CHECK(!kReservedAttributes.count(k) && !k.empty(), "feature cache ", final_path, ": attribute '", k,
               "' is reserved for the file format (schema, schema_version, complete, n_rows, n_rows_written)");

  std::error_code ec;
  fs::path parent = fs::path(final_path).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    PETL_CHECK(!ec, "feature cache ", final_path, ": cannot create directory ", parent.string(), ": ", ec.message());
  }

  quiet_hdf5();
  try {
    m.file = std::make_unique<H5::H5File>(m.tmp_path, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, writer_access());
    H5::H5File& f = *m.file;
    write_string_attribute(f, "schema", kSchema);
    write_int_attribute(f, "schema_version", kSchemaVersion);
    write_int_attribute(f, "complete", 0);
    write_int_attribute(f, "n_rows", n_rows);
    write_int_attribute(f, "n_rows_written", 0);
    for (const auto& [k, v] : attributes) write_string_attribute(f, k, v);

    auto make = [&](WriteTarget& t, const std::string& path, const H5::DataType& type, int64_t elem_bytes,
                    const std::vector<int64_t>& row_shape) {
      std::vector<hsize_t> dims{static_cast<hsize_t>(n_rows)};
      for (int64_t d : row_shape) dims.push_back(static_cast<hsize_t>(d));
      int64_t row_elems = std::accumulate(row_shape.begin(), row_shape.end(), int64_t{1}, std::multiplies<int64_t>());
      t.name = path;
      t.chunk_rows = choose_chunk_rows(n_rows, row_elems * elem_bytes);
      std::vector<hsize_t> chunk = dims;
      chunk[0] = static_cast<hsize_t>(t.chunk_rows);
      H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
      H5::DSetCreatPropList cp;
      cp.setChunk(static_cast<int>(chunk.size()), chunk.data());
      cp.setFletcher32();
      t.ds = f.createDataSet(path, type, space, cp, access_with_cache(t.chunk_rows * row_elems * elem_bytes));
      t.written.assign(static_cast<size_t>(n_rows), false);
    };
    H5::Group g = f.createGroup("features");
    g.close();
    for (const FeatureSpec& s : specs) {
      WriteTarget& t = m.features[s.name];
      t.spec = s;
      t.half = s.dtype == "float16";
      if (t.half)
        make(t, "features/" + s.name, half_type(), 2, s.row_shape);
      else
        make(t, "features/" + s.name, H5::PredType::IEEE_F32LE, 4, s.row_shape);
    }
    make(m.labels, "labels", H5::PredType::STD_I64LE, 8, {});
    m.paths.name = "paths";
    m.paths.written.assign(static_cast<size_t>(n_rows), false);
    m.path_values.resize(static_cast<size_t>(n_rows));
  } catch (const H5::Exception& e) {
    try {
      m.close_all();
    } catch (...) {
    }
    fs::remove(m.tmp_path, ec);
    rethrow_h5(e, "cannot create feature cache " + m.tmp_path);
  }
}

FeatureStoreWriter::~FeatureStoreWriter() {
  if (!impl_ || impl_->finished) return;
  try {
    quiet_hdf5();
    impl_->close_all();
  } catch (...) {
  }
  std::error_code ec;
  fs::remove(impl_->tmp_path, ec);
}

const std::string& FeatureStoreWriter::final_path() const { return impl_->final_path; }
const std::string& FeatureStoreWriter::tmp_path() const { return impl_->tmp_path; }
int64_t FeatureStoreWriter::n_rows() const { return impl_->n_rows; }
int64_t FeatureStoreWriter::chunk_rows(const std::string& name) const {
  if (name == "labels") return impl_->labels.chunk_rows;
  return impl_->feature(name).chunk_rows;
}

void FeatureStoreWriter::write_rows(const std::string& name, int64_t row0, int64_t count, const float* data) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  PETL_CHECK(!m.finished, "feature cache ", m.final_path, ": write_rows after finish()");
  WriteTarget& t = m.feature(name);
  m.check_range("write_rows('" + name + "')", row0, count);
  if (count == 0) return;
  PETL_CHECK(data != nullptr, "feature cache ", m.tmp_path, ": write_rows('", name, "') got a null pointer");
  const int64_t elems = t.spec.row_elements();
  quiet_hdf5();
  try {
    if (!t.half) {
      RowSpaces sel = select_rows(t.ds, row0, count);
      t.ds.write(data, H5::PredType::NATIVE_FLOAT, sel.mem, sel.file);
    } else {
      // Convert in bounded blocks of rows (at least one row) so memory stays small.
      const int64_t block = std::max<int64_t>(1, static_cast<int64_t>(kConvertBlockBytes) / (2 * elems));
      std::vector<uint16_t> buf(static_cast<size_t>(std::min(block, count) * elems));
      H5::FloatType ht = half_type();
      for (int64_t r = 0; r < count; r += block) {
        const int64_t n = std::min(block, count - r);
        floats_to_halves(data + r * elems, buf.data(), static_cast<size_t>(n * elems));
        RowSpaces sel = select_rows(t.ds, row0 + r, n);
        t.ds.write(buf.data(), ht, sel.mem, sel.file);
      }
    }
  } catch (const H5::Exception& e) {
    rethrow_h5(e, str_cat("writing feature cache ", m.tmp_path, " dataset features/", name, " rows ", row0, "..",
                          row0 + count - 1));
  }
  t.mark(row0, count);
}

void FeatureStoreWriter::write_labels(int64_t row0, int64_t count, const int64_t* labels) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  PETL_CHECK(!m.finished, "feature cache ", m.final_path, ": write_labels after finish()");
  m.check_range("write_labels", row0, count);
  if (count == 0) return;
  quiet_hdf5();
  try {
    RowSpaces sel = select_rows(m.labels.ds, row0, count);
    m.labels.ds.write(labels, H5::PredType::NATIVE_INT64, sel.mem, sel.file);
  } catch (const H5::Exception& e) {
    rethrow_h5(e, str_cat("writing feature cache ", m.tmp_path, " dataset labels rows ", row0, "..", row0 + count - 1));
  }
  m.labels.mark(row0, count);
}

void FeatureStoreWriter::write_paths(int64_t row0, const std::vector<std::string>& paths) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  PETL_CHECK(!m.finished, "feature cache ", m.final_path, ": write_paths after finish()");
  const int64_t count = static_cast<int64_t>(paths.size());
  m.check_range("write_paths", row0, count);
  if (count == 0) return;
  for (int64_t i = 0; i < count; ++i) {
    const std::string& p = paths[static_cast<size_t>(i)];
    PETL_CHECK(p.find('\0') == std::string::npos, "feature cache ", m.tmp_path, ": path of row ", row0 + i,
               " contains a NUL byte");
    m.path_values[static_cast<size_t>(row0 + i)] = p;
  }
  m.paths.mark(row0, count);
}

void FeatureStoreWriter::finish() {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  PETL_CHECK(!m.finished, "feature cache ", m.final_path, ": finish() called twice");
  PETL_CHECK(m.file != nullptr, "feature cache ", m.final_path, ": finish() after a failed finish()");
  int64_t written = m.n_rows;
  auto check_complete = [&](const WriteTarget& t) {
    written = std::min(written, t.n_written);
    PETL_CHECK(t.n_written == m.n_rows, "feature cache ", m.tmp_path, ": finish() with dataset ", t.name,
               " written for ", t.n_written, " of ", m.n_rows, " rows (first missing row ", t.first_missing(),
               "); every row of every dataset must be written");
  };
  for (const auto& [k, t] : m.features) check_complete(t);
  check_complete(m.labels);
  check_complete(m.paths);
  quiet_hdf5();
  try {
    size_t width = 1;
    for (const std::string& p : m.path_values) width = std::max(width, p.size());
    H5::StrType st(H5::PredType::C_S1, width);
    st.setCset(H5T_CSET_UTF8);
    st.setStrpad(H5T_STR_NULLPAD);
    hsize_t dims = static_cast<hsize_t>(m.n_rows);
    hsize_t chunk = static_cast<hsize_t>(choose_chunk_rows(m.n_rows, static_cast<int64_t>(width)));
    H5::DSetCreatPropList cp;
    cp.setChunk(1, &chunk);
    cp.setFletcher32();
    H5::DataSet ds = m.file->createDataSet("paths", st, H5::DataSpace(1, &dims), cp);
    std::vector<char> buf;
    for (int64_t r0 = 0; r0 < m.n_rows; r0 += static_cast<int64_t>(chunk)) {  // bounded buffer: one chunk
      const int64_t n = std::min(static_cast<int64_t>(chunk), m.n_rows - r0);
      buf.assign(static_cast<size_t>(n) * width, '\0');
      for (int64_t i = 0; i < n; ++i) {
        const std::string& p = m.path_values[static_cast<size_t>(r0 + i)];
        std::memcpy(buf.data() + static_cast<size_t>(i) * width, p.data(), p.size());
      }
      RowSpaces sel = select_rows(ds, r0, n);
      ds.write(buf.data(), st, sel.mem, sel.file);
    }
    ds.close();
    m.path_values.clear();
    m.path_values.shrink_to_fit();
    write_int_attribute(*m.file, "n_rows_written", written);
    write_int_attribute(*m.file, "complete", 1);
    m.file->flush(H5F_SCOPE_GLOBAL);
    m.close_all();
  } catch (const H5::Exception& e) {
    try {
      m.close_all();
    } catch (...) {
    }
    rethrow_h5(e, "finishing feature cache " + m.tmp_path);
  }
  fsync_path(m.tmp_path, false, m.final_path);
  std::error_code ec;
  fs::rename(m.tmp_path, m.final_path, ec);
  PETL_CHECK(!ec, "feature cache ", m.final_path, ": cannot rename ", m.tmp_path, " onto it: ", ec.message());
  m.finished = true;
  fs::path parent = fs::path(m.final_path).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), true, m.final_path);
}

// ------------------------------------------------------------------------------- reading

namespace {

struct ReadTarget {
  std::string name;  // full HDF5 path
  H5::DataSet ds;
  int rank = 1;
  int64_t row_elems = 1;
  int64_t chunk_rows = -1;  // -1: not chunked
  bool half = false;
};

// An opened, validated cache: what the reader and verify() share.
struct OpenCache {
  std::string path;
  std::unique_ptr<H5::H5File> file;
  AttributeMap attributes;
  int64_t n_rows = 0;
  std::vector<FeatureSpec> specs;
  std::map<std::string, ReadTarget> features;
  ReadTarget labels, paths;
  size_t paths_fixed_size = 0;
  H5::StrType paths_type;  // the file's string type, used as memory type (no cset conversion)

  [[noreturn]] void fail(const std::string& what) const { PETL_FAIL("feature cache ", path, " ", what); }

  int64_t file_bytes = 0;

  // Every dataset is chunked with a checksummed chunk index (not the v1 B-tree of older formats),
  // has every chunk written, and fits in the file: its size is checked against the file's before
  // a caller allocates n_rows × row bytes for it.
  void check_storage(const ReadTarget& t) {
    if (t.chunk_rows < 1)
      fail("dataset " + t.name +
           " is not chunked (petl writes chunked datasets only); delete it or let petl rebuild it");
    H5D_chunk_index_t index{};
    if (H5Dget_chunk_index_type(t.ds.getId(), &index) < 0 || index == H5D_CHUNK_IDX_BTREE)
      fail("dataset " + t.name + " has a chunk index without checksums (v1 B-tree); delete it or let petl rebuild it");
    const uint64_t elem = t.ds.getDataType().getSize();
    uint64_t logical = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(n_rows), static_cast<uint64_t>(t.row_elems), &logical) ||
        __builtin_mul_overflow(logical, elem, &logical))
      logical = UINT64_MAX;
    // Compression (not written by petl) may shrink data up to deflate's 1032:1.
    H5::DSetCreatPropList cp = t.ds.getCreatePlist();
    bool compressed = false;
    for (int i = 0; i < cp.getNfilters(); ++i) {
      unsigned flags = 0, config = 0;
      size_t nelmts = 0;
      char name[64];
      const H5Z_filter_t f = cp.getFilter(i, flags, nelmts, nullptr, sizeof name, name, config);
      if (f != H5Z_FILTER_FLETCHER32 && f != H5Z_FILTER_SHUFFLE) compressed = true;
    }
    const uint64_t stored = t.ds.getStorageSize();
    const uint64_t ratio = compressed ? 1032 : 1;
    if (stored > static_cast<uint64_t>(file_bytes) || (logical + ratio - 1) / ratio > stored)
      fail(str_cat("dataset ", t.name, " holds ", logical, " bytes (", n_rows, " rows) but only ", stored,
                   " bytes of it are stored, in a ", file_bytes,
                   "-byte file: unwritten chunks or a damaged header; delete it or let petl rebuild it"));
  }

  void open(const std::string& p, const AttributeMap& expected) {
    path = p;
    std::error_code ec;
    if (!fs::exists(p, ec)) fail("does not exist");
    if (!fs::is_regular_file(p, ec)) fail("is not a regular file");
    file_bytes = static_cast<int64_t>(fs::file_size(p, ec));
    if (const std::string problem = format_problem(p); !problem.empty())
      fail(problem + "; delete it or let petl rebuild it");
    quiet_hdf5();
    try {
      file = std::make_unique<H5::H5File>(p, H5F_ACC_RDONLY, H5::FileCreatPropList::DEFAULT, file_access());
    } catch (const H5::Exception& e) {
      fail("cannot be opened as HDF5 (not an HDF5 file, truncated, or still being written): " + h5_reason(e) +
           "; delete it or let petl rebuild it");
    }
    try {
      std::string attribute_problem;
      attributes = read_all_attributes(*file, &attribute_problem);
      if (!attribute_problem.empty()) fail("has an " + attribute_problem + "; delete it or let petl rebuild it");
      auto attr = [&](const std::string& k) -> const std::string* {
        auto it = attributes.find(k);
        return it == attributes.end() ? nullptr : &it->second;
      };
      const std::string* schema = attr("schema");
      if (!schema) fail(str_cat("has no 'schema' attribute: not a petl feature cache (expected schema '", kSchema, "')"));
      if (*schema != kSchema) fail(str_cat("has schema '", *schema, "', expected '", kSchema, "'"));
      const std::string* version = attr("schema_version");
      if (!version || *version != std::to_string(kSchemaVersion))
        fail(str_cat("has schema_version ", version ? *version : "<missing>", ", this petl reads version ",
                     kSchemaVersion, "; delete it or let petl rebuild it"));
      const std::string* complete = attr("complete");
      if (!complete || *complete != "1")
        fail(str_cat("is incomplete (complete = ", complete ? *complete : "<missing>",
                     ", expected 1: its writer did not finish); delete it or let petl rebuild it"));
      const std::string* n = attr("n_rows");
      if (!n) fail("has no 'n_rows' attribute");
      if (!parse_count(*n, &n_rows)) fail(str_cat("has n_rows = ", *n, ", expected a non-negative integer"));
      const std::string* nw = attr("n_rows_written");
      if (!nw || *nw != *n)
        fail(str_cat("has n_rows_written = ", nw ? *nw : "<missing>", " but n_rows = ", *n,
                     "; delete it or let petl rebuild it"));
      for (const auto& [k, v] : expected) {
        const std::string* found = attr(k);
        if (!found)
          fail(str_cat("has no attribute '", k, "' (expected '", v, "'): built by another petl? delete it or let petl rebuild it"));
        if (*found != v)
          fail(str_cat("was built for another configuration: attribute '", k, "' is '", *found, "', expected '", v,
                       "'; delete it or let petl rebuild it"));
      }

      auto open_target = [&](ReadTarget& t, const std::string& name) {
        if (!file->nameExists(name)) fail("has no dataset '" + name + "'");
        t.name = name;
        t.ds = file->openDataSet(name);
        H5::DataSpace sp = t.ds.getSpace();
        t.rank = sp.getSimpleExtentNdims();
        std::vector<hsize_t> dims(static_cast<size_t>(std::max(t.rank, 1)));
        sp.getSimpleExtentDims(dims.data());
        if (t.rank < 1 || static_cast<int64_t>(dims[0]) != n_rows)
          fail(str_cat("dataset ", name, " has ", t.rank < 1 ? 0 : dims[0], " rows, expected n_rows = ", n_rows));
        t.row_elems = 1;
        for (int i = 1; i < t.rank; ++i)
          if (__builtin_mul_overflow(t.row_elems, static_cast<int64_t>(dims[static_cast<size_t>(i)]), &t.row_elems))
            fail("dataset " + name + " has a row shape too large to address");
        t.chunk_rows = dataset_chunk_rows(t.ds, t.rank);
        check_storage(t);
        return dims;
      };
      open_target(labels, "labels");
      if (labels.rank != 1 || labels.ds.getTypeClass() != H5T_INTEGER)
        fail("dataset labels must be integer (N,), got rank " + std::to_string(labels.rank));
      open_target(paths, "paths");
      if (paths.rank != 1 || paths.ds.getTypeClass() != H5T_STRING)
        fail("dataset paths must be strings (N,), got rank " + std::to_string(paths.rank));
      {
        H5::StrType st = paths.ds.getStrType();
        paths_type.copy(st);
        paths_fixed_size = st.getSize();
        if (st.isVariableStr())  // their bytes live in the unchecksummed global heap (see format_problem)
          fail(
              "dataset paths holds variable-length strings, which petl does not read: expected fixed-length UTF-8 "
              "(h5py: dtype=h5py.string_dtype('utf-8', length)); delete it or let petl rebuild it");
      }
      if (!file->nameExists("features")) fail("has no group 'features'");
      H5::Group g = file->openGroup("features");
      const hsize_t nobj = g.getNumObjs();
      for (hsize_t i = 0; i < nobj; ++i) {
        const std::string name = g.getObjnameByIdx(i);
        if (g.childObjType(name) != H5O_TYPE_DATASET) continue;
        ReadTarget t;
        std::vector<hsize_t> dims = open_target(t, "features/" + name);
        if (t.ds.getTypeClass() != H5T_FLOAT) fail("dataset features/" + name + " is not floating point");
        size_t size = t.ds.getFloatType().getSize();
        if (size != 2 && size != 4)
          fail(str_cat("dataset features/", name, " has ", size * 8, "-bit floats, expected float16 or float32"));
        t.half = size == 2;
        FeatureSpec s{name, {}, t.half ? "float16" : "float32"};
        for (int d = 1; d < t.rank; ++d) s.row_shape.push_back(static_cast<int64_t>(dims[static_cast<size_t>(d)]));
        if (t.chunk_rows > 0) {
          // Reopen with a chunk cache sized to the chunks (sequential partial reads hit it).
          t.ds.close();
          t.ds = file->openDataSet(t.name, access_with_cache(t.chunk_rows * t.row_elems * static_cast<int64_t>(size)));
        }
        specs.push_back(s);
        features.emplace(name, std::move(t));
      }
      if (specs.empty()) fail("has no feature datasets under /features");
    } catch (const H5::Exception& e) {
      fail("could not be read: " + h5_reason(e) + "; delete it or let petl rebuild it");
    }
  }

  ReadTarget& feature(const std::string& name) {
    auto it = features.find(name);
    if (it == features.end()) {
      std::string names;
      for (const auto& s : specs) names += (names.empty() ? "" : ", ") + s.name;
      fail("has no feature '" + name + "' (present: " + names + ")");
    }
    return it->second;
  }

  void check_range(const std::string& what, int64_t row0, int64_t count) const {
    if (!(row0 >= 0 && count >= 0 && row0 + count <= n_rows))
      fail(str_cat(what, ": rows ", row0, "..", row0 + count - 1, " are outside 0..", n_rows - 1));
  }

  // Raw read of rows into buf with the given memory type (no conversion beyond HDF5's own).
  void raw_read(const ReadTarget& t, int64_t row0, int64_t count, void* buf, const H5::DataType& mem) {
    RowSpaces sel = select_rows(t.ds, row0, count);
    t.ds.read(buf, mem, sel.mem, sel.file);
  }

  // After a failed read: narrows the failure to the first bad chunk and throws the user message.
  [[noreturn]] void read_failed(const ReadTarget& t, int64_t row0, int64_t count, const H5::Exception& e,
                                const H5::DataType& mem, size_t elem_size) {
    std::string reason = h5_reason(e);
    bool checksum = g_h5_error.checksum;
    int64_t bad0 = row0, bad1 = row0 + count - 1;
    if (t.chunk_rows > 0) {
      int64_t c0 = row0 / t.chunk_rows * t.chunk_rows;
      std::vector<uint8_t> scratch;
      for (int64_t c = c0; c < row0 + count; c += t.chunk_rows) {
        int64_t n = std::min(t.chunk_rows, n_rows - c);
        scratch.resize(static_cast<size_t>(n * t.row_elems) * elem_size);
        quiet_hdf5();
        try {
          raw_read(t, c, n, scratch.data(), mem);
        } catch (const H5::Exception& e2) {
          bad0 = c;
          bad1 = c + n - 1;
          reason = h5_reason(e2);
          checksum = g_h5_error.checksum;
          break;
        }
      }
    }
    if (checksum)
      PETL_FAIL("feature cache ", path, " is corrupt (checksum error in dataset ", t.name, " rows ", bad0, "..", bad1,
                "): delete it or let petl rebuild it");
    PETL_FAIL("feature cache ", path, ": reading dataset ", t.name, " rows ", bad0, "..", bad1, " failed: ", reason,
              "; delete it or let petl rebuild it");
  }
};

}  // namespace

struct FeatureStoreReader::Impl {
  OpenCache c;
  std::mutex mu;
};

FeatureStoreReader::FeatureStoreReader(const std::string& path, const AttributeMap& expected)
    : impl_(std::make_unique<Impl>()) {
  impl_->c.open(path, expected);
}
FeatureStoreReader::~FeatureStoreReader() {
  if (!impl_) return;
  try {
    quiet_hdf5();
    impl_.reset();
  } catch (...) {
  }
}
FeatureStoreReader::FeatureStoreReader(FeatureStoreReader&&) noexcept = default;
FeatureStoreReader& FeatureStoreReader::operator=(FeatureStoreReader&&) noexcept = default;

const std::string& FeatureStoreReader::path() const { return impl_->c.path; }
int64_t FeatureStoreReader::n_rows() const { return impl_->c.n_rows; }
const std::vector<FeatureSpec>& FeatureStoreReader::specs() const { return impl_->c.specs; }
bool FeatureStoreReader::has(const std::string& name) const { return impl_->c.features.count(name) > 0; }
const FeatureSpec& FeatureStoreReader::spec(const std::string& name) const {
  impl_->c.feature(name);  // throws with the names present
  for (const FeatureSpec& s : impl_->c.specs)
    if (s.name == name) return s;
  PETL_FAIL("feature cache ", impl_->c.path, " has no feature '", name, "'");
}
const AttributeMap& FeatureStoreReader::attributes() const { return impl_->c.attributes; }
int64_t FeatureStoreReader::chunk_rows(const std::string& name) const {
  if (name == "labels") return impl_->c.labels.chunk_rows;
  if (name == "paths") return impl_->c.paths.chunk_rows;
  return impl_->c.feature(name).chunk_rows;
}

void FeatureStoreReader::read_rows(const std::string& name, int64_t row0, int64_t count, float* out) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  OpenCache& c = impl_->c;
  ReadTarget& t = c.feature(name);
  c.check_range("read_rows('" + name + "')", row0, count);
  if (count == 0) return;
  const size_t n = static_cast<size_t>(count * t.row_elems);
  quiet_hdf5();
  if (!t.half) {
    try {
      c.raw_read(t, row0, count, out, H5::PredType::NATIVE_FLOAT);
    } catch (const H5::Exception& e) {
      c.read_failed(t, row0, count, e, H5::PredType::NATIVE_FLOAT, 4);
    }
    return;
  }
  // float16: read the halves into the back half of `out` and widen front to back in place (the
  // float written at i only overwrites halves at indices <= i, already consumed), so no extra
  // buffer is needed however large the read.
  auto* bytes = reinterpret_cast<unsigned char*>(out);
  unsigned char* halves = bytes + 2 * n;
  H5::FloatType ht = half_type();
  try {
    c.raw_read(t, row0, count, halves, ht);
  } catch (const H5::Exception& e) {
    c.read_failed(t, row0, count, e, ht, 2);
  }
  const float* table = half_table().data();
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, halves + 2 * i, 2);
    std::memcpy(bytes + 4 * i, &table[h], 4);
  }
}

void FeatureStoreReader::read_labels(int64_t row0, int64_t count, int64_t* out) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  OpenCache& c = impl_->c;
  c.check_range("read_labels", row0, count);
  if (count == 0) return;
  quiet_hdf5();
  try {
    c.raw_read(c.labels, row0, count, out, H5::PredType::NATIVE_INT64);
  } catch (const H5::Exception& e) {
    c.read_failed(c.labels, row0, count, e, H5::PredType::NATIVE_INT64, 8);
  }
}

namespace {
std::vector<std::string> read_path_rows(OpenCache& c, int64_t row0, int64_t count) {
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(count));
  const H5::StrType& st = c.paths_type;  // fixed-length (open() refuses variable-length paths)
  std::vector<char> buf(static_cast<size_t>(count) * c.paths_fixed_size);
  try {
    c.raw_read(c.paths, row0, count, buf.data(), st);
  } catch (const H5::Exception& e) {
    c.read_failed(c.paths, row0, count, e, st, c.paths_fixed_size);
  }
  for (int64_t i = 0; i < count; ++i) {
    const char* s = buf.data() + static_cast<size_t>(i) * c.paths_fixed_size;
    out.emplace_back(s, strnlen(s, c.paths_fixed_size));
  }
  return out;
}
}  // namespace

std::vector<std::string> FeatureStoreReader::read_paths(int64_t row0, int64_t count) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  OpenCache& c = impl_->c;
  c.check_range("read_paths", row0, count);
  if (count == 0) return {};
  quiet_hdf5();
  return read_path_rows(c, row0, count);
}

// ------------------------------------------------------------------------------- verify / list

VerifyResult verify(const std::string& path, const std::function<void(double)>& progress) {
  VerifyResult r;
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  r.bytes = ec ? 0 : static_cast<uint64_t>(size);
  try {
    OpenCache c;
    c.open(path, {});
    r.rows = c.n_rows;
    // Work in logical bytes so progress is proportional to the data read.
    std::vector<ReadTarget*> targets{&c.labels, &c.paths};
    for (auto& [k, t] : c.features) targets.push_back(&t);
    double total = 0, done = 0;
    for (ReadTarget* t : targets) total += static_cast<double>(c.n_rows * t->row_elems);
    H5::FloatType ht = half_type();
    std::vector<uint8_t> buf;
    for (ReadTarget* t : targets) {
      const int64_t step = t->chunk_rows > 0
                               ? t->chunk_rows
                               : std::max<int64_t>(1, (4 << 20) / (4 * std::max<int64_t>(1, t->row_elems)));
      for (int64_t r0 = 0; r0 < c.n_rows; r0 += step) {
        const int64_t n = std::min(step, c.n_rows - r0);
        if (t == &c.paths) {
          read_path_rows(c, r0, n);
        } else if (t == &c.labels) {
          buf.resize(static_cast<size_t>(n) * 8);
          try {
            c.raw_read(*t, r0, n, buf.data(), H5::PredType::NATIVE_INT64);
          } catch (const H5::Exception& e) {
            c.read_failed(*t, r0, n, e, H5::PredType::NATIVE_INT64, 8);
          }
        } else {
          const size_t es = t->half ? 2 : 4;
          const H5::DataType& mem = t->half ? static_cast<const H5::DataType&>(ht)
                                            : static_cast<const H5::DataType&>(H5::PredType::NATIVE_FLOAT);
          buf.resize(static_cast<size_t>(n * t->row_elems) * es);
          try {
            c.raw_read(*t, r0, n, buf.data(), mem);
          } catch (const H5::Exception& e) {
            c.read_failed(*t, r0, n, e, mem, es);
          }
        }
        done += static_cast<double>(n * t->row_elems);
        if (progress) progress(total > 0 ? done / total : 1.0);
      }
    }
    r.ok = true;
    char mib[32];
    std::snprintf(mib, sizeof mib, "%.1f", static_cast<double>(r.bytes) / (1 << 20));
    r.message = str_cat("ok: ", path, ": ", c.n_rows, " rows, ", c.specs.size(), " feature dataset(s), ", mib, " MiB");
  } catch (const petl::Error& e) {
    r.ok = false;
    r.message = e.what();
  } catch (const H5::Exception& e) {
    r.ok = false;
    r.message = str_cat("feature cache ", path, " could not be read: ", h5_reason(e));
  } catch (const std::exception& e) {
    r.ok = false;
    r.message = str_cat("feature cache ", path, ": ", e.what());
  }
  return r;
}

std::vector<CacheEntry> list_caches(const std::string& root) {
  std::error_code ec;
  PETL_CHECK(fs::is_directory(root, ec), "cache root ", root, " is not a directory");
  std::vector<CacheEntry> out;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    if (!e.is_regular_file(ec) || e.path().extension() != ".h5") continue;
    CacheEntry c;
    c.path = e.path().string();
    c.key = e.path().stem().string();
    c.size_bytes = static_cast<uint64_t>(e.file_size(ec));
    quiet_hdf5();
    try {
      if (const std::string problem = format_problem(c.path); !problem.empty()) {
        c.error = problem;
        out.push_back(std::move(c));
        continue;
      }
      H5::H5File f(c.path, H5F_ACC_RDONLY, H5::FileCreatPropList::DEFAULT, file_access());
      std::string attribute_problem;
      c.attributes = read_all_attributes(f, &attribute_problem);
      if (!attribute_problem.empty()) c.error = "has an " + attribute_problem;
      auto get = [&](const char* k) {
        auto it = c.attributes.find(k);
        return it == c.attributes.end() ? std::string() : it->second;
      };
      if (c.error.empty() && get("schema") != kSchema)
        c.error = "not a petl feature cache (schema '" + get("schema") + "')";
      c.complete = c.error.empty() && get("complete") == "1";
      parse_count(get("n_rows"), &c.rows);
    } catch (const H5::Exception& ex) {
      c.error = "cannot be opened as HDF5: " + h5_reason(ex);
    } catch (const std::exception& ex) {
      c.error = ex.what();
    }
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const CacheEntry& a, const CacheEntry& b) { return a.path < b.path; });
  return out;
}

}  // namespace petl::io

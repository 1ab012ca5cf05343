// HDF5 helpers of the feature store (declared in io/hdf5_util.h): the error handler that records
// the failing call's error stack per thread, types, attributes, format checks, access lists.
#include "io/hdf5_util.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace petl::io::h5 {

namespace {

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

}  // namespace

// ------------------------------------------------------------------------------- errors

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

bool last_error_is_checksum() { return g_h5_error.checksum; }

// ------------------------------------------------------------------------------- types

H5::FloatType half_type() {
  H5::FloatType t(H5::PredType::IEEE_F32LE);
  t.setFields(15, 10, 5, 0, 10);
  t.setSize(2);
  t.setEbias(15);
  return t;
}

H5::StrType utf8_fixed_type(size_t bytes) {
  H5::StrType t(H5::PredType::C_S1, std::max<size_t>(1, bytes));
  t.setCset(H5T_CSET_UTF8);
  t.setStrpad(H5T_STR_NULLPAD);
  return t;
}

// ------------------------------------------------------------------------------- attributes

void write_string_attribute(H5::H5Object& obj, const std::string& key, const std::string& value) {
  H5::StrType st = utf8_fixed_type(value.size());
  H5::DataSpace scalar(H5S_SCALAR);
  if (obj.attrExists(key)) obj.removeAttr(key);
  obj.createAttribute(key, st, scalar).write(st, value);
}

void write_int_attribute(H5::H5Object& obj, const std::string& key, int64_t value) {
  H5::DataSpace scalar(H5S_SCALAR);
  H5::Attribute a =
      obj.attrExists(key) ? obj.openAttribute(key) : obj.createAttribute(key, H5::PredType::STD_I64LE, scalar);
  a.write(H5::PredType::NATIVE_INT64, &value);
}

std::map<std::string, std::string> read_all_attributes(const H5::H5Object& obj, std::string* problem) {
  std::map<std::string, std::string> m;
  int n = obj.getNumAttrs();
  for (int i = 0; i < n; ++i) {
    H5::Attribute a = obj.openAttribute(static_cast<unsigned>(i));
    m[a.getName()] = read_attribute_as_string(a, problem);
  }
  return m;
}

// ------------------------------------------------------------------------------- files

std::string format_problem(const std::string& path) {
  const int sb = superblock_version(path);
  if (sb < 0) return "cannot be opened as HDF5: it has no HDF5 signature (not an HDF5 file)";
  if (sb < 3)
    return str_cat("uses HDF5 superblock version ", sb,
                   ", a format whose metadata has no checksums, which petl does not read (caches of older petl "
                   "versions; h5py files written without libver='v110')");
  return "";
}

H5::FileAccPropList file_access() {
  H5::FileAccPropList fa;
  H5Pset_file_locking(fa.getId(), true, true);
  return fa;
}

H5::FileAccPropList writer_access() {
  H5::FileAccPropList fa = file_access();
  H5Pset_libver_bounds(fa.getId(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  return fa;
}

// ------------------------------------------------------------------------------- datasets

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

}  // namespace petl::io::h5

// OpenCache (io/feature_store_open.h): opening a cache refuses every file HDF5 cannot check before
// parsing it, validates schema, attributes and datasets, and reports a fletcher32 mismatch as a
// corrupt cache with the dataset and the rows of the chunk.
#include "io/feature_store_open.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "io/feature_store_internal.h"
#include "io/hdf5_util.h"

namespace petl::io::internal {

namespace fs = std::filesystem;

void OpenCache::open(const std::string& p, const AttributeMap& expected) {
  path = p;
  std::error_code ec;
  if (!fs::exists(p, ec)) fail("does not exist");
  if (!fs::is_regular_file(p, ec)) fail("is not a regular file");
  file_bytes = static_cast<int64_t>(fs::file_size(p, ec));
  if (const std::string problem = h5::format_problem(p); !problem.empty())
    fail(problem + "; delete it or let petl rebuild it");
  h5::quiet_hdf5();
  try {
    file = std::make_unique<H5::H5File>(p, H5F_ACC_RDONLY, H5::FileCreatPropList::DEFAULT, h5::file_access());
  } catch (const H5::Exception& e) {
    fail("cannot be opened as HDF5 (not an HDF5 file, truncated, or still being written): " + h5::h5_reason(e) +
         "; delete it or let petl rebuild it");
  }
  try {
    std::string attribute_problem;
    attributes = h5::read_all_attributes(*file, &attribute_problem);
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
        fail(str_cat("has no attribute '", k, "' (expected '", v,
                     "'): built by another petl? delete it or let petl rebuild it"));
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
      t.chunk_rows = h5::dataset_chunk_rows(t.ds, t.rank);
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
      if (st.isVariableStr())  // their bytes live in the unchecksummed global heap (see h5::format_problem)
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
        t.ds =
            file->openDataSet(t.name, h5::access_with_cache(t.chunk_rows * t.row_elems * static_cast<int64_t>(size)));
      }
      specs.push_back(s);
      features.emplace(name, std::move(t));
    }
    if (specs.empty()) fail("has no feature datasets under /features");
  } catch (const H5::Exception& e) {
    fail("could not be read: " + h5::h5_reason(e) + "; delete it or let petl rebuild it");
  }
}

void OpenCache::check_storage(const ReadTarget& t) {
  if (t.chunk_rows < 1)
    fail("dataset " + t.name + " is not chunked (petl writes chunked datasets only); delete it or let petl rebuild it");
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

ReadTarget& OpenCache::feature(const std::string& name) {
  auto it = features.find(name);
  if (it == features.end()) {
    std::string names;
    for (const auto& s : specs) names += (names.empty() ? "" : ", ") + s.name;
    fail("has no feature '" + name + "' (present: " + names + ")");
  }
  return it->second;
}

void OpenCache::check_range(const std::string& what, int64_t row0, int64_t count) const {
  if (!(row0 >= 0 && count >= 0 && row0 + count <= n_rows))
    fail(str_cat(what, ": rows ", row0, "..", row0 + count - 1, " are outside 0..", n_rows - 1));
}

void OpenCache::raw_read(const ReadTarget& t, int64_t row0, int64_t count, void* buf, const H5::DataType& mem) {
  h5::RowSpaces sel = h5::select_rows(t.ds, row0, count);
  t.ds.read(buf, mem, sel.mem, sel.file);
}

void OpenCache::read_failed(const ReadTarget& t, int64_t row0, int64_t count, const H5::Exception& e,
                            const H5::DataType& mem, size_t elem_size) {
  std::string reason = h5::h5_reason(e);
  bool checksum = h5::last_error_is_checksum();
  int64_t bad0 = row0, bad1 = row0 + count - 1;
  if (t.chunk_rows > 0) {
    int64_t c0 = row0 / t.chunk_rows * t.chunk_rows;
    std::vector<uint8_t> scratch;
    for (int64_t c = c0; c < row0 + count; c += t.chunk_rows) {
      int64_t n = std::min(t.chunk_rows, n_rows - c);
      scratch.resize(static_cast<size_t>(n * t.row_elems) * elem_size);
      h5::quiet_hdf5();
      try {
        raw_read(t, c, n, scratch.data(), mem);
      } catch (const H5::Exception& e2) {
        bad0 = c;
        bad1 = c + n - 1;
        reason = h5::h5_reason(e2);
        checksum = h5::last_error_is_checksum();
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

}  // namespace petl::io::internal

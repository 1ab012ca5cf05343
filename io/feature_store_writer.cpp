// FeatureStoreWriter: a cache written to "<path>.tmp.<pid>" in any row order, checked complete,
// then fsync'ed and renamed onto <path> by finish().
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <set>

#include "core/error.h"
#include "io/feature_store.h"
#include "io/feature_store_internal.h"
#include "io/hdf5_util.h"

namespace petl::io {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kTargetChunkBytes = 2 << 20;  // 2 MiB: within the 1–4 MiB sweet spot
constexpr size_t kConvertBlockBytes = 8 << 20;  // float16 write conversion buffer bound
const std::set<std::string> kReservedAttributes = {"schema", "schema_version", "complete", "n_rows", "n_rows_written"};

int64_t choose_chunk_rows(int64_t n_rows, int64_t row_bytes) {
  int64_t rows = std::max<int64_t>(1, kTargetChunkBytes / std::max<int64_t>(1, row_bytes));
  return std::min(rows, n_rows);
}

std::string join_shape(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

void fsync_path(const std::string& path, bool directory, const std::string& what) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  PETL_CHECK(fd >= 0, "feature cache ", what, ": cannot open ", path, " to fsync: ", std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  PETL_CHECK(rc == 0, "feature cache ", what, ": fsync of ", path, " failed: ", std::strerror(err));
}

struct WriteTarget {
  std::string name;  // "features/<name>", "labels" or "paths"
  FeatureSpec spec;  // features only
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

int64_t FeatureSpec::row_elements() const {
  return std::accumulate(row_shape.begin(), row_shape.end(), int64_t{1}, std::multiplies<int64_t>());
}

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
    PETL_CHECK(row0 >= 0 && count >= 0 && row0 + count <= n_rows, "feature cache ", tmp_path, ": ", what, " rows ",
               row0, "..", row0 + count - 1, " are outside 0..", n_rows - 1);
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
  internal::remove_stale_tmp_files_of(final_path);
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

  h5::quiet_hdf5();
  try {
    m.file =
        std::make_unique<H5::H5File>(m.tmp_path, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, h5::writer_access());
    H5::H5File& f = *m.file;
    h5::write_string_attribute(f, "schema", internal::kSchema);
    h5::write_int_attribute(f, "schema_version", internal::kSchemaVersion);
    h5::write_int_attribute(f, "complete", 0);
    h5::write_int_attribute(f, "n_rows", n_rows);
    h5::write_int_attribute(f, "n_rows_written", 0);
    for (const auto& [k, v] : attributes) h5::write_string_attribute(f, k, v);

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
      t.ds = f.createDataSet(path, type, space, cp, h5::access_with_cache(t.chunk_rows * row_elems * elem_bytes));
      t.written.assign(static_cast<size_t>(n_rows), false);
    };
    H5::Group g = f.createGroup("features");
    g.close();
    for (const FeatureSpec& s : specs) {
      WriteTarget& t = m.features[s.name];
      t.spec = s;
      t.half = s.dtype == "float16";
      if (t.half)
        make(t, "features/" + s.name, h5::half_type(), 2, s.row_shape);
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
    h5::rethrow_h5(e, "cannot create feature cache " + m.tmp_path);
  }
}

FeatureStoreWriter::~FeatureStoreWriter() {
  if (!impl_ || impl_->finished) return;
  try {
    h5::quiet_hdf5();
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
  h5::quiet_hdf5();
  try {
    if (!t.half) {
      h5::RowSpaces sel = h5::select_rows(t.ds, row0, count);
      t.ds.write(data, H5::PredType::NATIVE_FLOAT, sel.mem, sel.file);
    } else {
      // Convert in bounded blocks of rows (at least one row) so memory stays small.
      const int64_t block = std::max<int64_t>(1, static_cast<int64_t>(kConvertBlockBytes) / (2 * elems));
      std::vector<uint16_t> buf(static_cast<size_t>(std::min(block, count) * elems));
      H5::FloatType ht = h5::half_type();
      for (int64_t r = 0; r < count; r += block) {
        const int64_t n = std::min(block, count - r);
        floats_to_halves(data + r * elems, buf.data(), static_cast<size_t>(n * elems));
        h5::RowSpaces sel = h5::select_rows(t.ds, row0 + r, n);
        t.ds.write(buf.data(), ht, sel.mem, sel.file);
      }
    }
  } catch (const H5::Exception& e) {
    h5::rethrow_h5(e, str_cat("writing feature cache ", m.tmp_path, " dataset features/", name, " rows ", row0, "..",
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
  h5::quiet_hdf5();
  try {
    h5::RowSpaces sel = h5::select_rows(m.labels.ds, row0, count);
    m.labels.ds.write(labels, H5::PredType::NATIVE_INT64, sel.mem, sel.file);
  } catch (const H5::Exception& e) {
    h5::rethrow_h5(
        e, str_cat("writing feature cache ", m.tmp_path, " dataset labels rows ", row0, "..", row0 + count - 1));
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
  h5::quiet_hdf5();
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
      h5::RowSpaces sel = h5::select_rows(ds, r0, n);
      ds.write(buf.data(), st, sel.mem, sel.file);
    }
    ds.close();
    m.path_values.clear();
    m.path_values.shrink_to_fit();
    h5::write_int_attribute(*m.file, "n_rows_written", written);
    h5::write_int_attribute(*m.file, "complete", 1);
    m.file->flush(H5F_SCOPE_GLOBAL);
    m.close_all();
  } catch (const H5::Exception& e) {
    try {
      m.close_all();
    } catch (...) {
    }
    h5::rethrow_h5(e, "finishing feature cache " + m.tmp_path);
  }
  fsync_path(m.tmp_path, false, m.final_path);
  std::error_code ec;
  fs::rename(m.tmp_path, m.final_path, ec);
  PETL_CHECK(!ec, "feature cache ", m.final_path, ": cannot rename ", m.tmp_path, " onto it: ", ec.message());
  m.finished = true;
  fs::path parent = fs::path(m.final_path).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), true, m.final_path);
}

}  // namespace petl::io

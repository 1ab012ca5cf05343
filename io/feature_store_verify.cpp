// Checking caches: verify() reads every chunk of one cache; list_caches() reads the attributes of
// every cache in a root (`petl cache verify`, `petl cache ls`).
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/feature_store.h"
#include "io/feature_store_internal.h"
#include "io/feature_store_open.h"
#include "io/hdf5_util.h"

namespace petl::io {

namespace fs = std::filesystem;

VerifyResult verify(const std::string& path, const std::function<void(double)>& progress) {
  VerifyResult r;
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  r.bytes = ec ? 0 : static_cast<uint64_t>(size);
  try {
    internal::OpenCache c;
    c.open(path, {});
    r.rows = c.n_rows;
    // Work in logical bytes so progress is proportional to the data read.
    std::vector<internal::ReadTarget*> targets{&c.labels, &c.paths};
    for (auto& [k, t] : c.features) targets.push_back(&t);
    double total = 0, done = 0;
    for (internal::ReadTarget* t : targets) total += static_cast<double>(c.n_rows * t->row_elems);
    H5::FloatType ht = h5::half_type();
    std::vector<uint8_t> buf;
    for (internal::ReadTarget* t : targets) {
      const int64_t step = t->chunk_rows > 0
                               ? t->chunk_rows
                               : std::max<int64_t>(1, (4 << 20) / (4 * std::max<int64_t>(1, t->row_elems)));
      for (int64_t r0 = 0; r0 < c.n_rows; r0 += step) {
        const int64_t n = std::min(step, c.n_rows - r0);
        if (t == &c.paths) {
          internal::read_path_rows(c, r0, n);
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
    r.message = str_cat("feature cache ", path, " could not be read: ", h5::h5_reason(e));
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
    h5::quiet_hdf5();
    try {
      if (const std::string problem = h5::format_problem(c.path); !problem.empty()) {
        c.error = problem;
        out.push_back(std::move(c));
        continue;
      }
      H5::H5File f(c.path, H5F_ACC_RDONLY, H5::FileCreatPropList::DEFAULT, h5::file_access());
      std::string attribute_problem;
      c.attributes = h5::read_all_attributes(f, &attribute_problem);
      if (!attribute_problem.empty()) c.error = "has an " + attribute_problem;
      auto get = [&](const char* k) {
        auto it = c.attributes.find(k);
        return it == c.attributes.end() ? std::string() : it->second;
      };
      if (c.error.empty() && get("schema") != internal::kSchema)
        c.error = "not a petl feature cache (schema '" + get("schema") + "')";
      c.complete = c.error.empty() && get("complete") == "1";
      internal::parse_count(get("n_rows"), &c.rows);
    } catch (const H5::Exception& ex) {
      c.error = "cannot be opened as HDF5: " + h5::h5_reason(ex);
    } catch (const std::exception& ex) {
      c.error = ex.what();
    }
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const CacheEntry& a, const CacheEntry& b) { return a.path < b.path; });
  return out;
}

}  // namespace petl::io

// FeatureStoreReader: row ranges of a finished cache (opened and checked by OpenCache), float16
// widened to float32 in place.
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "io/feature_store.h"
#include "io/feature_store_internal.h"
#include "io/feature_store_open.h"
#include "io/hdf5_util.h"

namespace petl::io {

struct FeatureStoreReader::Impl {
  internal::OpenCache c;
  std::mutex mu;
};

FeatureStoreReader::FeatureStoreReader(const std::string& path, const AttributeMap& expected)
    : impl_(std::make_unique<Impl>()) {
  impl_->c.open(path, expected);
}
FeatureStoreReader::~FeatureStoreReader() {
  if (!impl_) return;
  try {
    h5::quiet_hdf5();
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
  internal::OpenCache& c = impl_->c;
  internal::ReadTarget& t = c.feature(name);
  c.check_range("read_rows('" + name + "')", row0, count);
  if (count == 0) return;
  const size_t n = static_cast<size_t>(count * t.row_elems);
  h5::quiet_hdf5();
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
  H5::FloatType ht = h5::half_type();
  try {
    c.raw_read(t, row0, count, halves, ht);
  } catch (const H5::Exception& e) {
    c.read_failed(t, row0, count, e, ht, 2);
  }
  const float* table = internal::half_table().data();
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, halves + 2 * i, 2);
    std::memcpy(bytes + 4 * i, &table[h], 4);
  }
}

void FeatureStoreReader::read_labels(int64_t row0, int64_t count, int64_t* out) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  internal::OpenCache& c = impl_->c;
  c.check_range("read_labels", row0, count);
  if (count == 0) return;
  h5::quiet_hdf5();
  try {
    c.raw_read(c.labels, row0, count, out, H5::PredType::NATIVE_INT64);
  } catch (const H5::Exception& e) {
    c.read_failed(c.labels, row0, count, e, H5::PredType::NATIVE_INT64, 8);
  }
}

std::vector<std::string> FeatureStoreReader::read_paths(int64_t row0, int64_t count) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  internal::OpenCache& c = impl_->c;
  c.check_range("read_paths", row0, count);
  if (count == 0) return {};
  h5::quiet_hdf5();
  return internal::read_path_rows(c, row0, count);
}

}  // namespace petl::io

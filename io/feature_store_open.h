// OpenCache: a cache file opened and validated, with checked row reads that narrow a failure to
// its chunk; what FeatureStoreReader and verify() share (internal to io/).
#pragma once
#include <H5Cpp.h>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/feature_store.h"

namespace petl::io::internal {

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
  int64_t file_bytes = 0;

  [[noreturn]] void fail(const std::string& what) const { PETL_FAIL("feature cache ", path, " ", what); }

  // Opens p and checks it (format, schema, completeness, `expected` attributes, datasets, storage):
  // fail() with "delete it or let petl rebuild it" otherwise.
  void open(const std::string& p, const AttributeMap& expected);
  // Every dataset is chunked with a checksummed chunk index (not the v1 B-tree of older formats),
  // has every chunk written, and fits in the file: its size is checked against the file's before
  // a caller allocates n_rows × row bytes for it.
  void check_storage(const ReadTarget& t);
  ReadTarget& feature(const std::string& name);  // fail() listing the features present
  void check_range(const std::string& what, int64_t row0, int64_t count) const;
  // Raw read of rows into buf with the given memory type (no conversion beyond HDF5's own).
  void raw_read(const ReadTarget& t, int64_t row0, int64_t count, void* buf, const H5::DataType& mem);
  // After a failed read: narrows the failure to the first bad chunk and throws the user message.
  [[noreturn]] void read_failed(const ReadTarget& t, int64_t row0, int64_t count, const H5::Exception& e,
                                const H5::DataType& mem, size_t elem_size);
};

// Rows row0 .. row0+count-1 of /paths (fixed-length strings), NUL padding cut.
std::vector<std::string> read_path_rows(OpenCache& c, int64_t row0, int64_t count);

}  // namespace petl::io::internal

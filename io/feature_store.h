// Feature caches: frozen-backbone features (e.g. the final cls token, or every block's K and V)
// computed once per (backbone hash, task, split, preprocessing, taps, dtype), stored in HDF5 and
// streamed back by row ranges during training — caches may be larger than RAM, so every read is
// a hyperslab of `count` rows and memory is bounded by what the caller asks for.
// Torch-free (part of petl_io); HDF5 (serial, C++ API) stays inside io/'s feature_store_*.cpp and
// hdf5_util.* (the implementation is split by job: naming, writer, open, reader, verify).
//
// ---------------------------------------------------------------------------------------------
// File layout (schema "petl.feature_cache", schema_version 1). N = number of rows = samples, in
// the order of the split's file list.
//
//   /                      root group; attributes:
//       schema          str    "petl.feature_cache"
//       schema_version  int64  1
//       complete        int64  0 while being written, 1 once finish() succeeded
//       n_rows          int64  N
//       n_rows_written  int64  rows written in every dataset (N when complete)
//       <identity / provenance attributes, all str>: backbone_sha256, task, split, normalisation,
//                       taps, dtype, list_sha256, petl_commit, created_utc, ... (whatever the
//                       builder passed; the cache key is a hash of the identity ones)
//       (every str attribute is a fixed-length UTF-8 string, NUL-padded)
//   /labels                int64 (N,)                       class index of each row
//   /paths                 str   (N,)  fixed-length UTF-8, NUL-padded to the longest path: image
//                                       path relative to the data root
//   /features/<name>       float16 (IEEE half) or float32, shape (N, *row_shape), e.g.
//       /features/cls      (N, D)                           final-layer cls token
//       /features/kv       (N, L, 2, H, T, D/H)             every block's K and V
//
// Every dataset is chunked along rows only (a chunk is a run of whole rows, about 2 MiB, at
// least one row) and carries the fletcher32 checksum filter, so a damaged chunk is detected on
// read. A cache is written to "<path>.tmp.<pid>" and renamed onto <path> by finish() (after
// fsync), so a file named <key>.h5 is always complete unless damaged afterwards.
//
// Damaged metadata: files are written in HDF5's 1.10 format (superblock version 3), whose metadata —
// superblock, object headers, chunk indexes, attribute heaps — all carries checksums that HDF5
// checks before using it, and without variable-length strings (their bytes would sit in HDF5's
// global heap, which has none). The reader opens nothing else: HDF5 1.10 itself crashes or hangs
// on corrupt unchecksummed metadata (tests/fuzz found it), so a file in an older format (caches of
// petl before this layout, h5py files written without libver='v110') or with variable-length
// strings is refused with "delete it or let petl rebuild it" — which ensure_feature_cache does.
//
// Reading it from Python (h5py; fixed-length string attributes come back as bytes):
//   import h5py
//   with h5py.File("cache/0123456789abcdef.h5", "r") as f:
//       assert f.attrs["schema"] == b"petl.feature_cache" and f.attrs["complete"] == 1
//       cls = f["features/cls"][0:256]                    # numpy float16/float32, rows 0..255
//       labels, paths = f["labels"][:], f["paths"].asstr()[:]
// ---------------------------------------------------------------------------------------------
//
// Concurrency: one writer per file; a reader or writer object serialises its own calls with a
// mutex, so it may be shared between threads (HDF5 here is built thread-safe). Use one reader
// per thread for parallel reads.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/float16.h"

namespace petl::io {

using AttributeMap = std::map<std::string, std::string>;

// One feature dataset: `name` (no '/'), the shape of one row, and the stored dtype.
struct FeatureSpec {
  std::string name;
  std::vector<int64_t> row_shape;  // e.g. {768} for cls, {L, 2, H, T, D/H} for kv
  std::string dtype;               // "float16" | "float32"
  int64_t row_elements() const;    // product of row_shape
};

// The float16 conversions of float16 datasets (float_to_half, half_to_float, floats_to_halves,
// halves_to_floats) are declared in io/float16.h, included above.

// Writes a cache to "<final_path>.tmp.<pid>" (parent directories are created). Rows may be
// written in any order and any piece size; finish() requires every row of every dataset
// (features, labels, paths) to have been written. Destroyed without finish(): the tmp file is
// removed. Errors are petl::Error naming the file.
class FeatureStoreWriter {
 public:
  FeatureStoreWriter(const std::string& final_path, int64_t n_rows, const std::vector<FeatureSpec>& specs,
                     const AttributeMap& attributes);
  ~FeatureStoreWriter();
  FeatureStoreWriter(const FeatureStoreWriter&) = delete;
  FeatureStoreWriter& operator=(const FeatureStoreWriter&) = delete;

  // data: count × spec.row_elements() floats, C order; converted to float16 when the dataset is.
  void write_rows(const std::string& name, int64_t row0, int64_t count, const float* data);
  void write_labels(int64_t row0, int64_t count, const int64_t* labels);
  // rows row0 .. row0+size-1; kept in memory and written at finish() (fixed width = longest).
  void write_paths(int64_t row0, const std::vector<std::string>& paths);
  // complete=1, n_rows_written=N, flush, close, fsync, atomic rename onto final_path, fsync dir.
  void finish();

  const std::string& final_path() const;
  const std::string& tmp_path() const;
  int64_t n_rows() const;
  int64_t chunk_rows(const std::string& name) const;  // rows per HDF5 chunk: a feature or "labels"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Opens a finished cache. Throws petl::Error naming the path when the file is missing, is not
// HDF5 or is truncated, is in an HDF5 format without metadata checksums or holds variable-length
// strings (see "Damaged metadata" above), has a dataset larger than what it stores, has another
// schema / version, is incomplete (complete != 1), an attribute differs from `expected` (key,
// expected and found values), or dataset shapes are inconsistent. A read that hits a damaged
// chunk throws "feature cache <path> is corrupt (checksum error in dataset X rows a..b): delete
// it or let petl rebuild it".
class FeatureStoreReader {
 public:
  explicit FeatureStoreReader(const std::string& path, const AttributeMap& expected = {});
  static FeatureStoreReader open(const std::string& path, const AttributeMap& expected = {}) {
    return FeatureStoreReader(path, expected);
  }
  ~FeatureStoreReader();
  FeatureStoreReader(FeatureStoreReader&&) noexcept;
  FeatureStoreReader& operator=(FeatureStoreReader&&) noexcept;

  const std::string& path() const;
  int64_t n_rows() const;
  const std::vector<FeatureSpec>& specs() const;  // every /features/* dataset
  bool has(const std::string& name) const;
  const FeatureSpec& spec(const std::string& name) const;  // petl::Error listing the names present
  const AttributeMap& attributes() const;                  // every root attribute (ints as decimal)
  int64_t chunk_rows(const std::string& name) const;       // read in multiples of this for speed

  // out: count × spec(name).row_elements() floats (float16 is converted). Reads only rows
  // row0 .. row0+count-1.
  void read_rows(const std::string& name, int64_t row0, int64_t count, float* out);
  void read_labels(int64_t row0, int64_t count, int64_t* out);
  std::vector<std::string> read_paths(int64_t row0, int64_t count);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads every chunk of every dataset (streaming, memory bounded by one chunk) and reports the
// first problem; never throws for a bad file. progress (optional) gets the fraction done.
struct VerifyResult {
  bool ok = false;
  std::string message;  // "ok: ..." or the first problem, naming the file
  int64_t rows = 0;
  uint64_t bytes = 0;  // file size
};
VerifyResult verify(const std::string& path, const std::function<void(double)>& progress = nullptr);

// Cache naming: the first 16 hex digits of SHA-256 over the sorted "key=value\n" lines of the
// identity (backbone_sha256, task, split, normalisation, taps, dtype, ...). Keys must not contain
// '=' or newlines, values no newlines (petl::Error otherwise).
std::string cache_key(const AttributeMap& identity);
std::string cache_path(const std::string& root, const std::string& key);  // root/key.h5

// One file in a cache root, for `petl cache ls`.
struct CacheEntry {
  std::string path, key;    // key = file name without ".h5"
  AttributeMap attributes;  // empty when unreadable
  uint64_t size_bytes = 0;
  bool complete = false;
  int64_t rows = 0;
  std::string error;  // non-empty when the file could not be opened as a cache
};
// Every *.h5 directly in root, sorted by path (petl::Error when root is not a directory).
// Only the attributes are read (cheap); use verify() to check the data.
std::vector<CacheEntry> list_caches(const std::string& root);

// "<x>.h5.tmp.<pid>" files directly in root whose writer process is no longer alive on this
// host (left by a crash or kill). A pid is only meaningful on the host that wrote the file.
std::vector<std::string> stale_tmp_files(const std::string& root);
bool is_tmp_file(const std::string& path, int64_t* pid = nullptr);

}  // namespace petl::io

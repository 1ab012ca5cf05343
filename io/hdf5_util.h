// HDF5 helpers of the feature store (internal to io/; the public API is io/feature_store.h): error
// capture, types, attributes, file format checks, access property lists and row selections.
#pragma once
#include <H5Cpp.h>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace petl::io::h5 {

// ------------------------------------------------------------------------------- errors
// HDF5's own error printing is replaced by a handler that records the error stack of the failing
// call (per thread), so every H5::Exception becomes a petl::Error carrying HDF5's innermost reason.

// Called at every public entry point: this thread's HDF5 errors are captured, never printed
// (the effect of H5::Exception::dontPrint(), plus the recorded reason), and stale text cleared.
void quiet_hdf5();

// HDF5's innermost reason for e (from the captured stack when there is one, else e's own text).
std::string h5_reason(const H5::Exception& e);
// PETL_FAIL(context, ": ", h5_reason(e)).
[[noreturn]] void rethrow_h5(const H5::Exception& e, const std::string& context);
// The last failure captured on this thread came from the filter pipeline (fletcher32 checksum).
bool last_error_is_checksum();

// ------------------------------------------------------------------------------- types

H5::FloatType half_type();  // IEEE binary16, little endian

// Fixed-length (NUL-padded) UTF-8 of the value's length: variable-length strings live in HDF5's
// global heap, the one metadata structure without a checksum (see OpenCache::open).
H5::StrType utf8_fixed_type(size_t bytes);

// ------------------------------------------------------------------------------- attributes

// Scalar attributes, replaced when present: a fixed-length UTF-8 string, an int64.
void write_string_attribute(H5::H5Object& obj, const std::string& key, const std::string& value);
void write_int_attribute(H5::H5Object& obj, const std::string& key, int64_t value);
// Every attribute of obj as text (ints as decimal). Variable-length strings are not read (see
// OpenCache::open): `problem` names the first such attribute.
std::map<std::string, std::string> read_all_attributes(const H5::H5Object& obj, std::string* problem);

// ------------------------------------------------------------------------------- files

// Checks done before HDF5 parses a byte of the file: HDF5 1.10 does not survive corrupt metadata
// (fuzzing crashed and hung it in the global heap, the metadata accumulator and compact-layout
// reads), so petl reads only files whose metadata HDF5 checks before using it: superblock version 3
// (the 1.10 format: superblock, object headers, fixed-array / extensible-array / v2 B-tree chunk
// indexes and fractal heaps all carry checksums). Returns "" or the problem.
std::string format_problem(const std::string& path);

// File access: HDF5's file locking stays on, but a file system without flock() (some NFS / Lustre
// mounts) is not an error (ignore_when_disabled).
H5::FileAccPropList file_access();

// Writing: the HDF5 1.10 format, whose metadata all carries checksums (see format_problem).
H5::FileAccPropList writer_access();

// ------------------------------------------------------------------------------- datasets

// A dataset access list whose chunk cache holds two chunks of chunk_bytes (at least 1 MiB).
H5::DSetAccPropList access_with_cache(int64_t chunk_bytes);
// Rows per chunk of a dataset of the given rank, or -1 when it is not chunked.
int64_t dataset_chunk_rows(const H5::DataSet& ds, int rank);

// Rows row0 .. row0+count-1 of a dataset: the file selection, and a memory space of the same
// shape (count, row_shape...). The same shape matters: with a flat 1-D memory space HDF5 maps
// the selections element-run by element-run, ~100x slower for large rows.
struct RowSpaces {
  H5::DataSpace file, mem;
};
RowSpaces select_rows(const H5::DataSet& ds, int64_t row0, int64_t count);

}  // namespace petl::io::h5

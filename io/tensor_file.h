// Torch-free tensor files: safetensors (read + write) and numpy .npy/.npz (read; .npy write).
// Used for checkpoints (safetensors, reference parameter names), Google ViT .npz checkpoints
// and logits files. Conversion to/from torch::Tensor lives in models/checkpoint.h.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace petl::io {

enum class DType { f64, f32, f16, bf16, i64, i32, i16, i8, u8, boolean };
size_t dtype_size(DType d);
std::string dtype_name(DType d);  // safetensors spelling: "F32", "F16", "BF16", "I64", ...

// A dense little-endian C-order tensor.
struct RawTensor {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // numel × dtype_size bytes
  int64_t numel() const;
};
using TensorMap = std::map<std::string, RawTensor>;

// safetensors: 8-byte LE header length, JSON header {name: {dtype, shape, data_offsets}} with
// optional "__metadata__" (string → string), then the data. Errors name the file and the key.
TensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);
// The "__metadata__" of a safetensors file, reading only its header (cheap for large files).
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);
// Written to path + ".tmp" and renamed, so a crash never leaves a half file.
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// numpy: .npy v1/v2/v3 headers, dtypes <f8 <f4 <f2 <i8 <i4 <i2 |i1 |u1 |b1 (and '=' / '|' byte
// orders); fortran_order arrays are converted to C order; big-endian is an error naming file+key.
RawTensor read_npy(const std::string& path);
RawTensor parse_npy(const uint8_t* data, size_t size, const std::string& name_for_errors);
void write_npy(const std::string& path, const RawTensor& t);
// .npz: a zip (stored or deflated) of .npy members; keys are member names without ".npy".
TensorMap read_npz(const std::string& path);

}  // namespace petl::io

#include "harness/train/task_data.h"

#include <cstring>

namespace petl {

SplitTensors load_split_tensors(const data::TaskInfo& task, const std::string& split, const data::LoadOptions& opts) {
  SplitTensors out;
  out.meta = data::load_split(task, split, opts);
  const int64_t n = out.meta.n, s = out.meta.image_size;
  out.images = torch::empty({n, 3, s, s}, torch::kFloat32);
  if (n) std::memcpy(out.images.data_ptr<float>(), out.meta.pixels.data(), sizeof(float) * out.meta.pixels.size());
  out.labels = torch::empty({n}, torch::kInt64);
  if (n) std::memcpy(out.labels.data_ptr<int64_t>(), out.meta.labels.data(), sizeof(int64_t) * n);
  std::vector<float>().swap(out.meta.pixels);
  return out;
}

}  // namespace petl

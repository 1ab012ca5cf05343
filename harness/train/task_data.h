// Loads a split of a task into tensors (N×3×S×S float32 and N int64 labels).
#pragma once
#include <torch/torch.h>

#include "datasets/vtab.h"

namespace petl {

struct SplitTensors {
  torch::Tensor images, labels;
  data::LoadedSplit meta;  // pixels released; keeps paths, skipped, list hash
};

SplitTensors load_split_tensors(const data::TaskInfo& task, const std::string& split, const data::LoadOptions& opts);

}  // namespace petl

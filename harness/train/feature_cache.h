// Frozen-backbone feature caches for training: which tensors a method needs (from its
// BackboneNeeds declaration), the identity of one split's cache (→ its key and file name), building
// it once with the backbone in eval mode, and serving it back — the train split in memory (in its
// stored dtype, indexed per batch exactly as images would be), the test split streamed by chunks.
// The HDF5 layout is io/feature_store.h's; rows are the split's samples in list order.
//   cls: /features/cls (N, D)                 the pooled feature (VitConfig::pool; final-norm cls token)
//   kv:  /features/kv  (N, L, 2, H, T, D/H)   every block's K and V as its attention uses them
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <torch/torch.h>

#include "core/cache_taps.h"
#include "core/enums.h"
#include "datasets/vtab.h"
#include "io/feature_store.h"
#include "methods/method.h"

namespace petl {

// The taps a method's declaration asks for; none when it is not cacheable (gradients through the
// backbone or a stochastic backbone path) or needs something no cache holds.
CacheTaps cache_taps_for(const BackboneNeeds& needs);
// The taps from which the method's EVALUATION can run (forward_cached in eval mode, where stochastic
// depth is off): as cache_taps_for, but a stochastic training path does not matter. None for
// methods with gradients through the backbone (they change its token path).
CacheTaps eval_taps_for(const BackboneNeeds& needs);

// The tapped features of a batch of images: the backbone in eval mode, no grad, K/V as its attention
// uses them (B, H, N, D/H) per block and/or the final-norm cls token (B, D).
CachedFeatures backbone_features(VisionTransformer backbone, const torch::Tensor& images, const CacheTaps& taps);

// Everything that determines a split's cached features; cache_key() of it names the file.
io::AttributeMap cache_identity(const std::string& backbone_sha256, const VitConfig& cfg, const data::TaskInfo& task,
                                const std::string& split, const std::string& normalisation, const CacheTaps& taps,
                                CacheDtype dtype);

struct CacheBuildOptions {
  std::string root;  // directory of <key>.h5 files
  CacheDtype dtype = CacheDtype::kFloat32;
  CacheTaps taps;
  int64_t chunk_images = 256;  // images decoded and passed through the backbone at a time
  data::LoadOptions load;      // image size, normalisation, threads, progress
  std::string backbone_file;   // provenance only
};

// Returns the path of the split's cache, building it when missing. An existing file that is
// incomplete, truncated, corrupt (checksums) or of another identity is reported on stderr,
// removed and rebuilt — never used. *built (optional) tells whether it was built now.
std::string ensure_feature_cache(const CacheBuildOptions& o, VisionTransformer backbone,
                                 const std::string& backbone_sha256, const data::TaskInfo& task,
                                 const std::string& split, bool* built = nullptr);

// A whole split's features in memory, kept in the stored dtype (float16 halves the RAM) and
// returned per batch as float32 on `device`.
class CachedSplit {
 public:
  CachedSplit(const std::string& path, const io::AttributeMap& expected, const CacheTaps& taps);
  // Only the cache's rows `rows`, in that order (a row may repeat): a few-shot list out of its
  // dataset's train pool. Reads those rows alone.
  CachedSplit(const std::string& path, const io::AttributeMap& expected, const CacheTaps& taps,
              const std::vector<int64_t>& rows);
  // Features already in memory: cls (N, D) and/or kv (N, L, 2, H, T, D/H), any float dtype.
  CachedSplit(torch::Tensor cls, torch::Tensor kv, torch::Tensor labels);
  int64_t size() const { return labels_.size(0); }
  const torch::Tensor& labels() const { return labels_; }
  // The batch of rows `index`. K/V held in host memory and wanted there are not copied: the
  // features carry views of the whole store and the index (CachedFeatures::rows), which the
  // attention reads in place; `in_place` false (or another device) gathers the rows into a copy.
  CachedFeatures batch(const torch::Tensor& index, torch::Device device, bool in_place = true) const;
  const io::AttributeMap& attributes() const { return attrs_; }

 private:
  torch::Tensor cls_, kv_, labels_;
  io::AttributeMap attrs_;
};

// Streams a cache in row order, `batch` rows at a time (bounded memory): fn(features, labels).
void for_each_cached_batch(const std::string& path, const io::AttributeMap& expected, const CacheTaps& taps,
                           int64_t batch, torch::Device device,
                           const std::function<void(const CachedFeatures&, const torch::Tensor&)>& fn);

}  // namespace petl

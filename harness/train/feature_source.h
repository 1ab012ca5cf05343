// Where a split's inputs come from, so that training and evaluation have no "cached" branches:
//   LiveImages      decoded images in host memory, through the live backbone (method.forward)
//   CachedFeatures  frozen-backbone features from a feature cache (method.forward_cached): the
//                   train split resident in memory in its stored dtype, the test split streamed
//                   from the HDF5 file in row order (bounded memory).
// make_feature_sources() picks one for a resolved job from the method's declared needs.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "harness/train/evaluate.h"
#include "harness/train/feature_cache.h"
#include "harness/train/job.h"
#include "harness/train/task_data.h"
#include "methods/method.h"

namespace petl {

class FeatureSource {
 public:
  virtual ~FeatureSource() = default;
  virtual int64_t size() const = 0;
  virtual const torch::Tensor& labels() const = 0;  // (N,) int64, list order
  // Logits of `method` (in whatever mode the caller set) on rows `index` of the split.
  virtual torch::Tensor logits(Method& method, const torch::Tensor& index, torch::Device device) const = 0;
  // No-grad, eval-mode pass over every row in order: accuracy (and the logits when asked).
  virtual EvalResult evaluate(Method& method, int64_t batch_size, torch::Device device, bool progress,
                              const std::string& label, torch::Tensor* logits_out = nullptr) const = 0;
  // The rows' frozen-backbone features `taps`, batch by batch in row order, no grad:
  // fn(features, labels). Live images go through `backbone` (eval mode); a cache is read.
  using FeatureFn = std::function<void(const CachedFeatures&, const torch::Tensor&)>;
  virtual void for_each_features(VisionTransformer backbone, const CacheTaps& taps, int64_t batch_size,
                                 torch::Device device, bool progress, const std::string& label,
                                 const FeatureFn& fn) const = 0;
  // Provenance of the rows.
  virtual std::string list_sha256() const = 0;
  virtual std::vector<std::string> skipped() const { return {}; }
};

// A split's decoded images (N×3×S×S float32 in host memory) and labels.
class LiveImages : public FeatureSource {
 public:
  explicit LiveImages(SplitTensors split) : split_(std::move(split)) {}
  int64_t size() const override { return split_.labels.size(0); }
  const torch::Tensor& labels() const override { return split_.labels; }
  torch::Tensor logits(Method& method, const torch::Tensor& index, torch::Device device) const override;
  EvalResult evaluate(Method& method, int64_t batch_size, torch::Device device, bool progress, const std::string& label,
                      torch::Tensor* logits_out) const override;
  void for_each_features(VisionTransformer backbone, const CacheTaps& taps, int64_t batch_size, torch::Device device,
                         bool progress, const std::string& label, const FeatureFn& fn) const override;
  std::string list_sha256() const override { return split_.meta.list_sha256; }
  std::vector<std::string> skipped() const override { return split_.meta.skipped; }

 private:
  SplitTensors split_;
};

// A split decoded chunk by chunk each time it is read: `chunk` images in memory at a time (a
// multiple of the batch size, so batches are the ones LiveImages forms), decoded on the load
// options' threads (on CUDA the next chunk is decoded while the device works on this one). The
// labels come from the list up front. For a test split read once (query-only methods evaluate
// every snapshot in one pass): VTAB-1k's largest test splits (73,728 images) would hold 44 GB
// decoded at 224 px. No random access (logits by index is for training splits) and no skip_bad.
class StreamedImages : public FeatureSource {
 public:
  StreamedImages(data::TaskInfo task, std::string split, data::LoadOptions lo, int64_t chunk = 512);
  int64_t size() const override { return labels_.size(0); }
  const torch::Tensor& labels() const override { return labels_; }
  torch::Tensor logits(Method& method, const torch::Tensor& index, torch::Device device) const override;
  EvalResult evaluate(Method& method, int64_t batch_size, torch::Device device, bool progress, const std::string& label,
                      torch::Tensor* logits_out) const override;
  void for_each_features(VisionTransformer backbone, const CacheTaps& taps, int64_t batch_size, torch::Device device,
                         bool progress, const std::string& label, const FeatureFn& fn) const override;
  std::string list_sha256() const override { return list_sha256_; }

 private:
  // fn(images, labels) for every batch of `batch_size` rows in order, decoding chunk by chunk.
  void for_each_batch(int64_t batch_size, torch::Device device, bool progress, const std::string& label,
                      const std::function<void(const torch::Tensor&, const torch::Tensor&)>& fn) const;
  data::TaskInfo task_;
  std::string split_, list_sha256_;
  data::LoadOptions lo_;
  int64_t chunk_;
  torch::Tensor labels_;
};

// A split's frozen-backbone features from a cache file (identity checked on open). The taps
// asked of for_each_features must be among those it was opened with.
class CachedFeatureSource : public FeatureSource {
 public:
  // resident: every row in memory (training); otherwise only the labels, rows streamed by evaluate().
  CachedFeatureSource(const std::string& path, const io::AttributeMap& identity, const CacheTaps& taps, bool resident);
  // Resident rows `rows` of the cache (a few-shot list out of its dataset's train pool), whose own
  // list hashes to list_sha256.
  CachedFeatureSource(const std::string& path, const io::AttributeMap& identity, const CacheTaps& taps,
                      const std::vector<int64_t>& rows, std::string list_sha256);
  int64_t size() const override { return labels_.size(0); }
  const torch::Tensor& labels() const override { return labels_; }
  torch::Tensor logits(Method& method, const torch::Tensor& index, torch::Device device) const override;
  EvalResult evaluate(Method& method, int64_t batch_size, torch::Device device, bool progress, const std::string& label,
                      torch::Tensor* logits_out) const override;
  void for_each_features(VisionTransformer backbone, const CacheTaps& taps, int64_t batch_size, torch::Device device,
                         bool progress, const std::string& label, const FeatureFn& fn) const override;
  std::string list_sha256() const override { return list_sha256_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_, list_sha256_;
  io::AttributeMap identity_;
  CacheTaps taps_;
  std::unique_ptr<CachedSplit> resident_;
  torch::Tensor labels_;
};

struct FeatureSources {
  std::unique_ptr<FeatureSource> train, test;
  nlohmann::json cache_info;  // the record's "feature_cache" section (null when live)
};

// The job's train and test sources: live images, or (spec.feature_cache set) the cache of the
// taps the method declares, built when missing — for the train split only when the taps include
// K/V (a test split's K/V would take ~7 MB per ViT-B image: it is evaluated live, in one pass for
// every snapshot); small taps (cls) are cached for both splits. Errors when the method cannot train from cached
// features, says why.
FeatureSources make_feature_sources(const ResolvedJob& job, const JobBackbone& backbone, const BackboneNeeds& needs);

// The class count of a job: the task's declared count, else 1 + the largest train label (read
// from the list file; no decoding).
int job_num_classes(const ResolvedJob& job);

// The classes of [0, num_classes) with no image in the job's train split (the samples it trains
// on). Any is an error naming the list, the classes and where the class count comes from, unless
// spec.allow_missing_classes or VTAB-1k's own split of the task lacks classes (sun397); then a
// warning naming them is printed and they are returned for the record (data.missing_train_classes).
std::vector<int> check_train_classes(const ResolvedJob& job, int num_classes);

}  // namespace petl

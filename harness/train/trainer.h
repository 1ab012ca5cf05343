// The epoch loop of a job, as timm's train.py splits it: train_one_epoch() (the recipe's
// per-iteration learning rate, shuffled batches, cross-entropy, data-parallel gradient sums,
// AdamW step) and evaluate() on a FeatureSource; the training-memory peak excludes evaluations.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "harness/train/data_parallel.h"
#include "harness/train/evaluate.h"
#include "harness/train/feature_cache.h"
#include "harness/train/feature_source.h"
#include "harness/train/memory_meter.h"
#include "harness/train/recipe.h"
#include "harness/train/train_util.h"
#include "methods/method.h"

namespace petl {

// A copy of a method's trainable tensors after an epoch, kept in plain host memory (outside the
// tensor allocators, so it neither counts as training memory nor occupies the GPU), to be
// evaluated later: one test pass then serves every snapshot (evaluate_snapshots).
struct Snapshot {
  int epoch = 0;
  double train_loss = 0;
  std::vector<std::vector<uint8_t>> bytes;  // one per trainable tensor, in trainable_parameters() order

  static Snapshot take(const NamedTensors& trainable, int epoch, double train_loss);
  void restore(const NamedTensors& trainable) const;  // copies the values back into the tensors
};

// Evaluates every snapshot in ONE pass over the test split: each batch's frozen-backbone features
// (`taps`) are computed (or read) once, then every snapshot's tensors are loaded in turn and its
// logits come from forward_cached. Only for methods whose evaluation the taps serve
// (eval_taps_for). The method's tensors are left as they were. Results in snapshot order.
std::vector<EvalResult> evaluate_snapshots(Method& method, const FeatureSource& test,
                                           const std::vector<Snapshot>& snapshots, VisionTransformer backbone,
                                           const CacheTaps& taps, int64_t batch_size, torch::Device device,
                                           bool progress, const std::string& label);

struct EpochResult {
  double mean_loss = 0;  // mean over the epoch's iterations of the global-batch loss
  int64_t images = 0;    // global images seen
  double seconds = 0;
};

class Trainer {
 public:
  // `label` names the job in progress bars and log lines ("lora/cifar").
  Trainer(Method& method, const Recipe& recipe, DataParallel& dp, torch::Device device, int cuda_index,
          std::string label, bool progress);
  // Iterations per epoch for `n` training rows (drop_last as the recipe says); petl::Error when 0.
  int64_t iterations(int64_t n) const;
  EpochResult train_one_epoch(const FeatureSource& train, int epoch);
  // Test accuracy; the time counts as evaluation and its memory is excluded from the training peak.
  EvalResult evaluate(const FeatureSource& test);
  // The same for several snapshots in one pass (see evaluate_snapshots).
  std::vector<EvalResult> evaluate_snapshots(const FeatureSource& test, const std::vector<Snapshot>& snapshots,
                                             VisionTransformer backbone, const CacheTaps& taps);
  // Stops the training-memory meter; call after the last epoch.
  void finish() { peak_.end(); }

  const NamedTensors& trainable() const { return trainable_; }
  torch::optim::AdamW& optimizer() { return *opt_; }
  const TrainingPeak& peak() const { return peak_; }
  double eval_seconds() const { return eval_seconds_; }

 private:
  Method& method_;
  const Recipe& recipe_;
  DataParallel& dp_;
  torch::Device device_;
  std::string label_;
  bool progress_;
  NamedTensors trainable_;
  std::vector<torch::Tensor> trainable_tensors_;
  std::unique_ptr<torch::optim::AdamW> opt_;
  TrainingPeak peak_;
  bool started_ = false;
  double eval_seconds_ = 0;
};

}  // namespace petl

// The epoch loop of a job, as timm's train.py splits it: train_one_epoch() (the recipe's
// per-iteration learning rate, shuffled batches, cross-entropy, data-parallel gradient sums,
// AdamW step) and evaluate() on a FeatureSource; the training-memory peak excludes evaluations.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "harness/train/data_parallel.h"
#include "harness/train/evaluate.h"
#include "harness/train/feature_source.h"
#include "harness/train/memory_meter.h"
#include "harness/train/recipe.h"
#include "harness/train/train_util.h"
#include "methods/method.h"

namespace petl {

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

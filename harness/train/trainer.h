// The epoch loop of a job, as timm's train.py splits it: train_one_epoch() (the recipe's
// per-iteration learning rate, shuffled batches, cross-entropy, data-parallel gradient sums,
// AdamW step) and evaluate() on a FeatureSource; the training-memory peak excludes evaluations.
#pragma once
#include <memory>
#include <string>
#include <torch/torch.h>

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

// One method's snapshots, for evaluating several methods' snapshots in one pass.
struct SnapshotSet {
  Method* method = nullptr;
  const std::vector<Snapshot>* snapshots = nullptr;
};
// Every snapshot of every set in ONE pass over the test split: each batch's features (`taps`, which
// must hold what every method's evaluation needs) are computed or read once and serve them all
// (a bundle of jobs: harness/train/bundle.h). Results per set, in snapshot order; the methods'
// tensors are left as they were.
std::vector<std::vector<EvalResult>> evaluate_snapshot_sets(const std::vector<SnapshotSet>& sets,
                                                            const FeatureSource& test, VisionTransformer backbone,
                                                            const CacheTaps& taps, int64_t batch_size,
                                                            torch::Device device, bool progress,
                                                            const std::string& label);

struct EpochResult {
  double mean_loss = 0;  // mean over the epoch's iterations of the global-batch loss
  int64_t images = 0;    // global images seen
  double seconds = 0;
};

// Where an epoch's training stands: its shuffled order (drawn when it starts) and the iterations
// done, with their sums. A job stopped between iterations resumes from it exactly.
struct EpochProgress {
  int epoch = 0;
  torch::Tensor perm;          // the epoch's order; undefined until the epoch starts
  int64_t next_iteration = 0;  // iterations done
  double loss_sum = 0, seconds = 0;
  int64_t images = 0;  // global images seen
};

class Trainer;

// Watches the training steps of a Trainer: called right before each step's forward pass (after the
// gradients were zeroed) and right after its optimizer step. The budget check is one
// (harness/train/memory_budget.h: BudgetCheck).
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  virtual void before_step(Trainer& trainer) = 0;
  // `images`: this rank's images in the step.
  virtual void after_step(Trainer& trainer, int64_t images) = 0;
};

class Trainer {
 public:
  // `label` names the job in progress bars and log lines ("lora/cifar"). Memory is measured on
  // `device`'s meter (DeviceMemory::of).
  Trainer(Method& method, const Recipe& recipe, DataParallel& dp, torch::Device device, std::string label,
          bool progress);
  // Iterations per epoch for `n` training rows (drop_last as the recipe says); petl::Error when 0.
  int64_t iterations(int64_t n) const;
  EpochResult train_one_epoch(const FeatureSource& train, int epoch);
  // Trains the rest of p's epoch (drawing its order first when p has none). stop::check() runs
  // before every iteration: a requested stop throws stop::Stopped with p at an iteration boundary
  // (the tensors, the optimizer and the random generators are then in step with p).
  void train_iterations(const FeatureSource& train, EpochProgress& p);
  // Micro-batches: each rank's share of a global batch runs forward and backward in chunks of at
  // most `m` images whose gradients add up before the one optimizer step — the same step up to
  // float summation order (BatchNorm statistics and dropout masks are per chunk). 0: whole batch.
  // A last chunk below the method's min_chunk (BackboneNeeds) is avoided: the chunk before it gives
  // it images, or takes it along where it has none to spare (one chunk then has m + 1 images).
  void set_micro_batch(int64_t m) { micro_batch_ = m; }
  int64_t micro_batch() const { return micro_batch_; }
  int64_t min_chunk() const { return min_chunk_; }
  // `observer` (not owned; it must outlive the training) watches every later step.
  void add_observer(StepObserver* observer) { observers_.push_back(observer); }
  // The peak bytes (counted as the record's peak_train: the model's tensors plus what the work
  // allocates) of one forward and backward over the first `m` training rows in chunks of `m`
  // (no optimizer step). Gradients, trained buffers and the random generators are left as they
  // were, so training is unchanged by the probe.
  int64_t probe_peak(const FeatureSource& train, int64_t m);
  // The mean loss of a finished epoch.
  double mean_loss(const FeatureSource& train, const EpochProgress& p) const {
    return p.loss_sum / double(iterations(train.size()));
  }
  // Test accuracy; the time counts as evaluation and its memory is excluded from the training peak.
  EvalResult evaluate(const FeatureSource& test);
  // The same for several snapshots in one pass (see evaluate_snapshots).
  std::vector<EvalResult> evaluate_snapshots(const FeatureSource& test, const std::vector<Snapshot>& snapshots,
                                             VisionTransformer backbone, const CacheTaps& taps);
  // Stops the training-memory meter; call after the last epoch.
  void finish() { peak_.end(); }
  // Excludes work between training steps (saving the job's state) from the training peak.
  void pause_peak() { peak_.pause(); }
  void resume_peak() { peak_.resume(); }
  // Takes the meter's peak so far into the training peak (before a probe resets the meter).
  void fold_peak() { peak_.fold(); }
  bool started() const { return started_; }  // a training step has run in this process
  // The training peak of the part of this job trained before (a resumed job; see TrainingPeak).
  void continue_peak(int64_t train_peak, int64_t baseline, int64_t reserved) {
    peak_.continue_from(train_peak, baseline, reserved);
    started_ = true;
  }

  Method& method() { return method_; }
  torch::Device device() const { return device_; }
  const std::string& label() const { return label_; }
  const DeviceMemory& memory() const { return memory_; }
  const NamedTensors& trainable() const { return trainable_; }
  torch::optim::AdamW& optimizer() { return *opt_; }
  const TrainingPeak& peak() const { return peak_; }
  double eval_seconds() const { return eval_seconds_; }

 private:
  // Forward + backward of rows `idx` (this rank's part of a global batch of `global` images) in
  // micro-batches; returns the summed loss.
  double forward_backward(const FeatureSource& train, const torch::Tensor& idx, int64_t global);

  Method& method_;
  const Recipe& recipe_;
  DataParallel& dp_;
  torch::Device device_;
  std::string label_;
  bool progress_;
  const DeviceMemory& memory_;
  NamedTensors trainable_;
  std::vector<torch::Tensor> trainable_tensors_;
  std::unique_ptr<torch::optim::AdamW> opt_;
  TrainingPeak peak_;
  std::vector<StepObserver*> observers_;
  bool started_ = false;
  int64_t micro_batch_ = 0, min_chunk_ = 1;
  double eval_seconds_ = 0;
};

}  // namespace petl

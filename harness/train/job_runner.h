// The run of one training job in named steps, as google/benchmark's BenchmarkRunner runs one
// benchmark: resolve → build → (reuse a finished record) → load sources → train → finish.
// run_job (harness/train/job.h) takes one job through every step; a bundle (harness/train/bundle.h)
// takes each of its jobs through the same steps, with inputs its jobs share (JobInputs) and their
// evaluations deferred to its one test pass (an EvaluationPolicy).
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/train/feature_source.h"
#include "harness/train/job.h"
#include "harness/train/job_state.h"
#include "harness/train/memory_budget.h"
#include "harness/train/trainer.h"

namespace petl {

// Where a job's backbone and feature sources come from. Not shared (run_job): loaded for the job.
// Shared (a bundle): jobs on the same backbone file and recipe preprocessing get the same objects,
// except that a method that back-propagates through the backbone (and may change it: LoRA,
// adapters) gets a copy of its own.
class JobInputs {
 public:
  explicit JobInputs(bool shared = false) : shared_(shared) {}
  std::shared_ptr<JobBackbone> backbone(const ResolvedJob& job);
  std::shared_ptr<FeatureSources> sources(const ResolvedJob& job, const JobBackbone& backbone,
                                          const BackboneNeeds& needs);

 private:
  bool shared_;
  std::map<std::string, std::shared_ptr<JobBackbone>> backbones_;
  std::map<std::string, std::shared_ptr<FeatureSources>> sources_;
};

// What a job does with the trainable-tensor snapshots of its evaluation epochs once it is trained
// (methods whose evaluation runs from frozen-backbone features keep a snapshot at each evaluation
// epoch instead of evaluating there; harness/train/trainer.h).
class EvaluationPolicy {
 public:
  virtual ~EvaluationPolicy() = default;
  // True when the snapshots are kept for a later pass; the job's state is then saved first, so a
  // later stop never trains the job again.
  virtual bool defers() const = 0;
  // The snapshots' evaluations in snapshot order, or nullopt when they are deferred (the policy
  // then keeps the snapshots).
  virtual std::optional<std::vector<EvalResult>> evaluate(Trainer& trainer, const FeatureSource& test,
                                                          VisionTransformer backbone, std::vector<Snapshot>& snapshots,
                                                          const CacheTaps& taps) = 0;
};

// One pass over the job's own test split, now (petl run).
class EvaluateNow final : public EvaluationPolicy {
 public:
  bool defers() const override { return false; }
  std::optional<std::vector<EvalResult>> evaluate(Trainer& trainer, const FeatureSource& test,
                                                  VisionTransformer backbone, std::vector<Snapshot>& snapshots,
                                                  const CacheTaps& taps) override;
};

// Kept for a bundle's one pass over the test split (harness/train/bundle.h).
class DeferEvaluation final : public EvaluationPolicy {
 public:
  bool defers() const override { return true; }
  std::optional<std::vector<EvalResult>> evaluate(Trainer& trainer, const FeatureSource& test,
                                                  VisionTransformer backbone, std::vector<Snapshot>& snapshots,
                                                  const CacheTaps& taps) override;
  const std::vector<Snapshot>& snapshots() const { return snapshots_; }
  const CacheTaps& taps() const { return taps_; }
  bool pending() const { return !snapshots_.empty(); }
  void clear() { snapshots_.clear(); }

 private:
  std::vector<Snapshot> snapshots_;
  CacheTaps taps_;
};

class JobRunner {
 public:
  // `inputs` and `evaluation` must outlive the runner.
  JobRunner(JobSpec spec, JobInputs& inputs, EvaluationPolicy& evaluation);

  // The steps, in this order (run() takes them all; a dry run ends after build()).
  void resolve();         // effective settings, threads, device; --out checked writable
  void build();           // backbone (from the inputs), method, the record's header and job key
  bool reuse_finished();  // --resume: true when --out holds a finished record of this job key (record() is it)
  void load_sources();    // train and test sources (from the inputs); the test labels checked
  void train();           // memory budget, resume from a saved state, the epochs and their evaluations
  void finish();          // accuracies, data section, checkpoint; the record appended by rank 0
  Record run();

  // Whether training produced every evaluation (false: the policy deferred them).
  bool evaluated() const { return evaluated_; }
  // Evaluations of the deferred snapshots from a pass run elsewhere, in snapshot order; `how` says
  // how they were evaluated (the record's settings.evaluation).
  void add_evaluations(const std::vector<Snapshot>& snapshots, const std::vector<EvalResult>& results,
                       const std::string& how);
  // Seconds of work for this job done elsewhere (its share of a bundle's test pass).
  void add_seconds(double s) { wall_s_ += s; }

  const JobSpec& spec() const { return spec_; }
  const ResolvedJob& job() const { return *job_; }
  Record& record() { return r_; }
  Method& method() { return *method_; }
  const JobBackbone& backbone() const { return *bb_; }
  const FeatureSources& sources() const { return *src_; }
  std::string label() const;  // "method/task"

 private:
  // The steps of train().
  bool fit_memory_budget(Trainer& trainer, const DataParallel& dp);  // false: does not fit (recorded)
  void resume(Trainer& trainer, LoopProgress& p);
  void run_epochs(Trainer& trainer, StateSaver& saver, LoopProgress& p);
  void evaluate_snapshots(Trainer& trainer, StateSaver& saver, LoopProgress& p, const CacheTaps& taps);
  void log_eval(LoopProgress& p, int epoch, double loss, double accuracy) const;
  void record_training(Trainer& trainer, const LoopProgress& p, double eval_s_before);
  std::string state_path() const;

  JobSpec spec_;
  JobInputs& inputs_;
  EvaluationPolicy& evaluation_;
  std::optional<ResolvedJob> job_;
  std::shared_ptr<JobBackbone> bb_;
  std::shared_ptr<Method> method_;
  std::shared_ptr<FeatureSources> src_;
  std::optional<BudgetCheck> budget_check_;
  nlohmann::json budget_;  // the record's memory_budget section while training (null: no budget)
  Record r_;
  int num_classes_ = 0, image_size_ = 0, rank_ = 0;
  std::vector<int> missing_train_classes_;  // allowed to be missing (check_train_classes)
  bool evaluated_ = true;
  double wall_s_ = 0;  // this job's own work so far
};

}  // namespace petl

// A training job's full state between epochs (or iterations), so that a stopped or killed job
// resumes where it stopped and its record equals an uninterrupted run's, losses and accuracies bit
// for bit on CPU: the method's trained tensors (trainable parameters and trained buffers), AdamW's
// per-parameter state (step, exp_avg, exp_avg_sq), the random generators (CPU, and the job's CUDA
// device), where the loop stands (epoch, iteration, the epoch's shuffled order and sums so far,
// whether its evaluation is pending), every evaluation and epoch loss so far, the snapshots of
// query-only methods, and the time spent. One safetensors file per job key,
// <out>/state/<job_key>.safetensors, written atomically (temporary file, fsync, rename); tensors
// under "model.", "optim.", "rng.", "perm" and "snapshot.<k>.<i>", the rest as JSON in the
// metadata "petl_job_state" (whose "summary" and "saved_utc" the sweep's dry run shows). A state is only ever loaded
// for the job key it was written for.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/clock.h"
#include "harness/train/trainer.h"
#include "methods/method.h"
#include "results/record.h"

namespace petl {

// Where the epoch loop stands, and what it has produced so far.
struct LoopProgress {
  int total_epochs = 0;       // the recipe's (for the summary)
  int epoch = 0;              // the epoch in progress (0-based); total_epochs when training is done
  bool eval_pending = false;  // epoch `epoch` is trained; its evaluation has not run
  EpochProgress current;      // the iterations of epoch `epoch` done so far
  std::vector<double> epoch_train_loss;
  std::vector<EvalPoint> evals;
  std::vector<Snapshot> snapshots;
  double train_s = 0, eval_s = 0;  // before this process (a resumed job adds its own)
  int64_t images = 0;
  int resumes = 0;  // how many times the job was resumed from a state
  // The training-memory peak so far (bytes; TrainingPeak), -1 before the first training step.
  int64_t peak_train = -1, peak_baseline = 0, peak_reserved = 0;
};

// The state file of a job key under out_dir.
std::string job_state_path(const std::string& out_dir, const std::string& job_key);

// Writes the state atomically. The trainer's optimizer and the method's tensors are read as they
// are now; the random generators' states are taken now too (call at a loop boundary).
void save_job_state(const std::string& path, const std::string& job_key, const LoopProgress& progress, Method& method,
                    torch::optim::AdamW& optimizer, torch::Device device);

// Loads the state written for `job_key` into the method, the optimizer and the generators and
// returns the loop's progress; nullopt (after a warning on stderr naming the file and the reason)
// when the file is missing, unreadable or does not match this job (another key, method, tensor
// names or shapes) — nothing is changed then and the job trains from the start.
std::optional<LoopProgress> load_job_state(const std::string& path, const std::string& job_key, Method& method,
                                           torch::optim::AdamW& optimizer, torch::Device device);

// Saves a training job's state at epoch boundaries at most every `every_min` minutes, and at once
// when a stop was requested. Inactive without a path (no --out, --dp, or --state-every off).
class StateSaver {
 public:
  StateSaver(std::string path, std::string key, double every_min, Trainer& trainer, std::string label);
  bool active() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  // At an epoch boundary: whether the interval has passed since the last save.
  bool due() const;
  // Saves `p` (with the trainer's peak so far, paused meanwhile: host copies are not training memory).
  void save(const LoopProgress& p);

 private:
  std::string path_, key_;
  double every_s_;
  Trainer& trainer_;
  std::string label_;
  SteadyClock::time_point last_;
};

}  // namespace petl

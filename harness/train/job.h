// One training job: a pure function of a typed JobSpec → one flat result record (results/record.h),
// plus a checkpoint of the trainable tensors under the reference code's names.
//
// The pieces, as google/benchmark's BenchmarkRunner and timm's train.py split them:
//   resolve_job()       the one place a spec becomes effective settings: recipe file + the recipe's
//                       per-method overrides + the method's per-task values + --set + flags, the
//                       task, threads and device. `petl run`, `eval`, `bench`, `demo` and the sweep
//                       planner all go through it.
//   build_job_method()  the one place a method is built for a resolved job (MethodContext).
//   FeatureSource       where a split's inputs come from: images through the live backbone or
//                       frozen features from a cache (harness/train/feature_source.h).
//   Trainer             train_one_epoch() and evaluate() (harness/train/trainer.h).
//   run_job()           resolve → backbone → method → sources → epochs → record.
#pragma once
#include <torch/torch.h>

#include <limits>
#include <map>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/settings.h"
#include "core/threads.h"
#include "datasets/vtab.h"
#include "harness/train/recipe.h"
#include "methods/method.h"
#include "models/backbone.h"
#include "results/record.h"

namespace petl {

struct JobSpec {
  std::string method;
  std::string task;
  std::string data_root;      // empty: no data (bench, sweep planning); the task is then a name only
  std::string backbone_file;  // empty: the embedded backbone (unless arch is given)
  std::string arch;           // timm name; with no backbone file → random weights (dry-run only)
  std::string recipe;         // empty: the method's default recipe
  std::string protocol = "best_of_10";  // best_of_10 | final
  std::string out_dir;        // records (results.jsonl), checkpoints/, logs
  // kRecipeValue: the recipe's value; anything else given is validated (epochs, batch ≥ 1, seed ≥ 0).
  static constexpr int kRecipeValue = std::numeric_limits<int>::min();
  int epochs = kRecipeValue, batch_size = kRecipeValue, seed = kRecipeValue;
  int threads = 0;            // 0: cores available to the process
  std::string device = "cpu"; // cpu | cuda | cuda:N (CUDA LibTorch builds only)
  // fp32 | bf16: the forward passes (frozen and trainable) under bfloat16 autocast
  // (harness/train/precision.h); part of the job key and of a feature cache's identity when bf16.
  std::string precision = "fp32";
  std::vector<std::string> set;  // key=value overrides (recipe keys and method keys)
  bool dry_run = false;
  bool skip_bad = false;      // skip undecodable / missing images (counted in the record)
  bool progress = true;
  bool save_checkpoint = true;
  bool reuse_done = false;    // an ok record with the same job key in out_dir: return it, train nothing
  int64_t limit_train = -1, limit_test = -1;  // for tests and benchmarks
  // Train from frozen-backbone features cached in this directory (built when missing) instead of
  // live backbone passes; only for methods whose needs() are cacheable. Empty: live.
  std::string feature_cache;
  std::string cache_dtype = "float32";  // float32 (exact: same losses and logits as live) | float16
  // The train split's features are held in memory in their stored dtype; when they would take
  // more than this many bytes the job trains live instead and its record says why. 0: half of
  // the memory available when the job starts.
  int64_t feature_memory_budget = 0;
  // Mid-job state (harness/train/job_state.h) in <out_dir>/state/: saved at the first epoch
  // boundary at least this many minutes after the last save (0: every epoch; < 0: never) and
  // when a stop signal arrives; with reuse_done a job resumes from it.
  double state_every_min = 10;
  // Micro-batches of at most this many images per rank, gradients accumulated (0: whole batch), or
  // chosen from a memory budget in bytes (harness/train/memory_budget.h; 0: none). Both are part of
  // the job key when set (as --dp is): the same steps up to float summation order, but a budget may
  // not fit at all.
  int micro_batch = 0;
  int64_t memory_budget = 0;
  // Data parallelism over this many MPI ranks (the job runs under mpirun -np dp; rank 0 writes).
  int dp = 1;
  std::vector<std::string> argv;  // for provenance
};

// The effective recipe of a method: its recipe (or `recipe_name`) with the recipe's per-method
// overrides, then the method's per-task reference values (below --set), then --set and the
// --epochs / --batch-size / --seed flags (a changed epoch count keeps the warmup and cooldown
// proportions unless they are given).
struct EffectiveRecipe {
  Recipe recipe;
  std::map<std::string, std::string> task_overrides;  // per-task values applied (recorded)
  Settings requested;  // --set as given (recorded)
  Settings settings;   // --set + the flags; method keys are read from it (unknown keys are errors)
};
EffectiveRecipe resolve_recipe(const std::string& method, const std::string& recipe_name, const std::string& task,
                               const std::vector<std::string>& sets, int epochs = JobSpec::kRecipeValue,
                               int batch_size = JobSpec::kRecipeValue, int seed = JobSpec::kRecipeValue);

// A JobSpec with everything resolved that needs neither a backbone nor data.
struct ResolvedJob {
  JobSpec spec;
  const MethodInfo* info = nullptr;
  EffectiveRecipe eff;
  const Recipe& recipe() const { return eff.recipe; }
  data::TaskInfo task;  // found under data_root; without a data root only `name` is set
  int threads = 1;
  threads::ThreadChoice threading;  // how `threads` was chosen (core/threads.h), for provenance
  torch::Device device{torch::kCPU};
  int cuda_index = -1;  // the device's index for the memory meter, -1 on CPU
};
// Validates the spec (protocol, device, method, recipe keys) and resolves it; sets the intra-op
// thread count. Throws petl::Error naming the flag or key.
ResolvedJob resolve_job(const JobSpec& spec);

// The job's backbone (drop-path rate from the recipe); random weights only for dry runs.
JobBackbone load_job_backbone(const ResolvedJob& job);

// Builds the job's method on `backbone` (seeded with the recipe's seed first) and fails on any
// --set key that neither the recipe nor the method read, except those in `may_be_unused` (settings
// taken from a checkpoint's metadata, which may describe rather than configure).
std::shared_ptr<Method> build_job_method(const ResolvedJob& job, VisionTransformer backbone, int num_classes,
                                         const std::set<std::string>& may_be_unused = {});

// The job key: 16 hex digits of SHA-256 over the effective recipe and method settings, the
// backbone's SHA-256, the absolute data root and list hashes, limits, device, cache dtype and
// data-parallel ranks — never over how they were requested.
std::string job_key(const ResolvedJob& job, const std::map<std::string, std::string>& method_settings,
                    const std::string& backbone_sha256);

// Runs the job; on success appends the record to <out_dir>/results.jsonl (fsync'd) when out_dir
// is set and returns it. Errors propagate as exceptions (petl::Error for user mistakes).
Record run_job(const JobSpec& spec);

// A failed job's record (status "failed" with the message), same identity fields.
Record failed_record(const JobSpec& spec, const std::string& message);

// The provenance of a job run in this process (commit, host, LibTorch, time, argv, the OpenMP wait
// policy, and the threads: `threading` when they were chosen, else spec.threads as requested).
Provenance job_provenance(const JobSpec& spec, const threads::ThreadChoice* threading = nullptr);

// Appends a record to <out_dir>/results.jsonl (one write, fsync'd).
void append_record(const std::string& out_dir, const Record& record);

}  // namespace petl

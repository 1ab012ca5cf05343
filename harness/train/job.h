// One training job: a pure function of a typed JobSpec (harness/spec/job_spec.h) → one flat result
// record (results/record.h), plus a checkpoint of the trainable tensors under the reference code's
// names.
//
// The pieces, as google/benchmark's BenchmarkRunner and timm's train.py split them:
//   resolve_job()       the one place a spec becomes effective settings: recipe file + the recipe's
//                       per-method overrides + the method's per-task values + --set + flags, the
//                       task, threads and device. `petl run`, `eval`, `bench`, `demo` and the sweep
//                       planner all go through it.
//   build_job_method()  the one place a method is built for a resolved job (MethodContext).
//   FeatureSource       where a split's inputs come from: images through the live backbone or
//                       frozen features from a cache (harness/train/feature_source.h).
//   Trainer             the epoch loop's iterations and evaluations (harness/train/trainer.h).
//   JobRunner           the run of one job in named steps, shared by run_job and bundles
//                       (harness/train/job_runner.h).
//   run_job()           resolve → backbone → method → sources → epochs → record.
#pragma once
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/settings.h"
#include "core/threads.h"
#include "datasets/vtab.h"
#include "harness/spec/job_spec.h"
#include "harness/train/recipe.h"
#include "methods/method.h"
#include "models/backbone.h"
#include "results/record.h"

namespace petl {

// The effective recipe of a method: its recipe (or `recipe_name`) with the recipe's per-method
// overrides, then the method's per-task reference values (below --set), then --set and the
// --epochs / --batch-size / --seed flags (a changed epoch count keeps the warmup and cooldown
// proportions unless they are given).
struct EffectiveRecipe {
  Recipe recipe;
  int recipe_epochs = 0;  // the recipe's own length (with per-task values), before --epochs / --set epochs
  std::map<std::string, std::string> task_overrides;  // per-task values applied (recorded)
  Settings requested;                                 // --set as given (recorded)
  Settings settings;  // --set + the flags; method keys are read from it (unknown keys are errors)
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
  // Protocol val_select's final run (harness/train/selection.h): what it chose from and what it
  // chose (the record's "selection"); spec then holds the chosen settings and epoch count.
  nlohmann::json selection;
};
// Validates the spec (threads, dp, device, method, recipe keys) and resolves it; sets the intra-op
// thread count and the process's precision. Throws petl::Error naming the flag or key.
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

// A failed job's record (status failed with the message), same identity fields.
Record failed_record(const JobSpec& spec, const std::string& message);

// The provenance of a job run in this process (commit, host, LibTorch, time, argv, the OpenMP wait
// policy, and the threads: `threading` when they were chosen, else spec.threads as requested).
Provenance job_provenance(const JobSpec& spec, const threads::ThreadChoice* threading = nullptr);

// Appends a record to <out_dir>/results.jsonl (one write, fsync'd).
void append_record(const std::string& out_dir, const Record& record);

}  // namespace petl

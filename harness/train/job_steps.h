// The steps of run_job (harness/train/job.h), shared with run_bundle (harness/train/bundle.h),
// which composes them differently: many jobs on one backbone and one set of feature sources, and
// one test pass for the snapshots of all of them. Internal to harness/train.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "harness/train/feature_cache.h"
#include "harness/train/feature_source.h"
#include "harness/train/job.h"
#include "harness/train/trainer.h"

namespace petl::job_steps {

// The last ok record with this job key in <out_dir>/results.jsonl whose checkpoint (if any) still
// exists, or nullopt (a torn last line is cut first).
std::optional<Record> find_finished(const std::string& out_dir, const std::string& key);

// Identity, settings, backbone and provenance: everything known before training.
Record record_header(const ResolvedJob& job, Method& method, const JobBackbone& bb);

// best_of_10, final and the headline accuracy from r.evals.
void set_accuracies(Record& r, int eval_every);

// The record's data section (root, task, lists' hashes, sizes, skipped samples).
nlohmann::json data_section(const ResolvedJob& job, int num_classes, int image_size, const FeatureSources& src);

// Saves the method's checkpoint tensors under <out>/checkpoints/ and sets r.checkpoint.
void save_checkpoint(const ResolvedJob& job, Method& method, Record& r, int num_classes);

// Removes <out_dir>/state/<key>.safetensors if present.
void remove_job_state(const std::string& out_dir, const std::string& key);

// Snapshots whose evaluation a bundle runs later, in its one test pass.
struct DeferredEval {
  std::vector<Snapshot> snapshots;
  CacheTaps taps;  // what their evaluation needs from the test split
};

// Trains the job's epochs (resuming from `state_path` when the spec says so) and evaluates them,
// filling r's evals, losses, memory and timing; returns the data-parallel rank. Sets r.status to
// "does_not_fit" when a memory budget cannot be met. With `deferred`, snapshots are moved there
// unevaluated (after the state is saved) instead of being evaluated.
int train_and_evaluate(const ResolvedJob& job, Method& method, VisionTransformer backbone, const FeatureSources& src,
                       Record& r, int image_size, const std::string& state_path, DeferredEval* deferred);

// With spec.reuse_done and an out_dir: the finished record of `key` there (marked reused; a stale
// state of the job removed), else nullopt.
std::optional<Record> reuse_finished(const ResolvedJob& job, const std::string& key);

// petl::Error when the test split has a label outside the train split's classes.
void check_test_labels(const ResolvedJob& job, const FeatureSources& src, int num_classes);

// The record's data and accuracies (not for does_not_fit), wall time; with an out_dir (rank 0):
// the checkpoint, the record appended to <out_dir>/results.jsonl, the job's state removed.
void finish_record(const ResolvedJob& job, Method& method, Record& r, const FeatureSources& src, int num_classes,
                   int image_size, double wall_s, int rank);

}  // namespace petl::job_steps

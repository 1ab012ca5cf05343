// A bundle: several training jobs on one task, run one after another by one process (`petl
// bundle`; `petl sweep` gives one child per bundle of the query-only jobs that share a feature
// cache). What they share is loaded once — the backbone, the decoded or cached train split (its
// features resident in memory) and the test split — and ONE pass over the test split evaluates
// every snapshot of every job whose evaluation runs from frozen-backbone features (linear, vqt,
// synqt: trainable-tensor snapshots at each evaluation epoch, harness/train/trainer.h). Jobs whose
// evaluation needs their own backbone pass (heavy methods) evaluate as `petl run` does.
//
// Each job stays itself: its own job key, record (appended to its own <out>/results.jsonl),
// checkpoint and mid-job state. With reuse_done (--resume) a job with a finished record is
// reused, a stopped one continues from its state; a job's state is saved when its training ends,
// so a bundle stopped (SIGTERM / SIGUSR2 / SIGINT) or killed later never trains it again — only
// the test pass is repeated. A job that fails gets its failed record and the others go on.
// Records carry a `bundle` section (members, position, the shared pass's seconds; each job's
// timing.eval_s holds its share of the pass).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "harness/train/job.h"

namespace petl {

struct BundleOutcome {
  std::string method, task;
  std::optional<Record> record;  // ok, does_not_fit or reused; nullopt when the job failed
  std::string error;             // why it failed (its failed record was written)
};

// Runs the jobs (same data root, task, backbone, device and threads: petl::Error otherwise, before
// any work). A stop signal saves the state of the job in training and ends the process by that
// signal (harness/train/job_state.h); `petl bundle ... --resume` continues.
std::vector<BundleOutcome> run_bundle(const std::vector<JobSpec>& specs);

}  // namespace petl

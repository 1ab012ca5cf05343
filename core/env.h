// Every environment variable petl reads, in one documented list (also in README.md), and the one
// accessor for them. No other file calls getenv().
//
//   PETL_CONFIG_DIR        directory with recipes.yaml and the per-task data files (default:
//                          <exe>/../config, else the source tree's config/)
//   PETL_RESULTS_DIR       directory with the curated reference CSV (vpetl_bench_vtab1k.csv) used by
//                          `petl report` (default: <exe>/../results, else the source tree's results/)
//   PETL_EMBEDDED_BACKBONE the embedded backbone file (default: <config>/../assets/petl_vit_mini_p8_32.safetensors)
//   PETL_NO_PROGRESS       "1": no progress bars (sweep children get it)
//   PETL_PROGRESS_EVERY_S  off a terminal: seconds between progress lines (default 30; core/progress.h)
//   PETL_SWEEP_PARENT_PID  set by the sweep farm for its children: a child dies with its rank
//                          (prctl(PR_SET_PDEATHSIG)) when this is its parent's pid
//   PETL_SWEEP_JOB_KEY     set by the sweep farm: the child's job key (logs)
//   PETL_SWEEP_RANK        set by the sweep farm: the rank that runs the child (logs)
//   PETL_THREADS_BY        set by the job farm (`petl sweep`, `petl demo`) for its children: how their
//                          threads were chosen (recorded in provenance.threads_chosen_by)
//   PETL_WAIT_POLICY_BY_PETL set by petl itself when it started the OpenMP runtime under its default
//                          wait policy (core/threads.h); provenance then says "petl" set it
//   PETL_TEST_STOP_AFTER   tests only: N > 0 makes the N-th stop check of a training loop (one before
//                          every iteration and every evaluation batch, core/stop.h) act as if SIGTERM
//                          had arrived, so tests stop a job at an exact point
//
// Read, never required: OMP_NUM_THREADS (the thread count when --threads is 0), OMP_WAIT_POLICY and
// GOMP_SPINCOUNT (a user's OpenMP wait policy: petl then leaves the runtime's waiting alone).
#pragma once
#include <string>

namespace petl::env {

constexpr const char* kConfigDir = "PETL_CONFIG_DIR";
constexpr const char* kResultsDir = "PETL_RESULTS_DIR";
constexpr const char* kEmbeddedBackbone = "PETL_EMBEDDED_BACKBONE";
constexpr const char* kNoProgress = "PETL_NO_PROGRESS";
constexpr const char* kProgressEveryS = "PETL_PROGRESS_EVERY_S";
constexpr const char* kSweepParentPid = "PETL_SWEEP_PARENT_PID";
constexpr const char* kSweepJobKey = "PETL_SWEEP_JOB_KEY";
constexpr const char* kSweepRank = "PETL_SWEEP_RANK";
constexpr const char* kThreadsBy = "PETL_THREADS_BY";
constexpr const char* kWaitPolicyByPetl = "PETL_WAIT_POLICY_BY_PETL";
constexpr const char* kTestStopAfter = "PETL_TEST_STOP_AFTER";
constexpr const char* kOmpNumThreads = "OMP_NUM_THREADS";
constexpr const char* kOmpWaitPolicy = "OMP_WAIT_POLICY";
constexpr const char* kGompSpincount = "GOMP_SPINCOUNT";

// The variable's value, or "" when unset.
std::string get(const char* name);
// Set and not one of "", "0", "false", "off", "no".
bool flag(const char* name);
// Sets the variable for this process and the children it starts (setenv, overwriting).
void set(const char* name, const std::string& value);

}  // namespace petl::env

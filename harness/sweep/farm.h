// The job farm: runs a list of jobs as CHILD PROCESSES of the ranks of an MPI communicator (the
// sweep), or of this one process (the demo), so that a crash, an out-of-memory kill or a time
// limit of one job never takes a rank down and no failure hangs the other ranks. The farm knows no
// petl flag: a job is an opaque argv; what becomes of an outcome (a journal line, a table row) is
// the reporter's business (harness/sweep/farm_reporter.h). Torch-free.
//
// The parts, one file each:
//   job_graph.h      which job may run next (dependencies, priorities, bundles, resume); no MPI
//   process_pool.h   the child processes of one rank: spawn, poll, time limits, stop, outcomes
//   farm_transport.h the messages between rank 0 and the other ranks (MPI, or none for one process)
//   farm_reporter.h  what the caller does with outcomes (the sweep: its journal and progress lines)
//   farm.cpp         the loops of rank 0 (the scheduler) and of the other ranks (workers)
//
// Roles. Every rank runs jobs, `slots` at a time. Rank 0 also schedules: it keeps the ready queue
// (longest first), hands the next job to whichever rank reports a free slot, runs jobs itself (its
// own children are polled, never waited for) and is the only rank that reports (the reporter).
// Only rank 0's `jobs` argument is read; other ranks receive each job as a message.
//
// Children (process_pool.h): posix_spawn of `program argv...` in a new process group, stdin
// /dev/null, stdout+stderr appended to job.log_file (after a header line). Their environment:
// OMP/MKL/OPENBLAS_NUM_THREADS = the rank's threads per job (a petl child with --threads 0 takes
// it), PETL_THREADS_BY = FarmOptions::threads_by, OMPI_*/PMIX_*/PMI_* removed (a child never joins
// the MPI job), PETL_SWEEP_PARENT_PID (a child may use it with prctl(PR_SET_PDEATHSIG) to die with
// its rank), PETL_SWEEP_JOB_KEY, PETL_SWEEP_RANK, PETL_NO_PROGRESS=1, and FarmOptions::env. The
// token "{device}" in argv becomes "cuda:<node-local rank % gpus_per_node>" (or "cpu" when
// gpus_per_node is 0); the local rank comes from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
// Threads per job (threads == 0): the CPUs in this rank's affinity mask divided by the number of
// ranks on the node that have the very same mask (ranks bound to their own cores keep all of
// theirs; unbound ranks share the node), divided by the slots, at least 1.
//
// Bundles (FarmJob::bundle): rank 0 dispatches every ready job of a bundle together as one child
// whose argv FarmOptions::bundle_command makes from the members' argv; each member's outcome is read
// from its own result_file (a new failed record gives its error; no record gives the child's exit
// status or signal) and reported under its own key.
// Results. After a child exits 0, the last complete line of job.result_file with status "ok" is
// the job's record (the child appends it; with --resume it may be an earlier one), or a
// does_not_fit one written since it started. A job without result_file is ok on exit 0. Exit ≠ 0,
// a signal, a time limit or no ok record → failed, with an error that says why ("exit status N:
// <the child's own failed record's error>", "killed by signal 9 (out of memory or killed)", "time
// limit of N s exceeded") followed by the last 20 lines of the attempt's log.
// Time limit: SIGTERM to the child's process group, SIGKILL kill_after_s (10 s) later.
// Dependencies: a job whose dependency failed fails without running ("feature cache <key> failed:
// ..."). A job others depend on runs only when one of them still has to run.
// Resume: jobs the reporter's earlier() says finished are not run again; failed ones neither unless
// retry_failed.
//
// Stop. SIGTERM, SIGUSR2 and SIGINT set a flag (async-signal-safe handler). The rank that sees it
// tells rank 0 and stops its own children; rank 0 stops dispatching and tells every rank to stop;
// every rank sends SIGTERM to its children's process groups, SIGKILL after grace_s, does not report
// the interrupted jobs, and the farm returns kFarmInterrupted on every rank. A job that finished
// before the stop reached its rank is still reported.
//
// Exit codes (the same on every rank): kFarmOk 0 — every job ok; kFarmJobsFailed 1 — the farm ran
// to the end but some job is failed (this run or an earlier one, when not retried);
// kFarmInterrupted 143 — stopped by a signal, re-run the same command to resume;
// kFarmError 2 — the reporter could not record an outcome (its message is printed).
#pragma once
#include <mpi.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace petl {

constexpr int kFarmOk = 0;
constexpr int kFarmJobsFailed = 1;
constexpr int kFarmError = 2;
constexpr int kFarmInterrupted = 143;

// The argv token a rank replaces by its job device.
constexpr const char* kFarmDeviceToken = "{device}";

struct FarmJob {
  std::string key;
  std::vector<std::string> argv;   // arguments after the program (opaque to the farm)
  double cost = 0;                 // larger runs first
  std::string depends_on;          // key of a job that must be ok first, or ""
  std::vector<std::string> after;  // more jobs that must be ok first (a val_select final run's searches)
  bool is_cache = false;           // a job others depend on (its outcome carries no record)
  nlohmann::json identity;         // what the reporter needs to name the job (opaque to the farm)
  std::string result_file;         // where the child appends its record; "" → ok on exit 0
  std::string log_file;            // stdout + stderr of the child (appended)
  // Bundles: jobs with the same non-empty `bundle` id that are ready together run as ONE child
  // (FarmOptions::bundle_command); each is still reported, resumed and failed by its own key.
  // The dispatched unit is a FarmJob whose `members` are those jobs (its key "bundle:<id>", its log
  // <dir of the first member's log>/bundle-<id>.log, its time limit job_timeout_s × members).
  std::string bundle;
  std::vector<FarmJob> members;
};

nlohmann::json farm_job_to_json(const FarmJob& j);
FarmJob farm_job_from_json(const nlohmann::json& j);

// How one job ended: on which rank, how long it ran, ok or why not, and its record.
struct FarmOutcome {
  std::string key;
  bool ok = false;
  std::string error;      // failed: why, with the end of the log
  std::string ended;      // how the child ended when not with exit status 0 ("exit status 2",
                          // "killed by signal 9 (...)", "time limit of N s exceeded"); "" otherwise
  nlohmann::json record;  // the child's record (ok, does_not_fit, or its own failed one); null: none
  int rank = -1;          // -1: never ran (a failed dependency)
  std::string host;
  int threads = 0;
  double wall_s = 0;
  std::vector<std::string> argv;  // the child's whole command line
  std::string time_utc;
  std::vector<FarmOutcome> members;  // a bundle's outcomes, one per member job (then nothing else)
};
nlohmann::json farm_outcome_to_json(const FarmOutcome& o);
FarmOutcome farm_outcome_from_json(const nlohmann::json& j);

// Whether one more child may start now on this rank (besides a free slot). The demo's: only while
// a core is free.
class AdmissionPolicy {
 public:
  virtual ~AdmissionPolicy() = default;
  virtual bool may_start(int running) = 0;
  virtual void job_ended() {}
};

class FarmReporter;

struct FarmOptions {
  std::string program;               // binary of the children (petl sweep passes /proc/self/exe, resolved)
  std::string label = "petl sweep";  // who runs the children, in each attempt's header line of a log
  int slots = 1;                     // children at once per rank
  int threads = 0;                   // per job; 0 → auto (see above)
  std::string threads_by;            // PETL_THREADS_BY of the children: how their threads were chosen
  int gpus_per_node = 0;             // > 0: the token {device} becomes cuda:<local rank % gpus_per_node>
  double job_timeout_s = 0;          // 0 → no limit
  double kill_after_s = 10;          // time limit: SIGTERM → SIGKILL delay
  double grace_s = 20;               // stop by signal: SIGTERM → SIGKILL delay
  bool retry_failed = false;
  double poll_s = 0.02;                        // sleep between polls when nothing happens
  std::map<std::string, std::string> env;      // extra environment for children
  std::shared_ptr<AdmissionPolicy> admission;  // null: every free slot may start a child
  // The argv of one child running several jobs of a bundle, from the members' argv (required when
  // the jobs have bundle ids).
  std::function<std::vector<std::string>(const std::vector<std::vector<std::string>>&)> bundle_command;
};

// Runs the jobs on the ranks of `comm` (collective); outcomes go to `reporter` on rank 0 (other
// ranks may pass any reporter: it is not called). Returns the exit code (same on every rank).
int run_farm(const std::vector<FarmJob>& jobs, const FarmOptions& opts, FarmReporter& reporter, MPI_Comm comm);
// The same in this one process (no MPI): opts.slots children at once.
int run_local_farm(const std::vector<FarmJob>& jobs, const FarmOptions& opts, FarmReporter& reporter);

// Installs the SIGTERM/SIGUSR2/SIGINT handler (the farm does it too; call it earlier to catch a
// signal during planning). The flag stays set until farm_clear_stop_request().
void install_farm_signal_handlers();
int farm_stop_signal();          // 0 or the signal that requested the stop
void farm_clear_stop_request();  // for tests and for a second sweep in one process

}  // namespace petl

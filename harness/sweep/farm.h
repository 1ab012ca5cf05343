// The sweep farm: runs a list of jobs as CHILD PROCESSES of the ranks of an MPI communicator, so
// a crash, an out-of-memory kill or a time limit of one job never takes a rank down and no
// failure hangs the other ranks. Torch-free.
//
// Roles. Every rank runs jobs, one at a time. Rank 0 also schedules: it keeps a ready queue
// (dependencies satisfied) sorted by cost, longest first (a cache build counts the cost of the
// jobs waiting for it); hands the next job to whichever rank
// reports idle; runs jobs itself (its own child is polled, never waited for) and is the only
// writer of the journal (sweep_journal.h). With one process everything happens in rank 0.
// Only rank 0's `jobs` argument is read; workers receive each job as a message.
//
// Messages (MPI tags, payload a string): worker → 0: kTagIdle (ready for a job), kTagResult
// (JSON outcome of the job just run; also means idle), kTagSignal (this rank got SIGTERM/SIGUSR2/
// SIGINT; payload the signal number), kTagBye (the last message of a worker); 0 → worker: kTagJob
// (JSON job), kTagStop (JSON {"code": exit code}: finish or stop now; sent once per worker).
// Every send is an MPI_Isend completed before run_farm returns; rank 0 keeps receiving until every
// worker's kTagBye, so no message is left unmatched at MPI_Finalize.
//
// Children. posix_spawn (no fork of the MPI process) of `program argv...` in a new process group,
// stdin /dev/null, stdout+stderr appended to job.log_file (after a header line). The token
// "{threads}" in argv is replaced by the rank's thread count; OMP/MKL/OPENBLAS_NUM_THREADS are
// set to it; OMPI_*/PMIX_*/PMI_* variables are removed so a child never joins the MPI job;
// PETL_SWEEP_PARENT_PID (a child may use it with prctl(PR_SET_PDEATHSIG) to die with its rank),
// PETL_SWEEP_JOB_KEY, PETL_SWEEP_RANK and PETL_NO_PROGRESS=1 are set. With gpus_per_node > 0, training jobs (not cache jobs) get `--device cuda:<local rank %
// gpus_per_node>`; the local rank comes from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
// Threads per rank (threads == 0): the CPUs in this rank's affinity mask divided by the number
// of ranks on the node that have the very same mask (ranks bound to their own cores keep all of
// theirs; unbound ranks share the node), at least 1.
//
// Bundles (FarmJob::bundle): rank 0 dispatches every ready job of a bundle together as one child;
// each member's outcome is read from its own result_file as above (a new failed record gives its
// error; no record gives the child's exit status or signal) and journaled under its own key.
// Results. After a child exits 0, the last complete line of job.result_file with status "ok" is
// the job's record (the child `petl run` appends it; with --resume it may be an earlier one). A
// job without result_file (cache builds) is ok on exit 0. Exit ≠ 0, a signal, a time limit or
// no ok record → a failed record whose error says why ("exit status N: <the child's own failed
// record's error>", "killed by signal 9 (SIGKILL: out of memory or killed)", "time limit of N s
// exceeded") followed by the last 20 lines of the attempt's log.
// Time limit: SIGTERM to the child's process group, SIGKILL kill_after_s (10 s) later.
// Dependencies: a job whose cache job failed is recorded failed ("feature cache <key> failed:
// ...") without running. A cache job runs only when some job depending on it still has to run.
//
// Resume. Rank 0 reads the journal first (and other_journals, read-only): a torn last line of
// its own journal is cut (warning); jobs with an ok line are skipped, jobs with a failed line too unless retry_failed. An ok key is never written
// twice. The key set after any number of interrupted runs equals that of one uninterrupted run.
//
// Stop. SIGTERM, SIGUSR2 and SIGINT set a flag (async-signal-safe handler). The rank that sees it
// tells rank 0 (kTagSignal) and stops its own child; rank 0 stops dispatching and sends kTagStop
// to every worker; every rank sends SIGTERM to its child's process group, SIGKILL after grace_s,
// does not record the interrupted job, and run_farm returns kFarmInterrupted on every rank. A
// job that finished before the stop reached its rank is still recorded.
//
// Exit codes (the same on every rank): kFarmOk 0 — every job ok; kFarmJobsFailed 1 — the sweep
// ran to the end but some job is failed (this run or an earlier one, when not retried);
// kFarmInterrupted 143 — stopped by a signal, re-run the same command to resume;
// kFarmError 2 — rank 0 could not read or write the journal (message printed).
#pragma once
#include <mpi.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/sweep/sweep_config.h"

namespace petl {

constexpr int kFarmOk = 0;
constexpr int kFarmJobsFailed = 1;
constexpr int kFarmError = 2;
constexpr int kFarmInterrupted = 143;

struct FarmJob {
  std::string key;
  std::vector<std::string> argv;  // arguments after the program; "{threads}" is substituted
  double cost = 0;                // larger runs first
  std::string depends_on;         // key of a (cache) job that must be ok first, or ""
  bool is_cache = false;
  nlohmann::json identity;        // training: method, task, seed, protocol (+ sets);
                                  // cache: task, taps, splits, dtype
  std::string result_file;        // where the child appends its record; "" → ok on exit 0
  std::string log_file;           // stdout + stderr of the child (appended)
  // Bundles: training jobs with the same non-empty `bundle` id that are ready together run as ONE
  // child, `petl bundle --job <argv as JSON> ...` (harness/train/bundle.h), which writes each job's
  // record to its own result_file; each job is still journaled, resumed and failed by its own key.
  // The dispatched unit is a FarmJob whose `members` are those jobs (its key "bundle:<id>", its log
  // <logs>/bundle-<id>.log, its time limit job_timeout_s × members).
  std::string bundle;
  std::vector<FarmJob> members;
};

nlohmann::json farm_job_to_json(const FarmJob& j);
FarmJob farm_job_from_json(const nlohmann::json& j);

// The plan's jobs as farm jobs (same order).
std::vector<FarmJob> farm_jobs_from_plan(const std::vector<SweepJob>& jobs, const std::string& protocol);

struct FarmOptions {
  std::string program;              // binary of the children (petl sweep passes /proc/self/exe, resolved)
  std::string journal;              // <out>/results.jsonl, written by rank 0 only
  std::vector<std::string> other_journals;  // read, never written: ok/failed there count too
                                            // (the journals of other shards of the same sweep)
  std::string sweep_name;           // "sweep" field of every record
  int threads = 0;                  // per rank; 0 → auto (see above)
  int gpus_per_node = 0;            // > 0: training jobs get --device cuda:<local rank % gpus_per_node>
  double job_timeout_s = 0;         // 0 → no limit
  double kill_after_s = 10;         // time limit: SIGTERM → SIGKILL delay
  double grace_s = 20;              // stop by signal: SIGTERM → SIGKILL delay
  bool retry_failed = false;
  double poll_s = 0.02;             // sleep between polls when nothing happens
  nlohmann::json provenance = nlohmann::json::object();  // extra provenance (git_commit, libtorch_version)
  std::map<std::string, std::string> env;  // extra environment for children
  bool verbose = true;              // rank 0 prints progress lines and the summary on stdout
};

// Runs the jobs; collective over comm. Returns the exit code (same on every rank).
int run_farm(const std::vector<FarmJob>& jobs, const FarmOptions& opts, MPI_Comm comm);

// Installs the SIGTERM/SIGUSR2/SIGINT handler (run_farm does it too; call it earlier to catch a
// signal during planning). The flag stays set until farm_clear_stop_request().
void install_farm_signal_handlers();
int farm_stop_signal();            // 0 or the signal that requested the stop
void farm_clear_stop_request();    // for tests and for a second sweep in one process


}  // namespace petl

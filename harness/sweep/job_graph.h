// The farm's job graph (harness/sweep/farm.h): which of a list of jobs may run next. Pure
// bookkeeping — no MPI, no processes — so it is unit-tested on its own (tests/io/test_job_graph.cpp).
//
// States: a job waits for its dependencies (depends_on and after), is ready, runs, and ends ok or failed; a job others
// depend on is skipped when none of them still has to run. Jobs that earlier runs finished start ok, those that failed
// start failed (unless retry_failed). Ready jobs go longest first: a job's cost, plus for a job others depend on the
// cost of every job waiting for it; the jobs of a bundle go at the bundle's total cost, and are taken together.
#pragma once
#include <cstddef>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/enums.h"
#include "harness/sweep/farm.h"

namespace petl {

// What an earlier run recorded for a key (the sweep's journals).
struct EarlierOutcome {
  RecordStatus status = RecordStatus::kFailed;  // ok, does_not_fit (both finished) or failed
  std::string error;                            // a failed one's error
};

class JobGraph {
 public:
  enum class State { kWait, kReady, kRunning, kOk, kFailed, kSkipped };

  // A job that fails without running, and why (its dependency failed or is missing).
  struct Unrunnable {
    size_t job = 0;
    std::string why;
  };

  // petl::Error when a key appears twice.
  JobGraph(std::vector<FarmJob> jobs, const std::map<std::string, EarlierOutcome>& earlier, bool retry_failed);

  // Counts at the start: finished and failed earlier, dependencies nobody needs, jobs to run.
  int earlier_ok() const { return earlier_ok_; }
  int earlier_failed() const { return earlier_failed_; }
  int unneeded() const { return unneeded_; }
  int to_run() const { return to_run_; }
  // The jobs that cannot run from the start (their dependency failed earlier or is absent); the
  // caller records each and calls fail_without_running(). Returned once.
  std::vector<Unrunnable> take_unrunnable();

  bool has_ready() const { return !ready_.empty(); }
  // The next unit of work: the first ready job, or with a bundle id every ready job of its bundle
  // (in plan order). They are running from now on.
  std::vector<size_t> take_next();
  // A running job ended. Returns the jobs that now fail without running (its dependents, when it
  // failed); the others waiting for it become ready.
  std::vector<Unrunnable> finish(size_t job, bool ok, const std::string& error);
  // A job that never ran is failed (the caller recorded why).
  void fail_without_running(size_t job);
  // Waiting, ready or running jobs.
  int unresolved() const;
  bool any_failed() const;

  const FarmJob& job(size_t i) const { return jobs_.at(i); }
  State state(size_t i) const { return state_.at(i); }
  size_t size() const { return jobs_.size(); }
  // The index of a key, or -1.
  long index_of(const std::string& key) const;
  // The dispatch priority of a job (see above).
  double priority(size_t i) const { return prio_.at(i); }

 private:
  void make_ready(size_t i);

  std::vector<FarmJob> jobs_;
  std::vector<State> state_;
  std::vector<double> prio_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::vector<size_t>> dependents_;
  std::vector<int> waiting_;  // per job: dependencies not yet ok
  std::deque<size_t> ready_;
  std::vector<Unrunnable> unrunnable_;
  int earlier_ok_ = 0, earlier_failed_ = 0, unneeded_ = 0, to_run_ = 0;
};

}  // namespace petl

// The child processes of one farm rank (harness/sweep/farm.h): up to `slots` at once, each a job's
// program started with posix_spawn in a process group of its own, polled without ever blocking,
// stopped at its time limit, and read back as a FarmOutcome (its result file and the end of its
// log). The one process pool of petl: `petl sweep` (each MPI rank) and `petl demo` run on it.
#pragma once
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "core/clock.h"
#include "harness/sweep/farm.h"

namespace petl {

// Where a pool runs and with how many threads per job.
struct RankInfo {
  int rank = 0, size = 1, local_rank = 0, local_size = 1, threads = 1;
  std::string host;
};

class ProcessPool {
 public:
  ProcessPool(const FarmOptions& opts, const RankInfo& info);
  ~ProcessPool();  // kills what still runs
  int running() const;
  bool busy() const { return running() > 0 || !held_.empty(); }
  // Whether one more job may start now: a free slot (and the admission policy agrees).
  bool may_start();
  // Starts the job in a free slot; an outcome right away when it cannot be started.
  std::optional<FarmOutcome> start(const FarmJob& job);
  // Time limits, exits and held outcomes: the outcomes of jobs that ended. `stopping`: a stop is
  // under way (held outcomes are dropped: those children were most likely stopped with the rank).
  std::vector<FarmOutcome> tick(bool stopping);
  // SIGTERM to every child's group now, SIGKILL after grace_s; their jobs are then not reported.
  void stop();
  // Last resort (exceptions): kill every child's group and reap it.
  void kill_now();

 private:
  struct Child {
    pid_t pid = -1;
    FarmJob job;
    std::vector<std::string> argv;  // the full command line
    SteadyClock::time_point start, kill_at;
    bool term_sent = false, kill_sent = false;
    enum Reason { kNone, kTimeout, kStop } reason = kNone;
    int64_t log_offset = 0, result_offset = 0;
    std::vector<int64_t> member_offsets;  // bundles: each member's result_file size at the start
  };
  struct Held {  // an outcome kept a moment (a child ended by a signal we did not send)
    FarmOutcome outcome;
    SteadyClock::time_point until;
  };

  std::optional<FarmOutcome> poll(Child& c);
  std::string spawn(Child& c);
  double time_limit_s(const Child& c) const;
  FarmOutcome outcome(const Child& c, bool ok, const std::string& error, const nlohmann::json& record,
                      const std::string& ended, const FarmJob* member = nullptr) const;
  FarmOutcome job_outcome(const Child& c, const FarmJob& job, int64_t offset, const std::string& failure,
                          bool single) const;
  FarmOutcome bundle_outcome(const Child& c, const std::string& failure) const;

  const FarmOptions& opts_;
  const RankInfo& info_;
  std::vector<Child> children_;
  std::vector<Held> held_;
};

}  // namespace petl

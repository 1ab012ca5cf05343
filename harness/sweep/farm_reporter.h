// What the farm's caller does with what the farm does (harness/sweep/farm.h), as google/benchmark's
// Reporter: the farm calls it on rank 0 only. SweepReporter is the sweep's: its journal (resume
// from it, one line per finished job: harness/sweep/sweep_journal.h) and its progress lines.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "harness/sweep/farm.h"
#include "harness/sweep/job_graph.h"
#include "harness/sweep/process_pool.h"
#include "harness/sweep/sweep_journal.h"

namespace petl {

class FarmReporter {
 public:
  virtual ~FarmReporter() = default;
  // Once, before anything runs: what earlier runs recorded, by key (empty: nothing).
  virtual std::map<std::string, EarlierOutcome> earlier() { return {}; }
  virtual void started(const JobGraph& graph, const RankInfo& info) {}
  // A job ended (o.rank == -1: it never ran: a dependency failed). `done` of `total` jobs to run
  // have ended. Throws petl::Error when the outcome cannot be recorded: the farm then stops with
  // kFarmError.
  virtual void finished(const FarmJob& job, const FarmOutcome& o, int done, int total) = 0;
  virtual void stopping(const std::string& why, double grace_s) {}
  // At the end: the graph's final states, this run's ok / failed counts, the exit code and, when
  // interrupted, by what.
  virtual void summary(const JobGraph& graph, int ok, int failed, int exit_code, const std::string& interrupted_by) {}
};

// The sweep's reporter: reads `journal` (a torn last line cut) and `other_journals` (the other
// shards', read only) for resume; writes one line per outcome to `journal` (never a second ok line
// for a key); prints a line per job and a summary on stdout when verbose.
class SweepReporter final : public FarmReporter {
 public:
  struct Options {
    std::string journal;
    std::vector<std::string> other_journals;
    std::string sweep_name;
    nlohmann::json provenance = nlohmann::json::object();  // the sweep's (git_commit, libtorch_version)
    bool retry_failed = false;                             // (for the start line: whether failed jobs run again)
    bool verbose = true;
  };
  explicit SweepReporter(Options o) : o_(std::move(o)) {}
  std::map<std::string, EarlierOutcome> earlier() override;
  void started(const JobGraph& graph, const RankInfo& info) override;
  void finished(const FarmJob& job, const FarmOutcome& o, int done, int total) override;
  void stopping(const std::string& why, double grace_s) override;
  void summary(const JobGraph& graph, int ok, int failed, int exit_code, const std::string& interrupted_by) override;

 private:
  void say(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  Provenance provenance(const FarmOutcome& o) const;
  nlohmann::json record_of(const FarmJob& job, const FarmOutcome& o) const;
  void print_line(const FarmJob& job, const FarmOutcome& o, const nlohmann::json& rec, int done, int total);

  Options o_;
  std::set<std::string> ok_keys_;
  SteadyClock::time_point start_ = SteadyClock::now();
};

}  // namespace petl

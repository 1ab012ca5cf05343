// The farm's job graph (see job_graph.h).
#include "harness/sweep/job_graph.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/text.h"

namespace petl {

namespace {
bool finished(RecordStatus s) { return s == RecordStatus::kOk || s == RecordStatus::kDoesNotFit; }

// Every job `j` waits for: its feature cache, then the jobs it runs after.
std::vector<std::string> dependencies(const FarmJob& j) {
  std::vector<std::string> d;
  if (!j.depends_on.empty()) d.push_back(j.depends_on);
  d.insert(d.end(), j.after.begin(), j.after.end());
  return d;
}

// How a dependency is named in messages.
std::string what_job(const FarmJob& j, const std::string& dep) {
  return (dep == j.depends_on ? "feature cache " : "search job ") + dep;
}
}  // namespace

JobGraph::JobGraph(std::vector<FarmJob> jobs, const std::map<std::string, EarlierOutcome>& earlier, bool retry_failed)
    : jobs_(std::move(jobs)), state_(jobs_.size(), State::kWait), prio_(jobs_.size(), 0.0) {
  for (size_t i = 0; i < jobs_.size(); ++i) {
    PETL_CHECK(!index_.count(jobs_[i].key), "sweep: sweep key ", jobs_[i].key, " appears twice in the plan");
    index_[jobs_[i].key] = i;
  }
  for (size_t i = 0; i < jobs_.size(); ++i) {
    auto it = earlier.find(jobs_[i].key);
    if (it == earlier.end()) continue;
    if (finished(it->second.status)) {
      state_[i] = State::kOk;
      ++earlier_ok_;
    } else if (!retry_failed) {
      state_[i] = State::kFailed;
      ++earlier_failed_;
    }
  }
  // A job others depend on runs only when one of them still has to run.
  std::set<std::string> needed;
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (state_[i] == State::kWait && !jobs_[i].depends_on.empty()) needed.insert(jobs_[i].depends_on);
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (state_[i] == State::kWait && jobs_[i].is_cache && !needed.count(jobs_[i].key)) {
      state_[i] = State::kSkipped;
      ++unneeded_;
    }
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (state_[i] == State::kWait) ++to_run_;
  // Priorities: a job's cost, plus for a dependency the cost of every job waiting for it (a cache on
  // the critical path of many jobs goes first); a bundle's jobs at the bundle's total cost.
  for (size_t i = 0; i < jobs_.size(); ++i) prio_[i] = jobs_[i].cost;
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (state_[i] == State::kWait)
      for (const auto& dep : dependencies(jobs_[i]))
        if (index_.count(dep)) prio_[index_[dep]] += jobs_[i].cost;
  std::map<std::string, double> bundle_cost;
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (state_[i] == State::kWait && !jobs_[i].bundle.empty()) bundle_cost[jobs_[i].bundle] += jobs_[i].cost;
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (state_[i] == State::kWait && !jobs_[i].bundle.empty()) prio_[i] = bundle_cost[jobs_[i].bundle];
  // Ready now, waiting for dependencies, or unable to run.
  waiting_.assign(jobs_.size(), 0);
  for (size_t i = 0; i < jobs_.size(); ++i) {
    if (state_[i] != State::kWait) continue;
    std::string why;
    for (const auto& dep : dependencies(jobs_[i])) {
      auto d = index_.find(dep);
      if (d == index_.end()) {
        auto e = earlier.find(dep);
        if (!(e != earlier.end() && finished(e->second.status)) && why.empty())
          why = what_job(jobs_[i], dep) + " is not part of this plan and has no ok record";
        continue;
      }
      dependents_[dep].push_back(i);
      if (state_[d->second] == State::kOk) continue;
      if (state_[d->second] == State::kFailed && why.empty()) {
        auto e = earlier.find(dep);
        why =
            what_job(jobs_[i], dep) + " failed: " + (e != earlier.end() ? first_line(e->second.error) : std::string());
      }
      ++waiting_[i];
    }
    if (!why.empty())
      unrunnable_.push_back({i, why});
    else if (waiting_[i] == 0)
      make_ready(i);
  }
}

std::vector<JobGraph::Unrunnable> JobGraph::take_unrunnable() { return std::exchange(unrunnable_, {}); }

void JobGraph::make_ready(size_t i) {
  state_[i] = State::kReady;
  auto pos = std::lower_bound(ready_.begin(), ready_.end(), i, [&](size_t a, size_t b) {
    if (prio_[a] != prio_[b]) return prio_[a] > prio_[b];
    return a < b;
  });
  ready_.insert(pos, i);
}

std::vector<size_t> JobGraph::take_next() {
  PETL_CHECK(!ready_.empty(), "JobGraph::take_next: no job is ready");
  const size_t i = ready_.front();
  ready_.pop_front();
  state_[i] = State::kRunning;
  std::vector<size_t> unit = {i};
  if (jobs_[i].bundle.empty()) return unit;
  for (auto it = ready_.begin(); it != ready_.end();) {
    if (jobs_[*it].bundle == jobs_[i].bundle) {
      state_[*it] = State::kRunning;
      unit.push_back(*it);
      it = ready_.erase(it);
    } else {
      ++it;
    }
  }
  std::sort(unit.begin(), unit.end());
  return unit;
}

std::vector<JobGraph::Unrunnable> JobGraph::finish(size_t i, bool ok, const std::string& error) {
  state_[i] = ok ? State::kOk : State::kFailed;
  std::vector<Unrunnable> out;
  auto deps = dependents_.find(jobs_[i].key);
  if (deps == dependents_.end()) return out;
  for (size_t d : deps->second) {
    if (state_[d] != State::kWait) continue;
    if (!ok)
      out.push_back({d, what_job(jobs_[d], jobs_[i].key) + " failed: " + first_line(error)});
    else if (--waiting_[d] == 0)
      make_ready(d);
  }
  return out;
}

void JobGraph::fail_without_running(size_t i) { state_[i] = State::kFailed; }

int JobGraph::unresolved() const {
  int n = 0;
  for (auto s : state_)
    if (s == State::kWait || s == State::kReady || s == State::kRunning) ++n;
  return n;
}

bool JobGraph::any_failed() const {
  return std::any_of(state_.begin(), state_.end(), [](State s) { return s == State::kFailed; });
}

long JobGraph::index_of(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? -1 : long(it->second);
}

}  // namespace petl

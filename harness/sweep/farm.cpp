// The farm's loops (see farm.h): rank 0's scheduler — the job graph, its own process pool, the
// other ranks' free slots, the reporter — and the workers of the other ranks.
#include "harness/sweep/farm.h"

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/system.h"
#include "core/text.h"
#include "harness/sweep/farm_reporter.h"
#include "harness/sweep/farm_transport.h"
#include "harness/sweep/job_graph.h"
#include "harness/sweep/process_pool.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

// ------------------------------------------------------------------ signals

namespace {
volatile sig_atomic_t g_stop_signal = 0;
extern "C" void farm_on_stop_signal(int sig) {
  if (!g_stop_signal) g_stop_signal = sig;
}
}  // namespace

void install_farm_signal_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = farm_on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGTERM, SIGUSR2, SIGINT}) sigaction(s, &sa, nullptr);
}
int farm_stop_signal() { return int(g_stop_signal); }
void farm_clear_stop_request() { g_stop_signal = 0; }

// ------------------------------------------------------------------ jobs and outcomes as messages

json farm_job_to_json(const FarmJob& j) {
  json o = {
      {"key", j.key},           {"argv", j.argv},         {"cost", j.cost},          {"depends_on", j.depends_on},
      {"after", j.after},       {"is_cache", j.is_cache}, {"identity", j.identity},  {"result_file", j.result_file},
      {"log_file", j.log_file}, {"bundle", j.bundle},     {"members", json::array()}};
  for (const auto& m : j.members) o["members"].push_back(farm_job_to_json(m));
  return o;
}

FarmJob farm_job_from_json(const json& j) {
  FarmJob f;
  f.key = j.at("key");
  f.argv = j.at("argv").get<std::vector<std::string>>();
  f.cost = j.at("cost");
  f.depends_on = j.at("depends_on");
  if (j.contains("after")) f.after = j.at("after").get<std::vector<std::string>>();
  f.is_cache = j.at("is_cache");
  f.identity = j.at("identity");
  f.result_file = j.at("result_file");
  f.log_file = j.at("log_file");
  f.bundle = j.value("bundle", std::string());
  if (j.contains("members"))
    for (const auto& m : j.at("members")) f.members.push_back(farm_job_from_json(m));
  return f;
}

json farm_outcome_to_json(const FarmOutcome& o) {
  json j = {{"key", o.key},       {"ok", o.ok},     {"error", o.error},       {"ended", o.ended},
            {"record", o.record}, {"rank", o.rank}, {"host", o.host},         {"threads", o.threads},
            {"wall_s", o.wall_s}, {"argv", o.argv}, {"time_utc", o.time_utc}, {"members", json::array()}};
  for (const auto& m : o.members) j["members"].push_back(farm_outcome_to_json(m));
  return j;
}

FarmOutcome farm_outcome_from_json(const json& j) {
  FarmOutcome o;
  o.key = j.at("key");
  o.ok = j.at("ok");
  o.error = j.at("error");
  o.ended = j.at("ended");
  o.record = j.at("record");
  o.rank = j.at("rank");
  o.host = j.at("host");
  o.threads = j.at("threads");
  o.wall_s = j.at("wall_s");
  o.argv = j.at("argv").get<std::vector<std::string>>();
  o.time_utc = j.at("time_utc");
  for (const auto& m : j.at("members")) o.members.push_back(farm_outcome_from_json(m));
  return o;
}

namespace {

// ------------------------------------------------------------------ rank 0

class Scheduler {
 public:
  Scheduler(const std::vector<FarmJob>& jobs, const FarmOptions& opts, FarmReporter& reporter, FarmTransport& transport)
      : jobs_(jobs),
        opts_(opts),
        reporter_(reporter),
        transport_(transport),
        info_(transport.info()),
        pool_(opts, info_) {}

  int run() {
    for (int w = 1; w < info_.size; ++w) slots_of_[w] = 0;
    try {  // the reporter reads the earlier runs' outcomes; a key twice in the plan is an error
      graph_.emplace(jobs_, reporter_.earlier(), opts_.retry_failed);
      reporter_.started(*graph_, info_);
      for (const auto& u : graph_->take_unrunnable()) fail_without_running(u);
    } catch (const std::exception& e) {
      fatal(e.what());
    }
    while (true) {
      bool busy = false;
      if (g_stop_signal && !stopping_)
        begin_stop(kFarmInterrupted, "signal " + std::to_string(g_stop_signal) + " on rank 0");
      while (auto m = transport_.receive(-1)) {
        busy = true;
        on_message(*m);
      }
      for (auto& o : pool_.tick(stopping_)) {
        busy = true;
        on_outcome(o);
      }
      if (!stopping_) {
        busy |= dispatch();
        if (graph_->unresolved() == 0) finish();
      }
      transport_.progress();
      if (stopping_ && !pool_.busy() && byes_ == info_.size - 1) break;
      if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(opts_.poll_s * 1000)));
    }
    transport_.wait_all();
    if (graph_) reporter_.summary(*graph_, n_ok_, n_failed_, exit_code_, interrupted_by_);
    return exit_code_;
  }

  void abort_children() { pool_.kill_now(); }

 private:
  // The unit of work the graph gives next: one job, or a bundle's ready jobs as one child.
  FarmJob next_unit() {
    const std::vector<size_t> unit = graph_->take_next();
    const FarmJob& first = graph_->job(unit.front());
    if (unit.size() == 1) return first;
    PETL_CHECK(bool(opts_.bundle_command), "farm: bundle ", first.bundle, " has ", unit.size(),
               " jobs but no bundle command was given");
    FarmJob b;
    b.key = "bundle:" + first.bundle;
    b.bundle = first.bundle;
    std::vector<std::vector<std::string>> argvs;
    for (size_t m : unit) {
      argvs.push_back(graph_->job(m).argv);
      b.members.push_back(graph_->job(m));
      b.cost += graph_->job(m).cost;
    }
    b.argv = opts_.bundle_command(argvs);
    b.log_file = (fs::path(first.log_file).parent_path() / ("bundle-" + first.bundle + ".log")).string();
    b.identity = {{"bundle", first.bundle}, {"jobs", unit.size()}};
    return b;
  }

  bool dispatch() {
    bool did = false;
    for (auto& [w, free] : slots_of_) {
      while (free > 0 && graph_->has_ready()) {
        transport_.send(w, FarmTag::kJob, farm_job_to_json(next_unit()).dump());
        --free;
        did = true;
      }
    }
    while (graph_->has_ready() && pool_.may_start()) {
      if (auto o = pool_.start(next_unit())) on_outcome(*o);
      did = true;
    }
    return did;
  }

  void on_message(const FarmMessage& m) {
    switch (m.tag) {
      case FarmTag::kIdle:
        if (!stopping_) ++slots_of_[m.source];
        break;
      case FarmTag::kResult: {
        FarmOutcome o;
        try {
          o = farm_outcome_from_json(json::parse(m.payload));
        } catch (const std::exception& e) {
          std::fprintf(stderr, "petl sweep: unreadable result message from rank %d: %s\n", m.source, e.what());
          break;
        }
        on_outcome(o);
        if (!stopping_) ++slots_of_[m.source];
        break;
      }
      case FarmTag::kSignal:
        if (!stopping_) begin_stop(kFarmInterrupted, "signal " + m.payload + " on rank " + std::to_string(m.source));
        break;
      case FarmTag::kBye:
        ++byes_;
        break;
      default:
        std::fprintf(stderr, "petl sweep: unexpected message tag %d from rank %d\n", int(m.tag), m.source);
    }
  }

  void on_outcome(const FarmOutcome& o) {
    if (!o.members.empty()) {  // a bundle: one outcome per job
      for (const auto& m : o.members) on_outcome(m);
      return;
    }
    const long i = graph_->index_of(o.key);
    if (i < 0) {
      std::fprintf(stderr, "petl sweep: result for unknown job %s ignored\n", o.key.c_str());
      return;
    }
    if (graph_->state(size_t(i)) != JobGraph::State::kRunning) {
      std::fprintf(stderr, "petl sweep: second result for job %s ignored\n", o.key.c_str());
      return;
    }
    const auto dependents = graph_->finish(size_t(i), o.ok, o.error);
    report(graph_->job(size_t(i)), o);
    for (const auto& u : dependents) fail_without_running(u);
  }

  void fail_without_running(const JobGraph::Unrunnable& u) {
    graph_->fail_without_running(u.job);
    FarmOutcome o;
    o.key = graph_->job(u.job).key;
    o.ok = false;
    o.error = u.why;
    report(graph_->job(u.job), o);
  }

  void report(const FarmJob& job, const FarmOutcome& o) {
    ++done_;
    o.ok ? ++n_ok_ : ++n_failed_;
    if (fatal_) return;
    try {
      reporter_.finished(job, o, done_, graph_->to_run());
    } catch (const std::exception& e) {
      fatal(e.what());
    }
  }

  void send_stop_all(int code) {
    for (int w = 1; w < info_.size; ++w) transport_.send(w, FarmTag::kStop, json{{"code", code}}.dump());
  }

  void begin_stop(int code, const std::string& why) {
    if (stopping_) return;
    stopping_ = true;
    exit_code_ = code;
    interrupted_by_ = why;
    reporter_.stopping(why, opts_.grace_s);
    send_stop_all(code);
    pool_.stop();
  }

  void finish() {
    stopping_ = true;
    exit_code_ = graph_->any_failed() ? kFarmJobsFailed : kFarmOk;
    send_stop_all(exit_code_);
  }

  void fatal(const std::string& msg) {
    std::fprintf(stderr, "petl sweep: error: %s\n", msg.c_str());
    fatal_ = true;
    if (!stopping_)
      begin_stop(kFarmError, "journal error");
    else
      exit_code_ = kFarmError;
  }

  const std::vector<FarmJob>& jobs_;
  const FarmOptions& opts_;
  FarmReporter& reporter_;
  FarmTransport& transport_;
  const RankInfo& info_;
  std::optional<JobGraph> graph_;  // none when the plan could not be read (then the farm only stops)
  ProcessPool pool_;
  std::map<int, int> slots_of_;  // worker rank → its free slots
  bool stopping_ = false, fatal_ = false;
  int exit_code_ = kFarmOk, byes_ = 0, done_ = 0, n_ok_ = 0, n_failed_ = 0;
  std::string interrupted_by_;
};

// ------------------------------------------------------------------ the other ranks

int run_worker(const FarmOptions& opts, FarmTransport& transport) {
  const RankInfo& info = transport.info();
  ProcessPool pool(opts, info);
  for (int s = 0; s < std::max(1, opts.slots); ++s) transport.send(0, FarmTag::kIdle, "");
  bool got_stop = false, told_signal = false;
  int code = kFarmOk;
  try {
    while (true) {
      bool busy = false;
      if (g_stop_signal && !told_signal) {
        transport.send(0, FarmTag::kSignal, std::to_string(g_stop_signal));
        told_signal = true;
        pool.stop();
      }
      while (auto m = transport.receive(0)) {
        busy = true;
        if (m->tag == FarmTag::kJob) {
          if (told_signal || got_stop) continue;  // stopping: rank 0 does not wait for it
          if (auto o = pool.start(farm_job_from_json(json::parse(m->payload))))
            transport.send(0, FarmTag::kResult, farm_outcome_to_json(*o).dump());
        } else if (m->tag == FarmTag::kStop) {
          got_stop = true;
          code = json::parse(m->payload).value("code", kFarmOk);
          pool.stop();
        }
      }
      for (auto& o : pool.tick(told_signal || got_stop)) {
        busy = true;
        transport.send(0, FarmTag::kResult, farm_outcome_to_json(o).dump());
      }
      transport.progress();
      if (got_stop && !pool.busy()) {
        transport.send(0, FarmTag::kBye, "");
        break;
      }
      if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(opts.poll_s * 1000)));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petl sweep: rank %d: internal error: %s; aborting\n", info.rank, e.what());
    pool.kill_now();
    transport.abort(3);
  }
  transport.wait_all();
  return code;
}

int run_on(const std::vector<FarmJob>& jobs, const FarmOptions& opts, FarmReporter& reporter,
           FarmTransport& transport) {
  if (transport.info().rank != 0) return run_worker(opts, transport);
  Scheduler s(jobs, opts, reporter, transport);
  try {
    return s.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petl sweep: rank 0: internal error: %s; aborting\n", e.what());
    s.abort_children();
    transport.abort(3);
  }
}

FarmOptions checked(const FarmOptions& in) {
  FarmOptions opts = in;
  PETL_CHECK(!opts.program.empty(), "farm: no program for the child processes");
  if (opts.poll_s <= 0) opts.poll_s = 0.02;
  opts.slots = std::max(1, opts.slots);
  return opts;
}

}  // namespace

int run_farm(const std::vector<FarmJob>& jobs, const FarmOptions& opts_in, FarmReporter& reporter, MPI_Comm comm) {
  const FarmOptions opts = checked(opts_in);
  install_farm_signal_handlers();
  MpiTransport transport(comm, opts.threads, opts.slots);
  return run_on(jobs, opts, reporter, transport);
}

int run_local_farm(const std::vector<FarmJob>& jobs, const FarmOptions& opts_in, FarmReporter& reporter) {
  const FarmOptions opts = checked(opts_in);
  install_farm_signal_handlers();
  LocalTransport transport(opts.threads, opts.slots);
  return run_on(jobs, opts, reporter, transport);
}

}  // namespace petl

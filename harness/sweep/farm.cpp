// The MPI job farm behind `petl sweep` (see farm.h for roles, messages, exit codes).
#include "harness/sweep/farm.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <list>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "core/env.h"
#include "core/error.h"
#include "core/process.h"
#include "core/system.h"
#include "core/text.h"
#include "harness/sweep/sweep_journal.h"

extern char** environ;

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

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

// ------------------------------------------------------------------ jobs as messages

json farm_job_to_json(const FarmJob& j) {
  json o = {{"key", j.key},           {"argv", j.argv},         {"cost", j.cost},
            {"depends_on", j.depends_on}, {"is_cache", j.is_cache}, {"identity", j.identity},
            {"result_file", j.result_file}, {"log_file", j.log_file}, {"bundle", j.bundle},
            {"members", json::array()}};
  for (const auto& m : j.members) o["members"].push_back(farm_job_to_json(m));
  return o;
}

FarmJob farm_job_from_json(const json& j) {
  FarmJob f;
  f.key = j.at("key");
  f.argv = j.at("argv").get<std::vector<std::string>>();
  f.cost = j.at("cost");
  f.depends_on = j.at("depends_on");
  f.is_cache = j.at("is_cache");
  f.identity = j.at("identity");
  f.result_file = j.at("result_file");
  f.log_file = j.at("log_file");
  f.bundle = j.value("bundle", std::string());
  if (j.contains("members"))
    for (const auto& m : j.at("members")) f.members.push_back(farm_job_from_json(m));
  return f;
}

std::vector<FarmJob> farm_jobs_from_plan(const std::vector<SweepJob>& jobs, const std::string& protocol) {
  std::vector<FarmJob> out;
  for (const auto& s : jobs) {
    FarmJob f;
    f.key = s.key;
    f.argv = s.args;
    f.cost = s.cost;
    f.depends_on = s.depends_on;
    f.is_cache = s.is_cache;
    f.result_file = s.result_file;
    f.log_file = s.log_file;
    f.bundle = s.bundle;
    if (s.is_cache)
      f.identity = {{"task", s.task}, {"taps", s.cache.taps}, {"splits", s.cache.splits}, {"dtype", s.cache_dtype}};
    else
      f.identity = {{"method", s.method}, {"task", s.task}, {"seed", s.seed}, {"protocol", protocol}, {"sets", s.sets}};
    out.push_back(std::move(f));
  }
  return out;
}

namespace {

enum Tag : int { kTagIdle = 7101, kTagResult = 7102, kTagSignal = 7103, kTagBye = 7104, kTagJob = 7201, kTagStop = 7202 };

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }


// Non-blocking sends whose buffers live until completion.
class Outbox {
 public:
  explicit Outbox(MPI_Comm comm) : comm_(comm) {}
  void send(int dest, int tag, std::string payload) {
    pending_.emplace_back();
    auto& p = pending_.back();
    p.buf = std::move(payload);
    MPI_Isend(p.buf.data(), int(p.buf.size()), MPI_CHAR, dest, tag, comm_, &p.req);
  }
  void progress() {
    for (auto it = pending_.begin(); it != pending_.end();) {
      int done = 0;
      MPI_Test(&it->req, &done, MPI_STATUS_IGNORE);
      it = done ? pending_.erase(it) : std::next(it);
    }
  }
  void wait_all() {
    for (auto& p : pending_) MPI_Wait(&p.req, MPI_STATUS_IGNORE);
    pending_.clear();
  }

 private:
  struct Pending {
    std::string buf;
    MPI_Request req;
  };
  MPI_Comm comm_;
  std::list<Pending> pending_;  // list: addresses stay valid
};

bool try_recv(MPI_Comm comm, int source, int* src, int* tag, std::string* payload) {
  int flag = 0;
  MPI_Status st;
  MPI_Iprobe(source, MPI_ANY_TAG, comm, &flag, &st);
  if (!flag) return false;
  int n = 0;
  MPI_Get_count(&st, MPI_CHAR, &n);
  payload->assign(size_t(n), '\0');
  MPI_Recv(n ? &(*payload)[0] : nullptr, n, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, comm, MPI_STATUS_IGNORE);
  *src = st.MPI_SOURCE;
  *tag = st.MPI_TAG;
  return true;
}

// ------------------------------------------------------------------ files

std::vector<std::string> complete_lines(const std::string& path, int64_t from = 0) {
  std::vector<std::string> out;
  std::ifstream is(path, std::ios::binary);
  if (!is) return out;
  is.seekg(from);
  std::stringstream ss;
  ss << is.rdbuf();
  const std::string d = ss.str();
  size_t pos = 0;
  while (true) {
    size_t nl = d.find('\n', pos);
    if (nl == std::string::npos) break;  // an incomplete last line is not a record
    out.push_back(d.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

int64_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? int64_t(st.st_size) : 0;
}

// The last complete line of `path` that is a JSON object with the given status, from byte `from`.
std::optional<json> last_record_with_status(const std::string& path, const std::string& status, int64_t from = 0) {
  auto lines = complete_lines(path, from);
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    try {
      json j = json::parse(*it);
      if (j.is_object() && j.value("status", std::string()) == status) return j;
    } catch (const json::exception&) {
    }
  }
  return std::nullopt;
}

std::string log_tail(const std::string& path, int64_t from, int max_lines = 20) {
  std::ifstream is(path, std::ios::binary);
  if (!is) return "(no log)";
  is.seekg(from);
  std::stringstream ss;
  ss << is.rdbuf();
  std::string d = ss.str();
  std::vector<std::string> lines;
  std::string cur;
  for (char ch : d) {
    if (ch == '\n') {
      lines.push_back(cur);
      cur.clear();
    } else if (ch != '\r') {
      cur += ch;
    } else {
      cur.clear();  // progress-bar redraws: keep the last state of the line
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  std::string out;
  size_t start = lines.size() > size_t(max_lines) ? lines.size() - max_lines : 0;
  for (size_t i = start; i < lines.size(); ++i) {
    std::string l = lines[i].size() > 400 ? lines[i].substr(0, 400) + " …" : lines[i];
    out += l + "\n";
  }
  return out.empty() ? "(empty log)\n" : out;
}

// ------------------------------------------------------------------ children

struct RankInfo {
  int rank = 0, size = 1, local_rank = 0, local_size = 1, threads = 1;
  std::string host;
};

struct Child {
  pid_t pid = -1;
  FarmJob job;
  std::vector<std::string> argv;  // the full command line
  Clock::time_point start;
  bool term_sent = false, kill_sent = false;
  Clock::time_point kill_at;
  enum Reason { kNone, kTimeout, kStop } reason = kNone;
  int64_t log_offset = 0, result_offset = 0;
  std::vector<int64_t> member_offsets;  // bundles: each member's result_file size at the start
};

std::string signal_text(int sig) {
  if (sig == SIGKILL) return "killed by signal 9 (out of memory or killed)";
  const char* name = strsignal(sig);
  return "killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
}

// Runs one child at a time for this rank; never blocks.
class Runner {
 public:
  Runner(const FarmOptions& o, const RankInfo& r) : opts_(o), info_(r) {}
  bool busy() const { return child_.pid > 0 || held_.has_value(); }
  const Child& child() const { return child_; }

  // Starts the job; returns an outcome right away when it cannot be started.
  std::optional<json> start(const FarmJob& job) {
    child_ = Child();
    child_.job = job;
    child_.start = Clock::now();
    child_.argv.push_back(opts_.program);
    for (const auto& a : job.argv) child_.argv.push_back(a == "{threads}" ? std::to_string(info_.threads) : a);
    if (opts_.gpus_per_node > 0 && !job.is_cache)
      child_.argv.insert(child_.argv.end(),
                         {"--device", "cuda:" + std::to_string(info_.local_rank % opts_.gpus_per_node)});
    std::string err = spawn();
    if (!err.empty()) {
      child_.pid = -1;
      if (!job.members.empty()) return bundle_outcome("cannot start the bundle: " + err);
      return outcome(false, "cannot start the job: " + err, json());
    }
    return std::nullopt;
  }

  // Time limits, exits, held outcomes. `stopping`: a stop is under way (drop what is held).
  std::optional<json> tick(bool stopping) {
    if (held_) {
      if (stopping) {
        held_.reset();
        return std::nullopt;
      }
      if (Clock::now() >= held_until_) {
        auto o = std::move(held_);
        held_.reset();
        return o;
      }
      return std::nullopt;
    }
    if (child_.pid <= 0) return std::nullopt;
    const auto now = Clock::now();
    if (!child_.term_sent && opts_.job_timeout_s > 0 && seconds_since(child_.start) > time_limit_s()) {
      child_.reason = Child::kTimeout;
      signal_group(SIGTERM);
      child_.term_sent = true;
      child_.kill_at = now + std::chrono::milliseconds(int64_t(opts_.kill_after_s * 1000));
    }
    if (child_.term_sent && !child_.kill_sent && now >= child_.kill_at) {
      signal_group(SIGKILL);
      child_.kill_sent = true;
    }
    int status = 0;
    pid_t r = ::waitpid(child_.pid, &status, WNOHANG);
    if (r == 0) return std::nullopt;
    if (r < 0 && errno == EINTR) return std::nullopt;
    const bool lost = r < 0;  // ECHILD: cannot happen unless someone else reaped it
    ::kill(-child_.pid, SIGKILL);  // whatever the job left behind in its process group
    child_.pid = -1;
    if (child_.reason == Child::kStop) return std::nullopt;  // interrupted: not recorded
    std::string failure;  // "" = exit status 0
    if (lost)
      failure = "the child process was lost (waitpid: " + std::string(std::strerror(errno)) + ")";
    else if (child_.reason == Child::kTimeout)
      failure = "time limit of " + fmt_seconds(time_limit_s()) + " s exceeded";
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
      failure = "exit status " + std::to_string(WEXITSTATUS(status));
    else if (!WIFEXITED(status))
      failure = signal_text(WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    auto o = child_.job.members.empty() ? job_outcome(child_.job, child_.result_offset, failure, true)
                                        : bundle_outcome(failure);
    const int sig = !lost && child_.reason == Child::kNone && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      // Not sent by us: most likely the whole step is being stopped (scancel, mpirun) and the
      // signal reached the child first. Wait a moment for our own stop flag before recording.
      held_ = std::move(o);
      held_until_ = Clock::now() + std::chrono::seconds(2);
      return std::nullopt;
    }
    return o;
  }

  // SIGTERM to the child's group now, SIGKILL after grace_s; the job is then not recorded.
  void stop() {
    held_.reset();
    if (child_.pid <= 0) return;
    child_.reason = Child::kStop;
    const auto deadline = Clock::now() + std::chrono::milliseconds(int64_t(opts_.grace_s * 1000));
    if (!child_.term_sent) {
      signal_group(SIGTERM);
      child_.term_sent = true;
      child_.kill_at = deadline;
    } else if (!child_.kill_sent) {
      child_.kill_at = std::min(child_.kill_at, deadline);
    }
  }

  // Last resort (exceptions): kill the child's group and reap it.
  void kill_now() {
    if (child_.pid > 0) {
      ::kill(-child_.pid, SIGKILL);
      int st;
      ::waitpid(child_.pid, &st, 0);
      child_.pid = -1;
    }
  }

 private:
  static std::string fmt_seconds(double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", s);
    return b;
  }

  void signal_group(int sig) {
    if (child_.pid > 0) ::kill(-child_.pid, sig);
  }

  // A bundle's time limit grows with its members.
  double time_limit_s() const {
    return opts_.job_timeout_s * double(std::max<size_t>(1, child_.job.members.size()));
  }

  // The outcome of `job` (the child's job or a bundle's member) from its result file: an ok record
  // (with --resume it may be an earlier one), else a does_not_fit or failed record written since
  // `offset`; `failure` ("" = exit status 0) is how the child ended. `single`: the child ran this
  // job alone, so an ok record counts only when it exited 0.
  json job_outcome(const FarmJob& job, int64_t offset, const std::string& failure, bool single) {
    if (job.result_file.empty()) return outcome(failure.empty(), failure, json(), &job);
    if (failure.empty() || !single) {
      auto rec = last_record_with_status(job.result_file, "ok");
      if (!rec) rec = last_record_with_status(job.result_file, "does_not_fit", offset);
      if (rec) return outcome(true, "", *rec, &job);
    }
    std::string msg = failure;
    auto f = last_record_with_status(job.result_file, "failed", offset);
    if (f && f->contains("error") && (*f)["error"].is_string())
      msg += (msg.empty() ? "" : ": ") + (*f)["error"].get<std::string>();
    if (msg.empty()) msg = single ? "exited with status 0 but wrote no ok record to " + job.result_file
                                  : "the bundle exited with status 0 but wrote no record to " + job.result_file;
    return outcome(false, msg, json(), &job);
  }

  json bundle_outcome(const std::string& failure) {
    json o = {{"key", child_.job.key}, {"members", json::array()}};
    for (size_t k = 0; k < child_.job.members.size(); ++k)
      o["members"].push_back(job_outcome(child_.job.members[k],
                                         k < child_.member_offsets.size() ? child_.member_offsets[k] : 0, failure,
                                         false));
    return o;
  }

  json outcome(bool ok, const std::string& error, const json& record, const FarmJob* member = nullptr) {
    json o = {{"key", member ? member->key : child_.job.key},
              {"ok", ok},
              {"rank", info_.rank},
              {"host", info_.host},
              {"threads", info_.threads},
              {"wall_s", seconds_since(child_.start)},
              {"argv", child_.argv},
              {"time_utc", now_utc()}};
    if (ok && !record.is_null()) o["record"] = record;
    if (!ok) {
      o["error"] = error + "\n--- last lines of " + child_.job.log_file + " ---\n" +
                   log_tail(child_.job.log_file, child_.log_offset);
    }
    return o;
  }

  // posix_spawn into a new process group; "" or the reason it failed.
  std::string spawn() {
    const FarmJob& job = child_.job;
    std::error_code ec;
    // First, so that a bundle that cannot start reads only what its members write from now on.
    child_.member_offsets.clear();
    for (const auto& m : job.members) {
      if (fs::path(m.result_file).has_parent_path()) fs::create_directories(fs::path(m.result_file).parent_path(), ec);
      child_.member_offsets.push_back(m.result_file.empty() ? 0 : file_size(m.result_file));
    }
    if (fs::path(job.log_file).has_parent_path()) fs::create_directories(fs::path(job.log_file).parent_path(), ec);
    if (!job.result_file.empty() && fs::path(job.result_file).has_parent_path())
      fs::create_directories(fs::path(job.result_file).parent_path(), ec);
    {  // the attempt's header line; the log is best effort
      std::ofstream log(job.log_file, std::ios::app);
      if (!log) return "cannot open log " + job.log_file + ": " + std::strerror(errno);
      std::string cmd;
      for (const auto& a : child_.argv) cmd += (cmd.empty() ? "" : " ") + a;
      log << "\n=== petl sweep " << now_utc() << " rank " << info_.rank << " on " << info_.host << ", " << info_.threads
          << " thread(s): " << cmd << "\n";
    }
    child_.log_offset = file_size(job.log_file);
    child_.result_offset = job.result_file.empty() ? 0 : file_size(job.result_file);

    // Environment: ours minus MPI launcher variables, plus thread settings and the caller's.
    process::SpawnOptions so;
    so.argv = child_.argv;  // [0] is opts_.program
    so.log_file = job.log_file;
    so.append_log = true;
    so.new_process_group = true;  // stopped and timed out as a group
    so.drop_env_prefixes = {"OMPI_", "PMIX_", "PMI_"};
    const std::string t = std::to_string(info_.threads);
    so.env = {{"OMP_NUM_THREADS", t},
              {"MKL_NUM_THREADS", t},
              {"OPENBLAS_NUM_THREADS", t},
              {env::kNoProgress, "1"},
              {env::kSweepParentPid, std::to_string(::getpid())},
              {env::kSweepJobKey, job.key},
              {env::kSweepRank, std::to_string(info_.rank)}};
    for (const auto& [k, v] : opts_.env) so.env[k] = v;
    try {
      child_.pid = process::spawn(so);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  const FarmOptions& opts_;
  const RankInfo& info_;
  Child child_;
  std::optional<json> held_;
  Clock::time_point held_until_;
};

RankInfo rank_info(MPI_Comm comm, int threads_opt) {
  RankInfo r;
  MPI_Comm_rank(comm, &r.rank);
  MPI_Comm_size(comm, &r.size);
  r.host = host_name();
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, r.rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &r.local_rank);
  MPI_Comm_size(node, &r.local_size);
  cpu_set_t mine;
  CPU_ZERO(&mine);
  int ncpu = 0;
  if (sched_getaffinity(0, sizeof mine, &mine) == 0) {
    ncpu = CPU_COUNT(&mine);
  } else {
    ncpu = int(std::max(1u, std::thread::hardware_concurrency()));
    CPU_ZERO(&mine);
  }
  std::vector<cpu_set_t> all(size_t(r.local_size));
  MPI_Allgather(&mine, int(sizeof mine), MPI_BYTE, all.data(), int(sizeof mine), MPI_BYTE, node);
  MPI_Comm_free(&node);
  int sharers = 0;
  for (auto& s : all)
    if (CPU_EQUAL(&s, &mine)) ++sharers;
  r.threads = threads_opt > 0 ? threads_opt : std::max(1, ncpu / std::max(1, sharers));
  return r;
}

// ------------------------------------------------------------------ rank 0

class Scheduler {
 public:
  Scheduler(const std::vector<FarmJob>& jobs, const FarmOptions& opts, const RankInfo& info, MPI_Comm comm)
      : jobs_(jobs), opts_(opts), info_(info), comm_(comm), out_(comm), runner_(opts, info) {}

  int run() {
    start_ = Clock::now();
    try {
      init();
    } catch (const std::exception& e) {
      fatal(e.what());
    }
    while (true) {
      bool busy_iter = false;
      if (g_stop_signal && !stopping_) begin_stop(kFarmInterrupted, "signal " + std::to_string(g_stop_signal) + " on rank 0");
      int src = 0, tag = 0;
      std::string payload;
      while (try_recv(comm_, MPI_ANY_SOURCE, &src, &tag, &payload)) {
        busy_iter = true;
        on_message(src, tag, payload);
      }
      if (auto o = runner_.tick(stopping_)) {
        busy_iter = true;
        on_outcome(*o);
      }
      if (!stopping_) {
        busy_iter |= dispatch();
        if (unresolved() == 0) finish();
      }
      out_.progress();
      if (stopping_ && !runner_.busy() && byes_ == info_.size - 1) break;
      if (!busy_iter) std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(opts_.poll_s * 1000)));
    }
    out_.wait_all();
    summary();
    return exit_code_;
  }

  void abort_children() { runner_.kill_now(); }

 private:
  enum State { kWait, kReady, kRunning, kOk, kFailed, kSkipped, kDone };

  void say(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    if (!opts_.verbose) return;
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stdout, fmt, ap);
    va_end(ap);
    std::fflush(stdout);
  }

  void init() {
    for (size_t i = 0; i < jobs_.size(); ++i) {
      PETL_CHECK(!index_.count(jobs_[i].key), "sweep: sweep key ", jobs_[i].key, " appears twice in the plan");
      index_[jobs_[i].key] = i;
    }
    state_.assign(jobs_.size(), kWait);
    Journal jr = read_journal(opts_.journal);
    for (auto& w : jr.warnings) std::fprintf(stderr, "petl sweep: warning: %s\n", w.c_str());
    if (repair_journal(opts_.journal, jr))
      std::fprintf(stderr, "petl sweep: cut the torn last line of %s (%lld bytes kept)\n", opts_.journal.c_str(),
                   (long long)jr.good_bytes);
    for (const auto& other : opts_.other_journals) {
      Journal oj = read_journal(other);
      for (auto& w : oj.warnings) std::fprintf(stderr, "petl sweep: warning: %s\n", w.c_str());
      for (auto& [k, st] : oj.status) {
        if (journal_done(st) || !jr.status.count(k)) {
          if (journal_done(jr.status[k])) continue;
          jr.status[k] = st;
          jr.record[k] = oj.record[k];
        }
      }
    }
    for (auto& [k, st] : jr.status)
      if (journal_done(st)) ok_keys_.insert(k);
    journal_ = std::move(jr);
    int prev_ok = 0, prev_failed = 0;
    for (size_t i = 0; i < jobs_.size(); ++i) {
      auto it = journal_.status.find(jobs_[i].key);
      if (it != journal_.status.end() && journal_done(it->second)) {
        state_[i] = kOk;
        ++prev_ok;
      } else if (it != journal_.status.end() && !opts_.retry_failed) {
        state_[i] = kFailed;
        ++prev_failed;
      }
    }
    // Cache jobs run only when a job that still has to run needs them.
    std::set<std::string> needed;
    for (size_t i = 0; i < jobs_.size(); ++i)
      if (state_[i] == kWait && !jobs_[i].depends_on.empty()) needed.insert(jobs_[i].depends_on);
    int unneeded = 0;
    for (size_t i = 0; i < jobs_.size(); ++i)
      if (state_[i] == kWait && jobs_[i].is_cache && !needed.count(jobs_[i].key)) {
        state_[i] = kSkipped;
        ++unneeded;
      }
    for (size_t i = 0; i < jobs_.size(); ++i)
      if (state_[i] == kWait) ++total_;
    // Dispatch priority: a job's cost, plus for a cache build the cost of every job waiting for it
    // (a cache on the critical path of many jobs goes first).
    prio_.resize(jobs_.size());
    for (size_t i = 0; i < jobs_.size(); ++i) prio_[i] = jobs_[i].cost;
    for (size_t i = 0; i < jobs_.size(); ++i)
      if (state_[i] == kWait && !jobs_[i].depends_on.empty() && index_.count(jobs_[i].depends_on))
        prio_[index_[jobs_[i].depends_on]] += jobs_[i].cost;
    // A bundle runs as one unit: its jobs are dispatched at the priority of the whole bundle.
    std::map<std::string, double> bundle_cost;
    for (size_t i = 0; i < jobs_.size(); ++i)
      if (state_[i] == kWait && !jobs_[i].bundle.empty()) bundle_cost[jobs_[i].bundle] += jobs_[i].cost;
    for (size_t i = 0; i < jobs_.size(); ++i)
      if (state_[i] == kWait && !jobs_[i].bundle.empty()) prio_[i] = bundle_cost[jobs_[i].bundle];
    say("petl sweep %s: %zu jobs; %d already ok, %d failed earlier%s, %d to run on %d rank(s) × %d thread(s)%s\n",
        opts_.sweep_name.c_str(), jobs_.size(), prev_ok, prev_failed,
        opts_.retry_failed ? "" : " (skipped; retry_failed re-runs them)", total_, info_.size, info_.threads,
        unneeded ? (", " + std::to_string(unneeded) + " cache build(s) not needed").c_str() : "");
    for (size_t i = 0; i < jobs_.size(); ++i) {
      if (state_[i] != kWait) continue;
      const auto& dep = jobs_[i].depends_on;
      if (dep.empty()) {
        make_ready(i);
        continue;
      }
      auto d = index_.find(dep);
      if (d == index_.end()) {
        if (ok_keys_.count(dep))
          make_ready(i);
        else
          fail_without_running(i, "feature cache " + dep + " is not part of this plan and has no ok record");
        continue;
      }
      dependents_[dep].push_back(i);
      if (state_[d->second] == kOk) {
        make_ready(i);
      } else if (state_[d->second] == kFailed) {
        std::string why;
        auto r = journal_.record.find(dep);
        if (r != journal_.record.end()) why = first_line(r->second.value("error", std::string()));
        fail_without_running(i, "feature cache " + dep + " failed: " + why);
      }
    }
  }

  void make_ready(size_t i) {
    state_[i] = kReady;
    auto pos = std::lower_bound(ready_.begin(), ready_.end(), i, [&](size_t a, size_t b) {
      if (prio_[a] != prio_[b]) return prio_[a] > prio_[b];
      return a < b;
    });
    ready_.insert(pos, i);
  }

  int unresolved() const {
    int n = 0;
    for (auto s : state_)
      if (s == kWait || s == kReady || s == kRunning) ++n;
    return n;
  }

  // The next unit of work: the first ready job, or with a bundle id every ready job of its bundle
  // as one FarmJob (members in plan order).
  FarmJob take_next() {
    const size_t i = ready_.front();
    ready_.pop_front();
    state_[i] = kRunning;
    if (jobs_[i].bundle.empty()) return jobs_[i];
    std::vector<size_t> members = {i};
    for (auto it = ready_.begin(); it != ready_.end();) {
      if (jobs_[*it].bundle == jobs_[i].bundle) {
        state_[*it] = kRunning;
        members.push_back(*it);
        it = ready_.erase(it);
      } else {
        ++it;
      }
    }
    if (members.size() == 1) return jobs_[i];
    std::sort(members.begin(), members.end());
    FarmJob b;
    b.key = "bundle:" + jobs_[i].bundle;
    b.bundle = jobs_[i].bundle;
    b.argv = {"bundle", "--threads", "{threads}", "--no-progress"};
    for (size_t m : members) {
      b.argv.insert(b.argv.end(), {"--job", json(jobs_[m].argv).dump()});
      b.members.push_back(jobs_[m]);
      b.cost += jobs_[m].cost;
    }
    b.log_file = (fs::path(jobs_[i].log_file).parent_path() / ("bundle-" + jobs_[i].bundle + ".log")).string();
    b.identity = {{"bundle", jobs_[i].bundle}, {"jobs", members.size()}};
    return b;
  }

  bool dispatch() {
    bool did = false;
    while (!ready_.empty() && !idle_.empty()) {
      int w = idle_.front();
      idle_.pop_front();
      out_.send(w, kTagJob, farm_job_to_json(take_next()).dump());
      did = true;
    }
    if (!ready_.empty() && !runner_.busy()) {
      if (auto o = runner_.start(take_next())) on_outcome(*o);
      did = true;
    }
    return did;
  }

  void on_message(int src, int tag, const std::string& payload) {
    switch (tag) {
      case kTagIdle:
        if (!stopping_) idle_.push_back(src);
        break;
      case kTagResult: {
        json o;
        try {
          o = json::parse(payload);
        } catch (const json::exception& e) {
          std::fprintf(stderr, "petl sweep: unreadable result message from rank %d: %s\n", src, e.what());
          break;
        }
        on_outcome(o);
        if (!stopping_) idle_.push_back(src);
        break;
      }
      case kTagSignal:
        if (!stopping_) begin_stop(kFarmInterrupted, "signal " + payload + " on rank " + std::to_string(src));
        break;
      case kTagBye:
        ++byes_;
        break;
      default:
        std::fprintf(stderr, "petl sweep: unexpected message tag %d from rank %d\n", tag, src);
    }
  }

  // The provenance of a job's record: the sweep's own (git_commit, libtorch_version) and the
  // outcome's host, threads, time, argv and rank.
  Provenance provenance(const json& o) const {
    Provenance p = provenance_from_json(opts_.provenance.is_object() ? opts_.provenance : json::object(),
                                        "sweep provenance");
    p.host = o.value("host", info_.host);
    p.threads = o.value("threads", info_.threads);
    p.time_utc = o.value("time_utc", now_utc());
    p.argv = o.value("argv", std::vector<std::string>());
    p.extra["rank"] = o.value("rank", 0);
    return p;
  }

  void write(const std::string& key, json rec) {
    if (fatal_) return;
    if (ok_keys_.count(key)) {
      std::fprintf(stderr, "petl sweep: %s already has an ok record; not writing another\n", key.c_str());
      return;
    }
    rec["sweep_key"] = key;
    rec["sweep"] = opts_.sweep_name;
    try {
      append_journal_line(opts_.journal, rec);
      if (journal_done(rec.value("status", std::string()))) ok_keys_.insert(key);
    } catch (const std::exception& e) {
      fatal(e.what());
    }
  }

  void on_outcome(const json& o) {
    if (o.contains("members") && o["members"].is_array()) {  // a bundle: one outcome per job
      for (const auto& m : o["members"]) on_outcome(m);
      return;
    }
    const std::string key = o.value("key", std::string());
    auto it = index_.find(key);
    if (it == index_.end()) {
      std::fprintf(stderr, "petl sweep: result for unknown job %s ignored\n", key.c_str());
      return;
    }
    const size_t i = it->second;
    const FarmJob& job = jobs_[i];
    if (state_[i] != kRunning) {
      std::fprintf(stderr, "petl sweep: second result for job %s ignored\n", key.c_str());
      return;
    }
    const bool ok = o.value("ok", false);
    const std::string error = o.value("error", std::string());
    const double wall = o.value("wall_s", 0.0);
    const int rank = o.value("rank", 0);
    json rec;
    if (job.is_cache) {
      rec = sweep_cache_record(job.identity, ok, error, to_json(provenance(o)));
      rec["log"] = job.log_file;
      rec["wall_s"] = wall;
    } else if (ok) {
      rec = o.contains("record") ? o["record"] : json::object();
    } else {
      rec = to_json(failed_job_record(job.identity, error, provenance(o)));
      rec["log"] = job.log_file;
    }
    rec["sweep_rank"] = rank;
    rec["sweep_wall_s"] = wall;
    write(key, rec);
    state_[i] = ok ? kOk : kFailed;
    ++finished_;
    ok ? ++n_ok_ : ++n_failed_;
    print_line(job, ok, ok ? rec : json(), error, wall, std::to_string(rank));
    if (job.is_cache) {
      for (size_t d : dependents_[key]) {
        if (state_[d] != kWait) continue;
        if (ok)
          make_ready(d);
        else
          fail_without_running(d, "feature cache " + key + " failed: " + first_line(error));
      }
    }
  }

  void fail_without_running(size_t i, const std::string& msg) {
    const FarmJob& job = jobs_[i];
    json o = {{"host", info_.host}, {"threads", 0}, {"rank", -1}, {"time_utc", now_utc()}, {"argv", json::array()}};
    json rec = job.is_cache ? sweep_cache_record(job.identity, false, msg, to_json(provenance(o)))
                            : to_json(failed_job_record(job.identity, msg, provenance(o)));
    rec["log"] = nullptr;
    write(job.key, rec);
    state_[i] = kFailed;
    ++finished_;
    ++n_failed_;
    print_line(job, false, json(), msg, 0.0, "-");
  }

  void print_line(const FarmJob& job, bool ok, const json& rec, const std::string& error, double wall,
                  const std::string& rank) {
    std::string what;
    if (job.is_cache) {
      what = "cache " + job.identity.value("task", std::string()) + " taps=" + job.identity.value("taps", std::string());
    } else {
      what = job.identity.value("method", std::string()) + " " + job.identity.value("task", std::string()) + " seed " +
             std::to_string(job.identity.value("seed", -1));
      if (job.identity.contains("sets"))
        for (auto& [k, v] : job.identity["sets"].items()) what += " " + k + "=" + v.get<std::string>();
    }
    std::string acc;
    if (ok && rec.is_object() && rec.contains("accuracy") && rec["accuracy"].is_number()) {
      char b[32];
      std::snprintf(b, sizeof b, " %.2f%%", rec["accuracy"].get<double>());
      acc = b;
    }
    std::string why = ok ? "" : ": " + first_line(error);
    say("[%d/%d] %-6s %s %s%s%s (%.1f s, rank %s)\n", finished_, total_, ok ? "ok" : "FAILED", job.key.c_str(),
        what.c_str(), acc.c_str(), why.c_str(), wall, rank.c_str());
  }

  void send_stop_all(int code) {
    for (int w = 1; w < info_.size; ++w) out_.send(w, kTagStop, json{{"code", code}}.dump());
  }

  void begin_stop(int code, const std::string& why) {
    if (stopping_) return;
    stopping_ = true;
    exit_code_ = code;
    interrupted_by_ = why;
    say("petl sweep: stop requested (%s): stopping every job (SIGTERM, SIGKILL after %g s); finished jobs stay "
        "recorded, re-run the same command to resume\n",
        why.c_str(), opts_.grace_s);
    send_stop_all(code);
    runner_.stop();
  }

  void finish() {
    stopping_ = true;
    bool failed = false;
    for (size_t i = 0; i < jobs_.size(); ++i)
      if (state_[i] == kFailed) failed = true;
    exit_code_ = failed ? kFarmJobsFailed : kFarmOk;
    send_stop_all(exit_code_);
  }

  void fatal(const std::string& msg) {
    std::fprintf(stderr, "petl sweep: error: %s\n", msg.c_str());
    fatal_ = true;
    if (!stopping_) {
      begin_stop(kFarmError, "journal error");
    } else {
      exit_code_ = kFarmError;
    }
  }

  void summary() {
    int ok = 0, failed = 0, todo = 0;
    for (size_t i = 0; i < jobs_.size(); ++i) {
      if (jobs_[i].is_cache) continue;
      if (state_[i] == kOk) ++ok;
      else if (state_[i] == kFailed) ++failed;
      else ++todo;
    }
    say("petl sweep %s: %d ok, %d failed, %d not finished (training jobs); this run: %d ok, %d failed in %.1f s; "
        "journal %s\n",
        opts_.sweep_name.c_str(), ok, failed, todo, n_ok_, n_failed_, seconds_since(start_), opts_.journal.c_str());
    if (exit_code_ == kFarmInterrupted)
      say("petl sweep: interrupted (%s); exit status %d — re-run the same command to resume\n",
          interrupted_by_.c_str(), kFarmInterrupted);
  }

  const std::vector<FarmJob>& jobs_;
  const FarmOptions& opts_;
  const RankInfo& info_;
  MPI_Comm comm_;
  Outbox out_;
  Runner runner_;
  Journal journal_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::vector<size_t>> dependents_;
  std::set<std::string> ok_keys_;
  std::vector<State> state_;
  std::vector<double> prio_;
  std::deque<size_t> ready_;
  std::deque<int> idle_;
  bool stopping_ = false, fatal_ = false;
  int exit_code_ = kFarmOk, byes_ = 0, total_ = 0, finished_ = 0, n_ok_ = 0, n_failed_ = 0;
  std::string interrupted_by_;
  Clock::time_point start_;
};

// ------------------------------------------------------------------ workers

int run_worker(const FarmOptions& opts, const RankInfo& info, MPI_Comm comm) {
  Outbox out(comm);
  Runner runner(opts, info);
  out.send(0, kTagIdle, "");
  bool got_stop = false, told_signal = false;
  int code = kFarmOk;
  try {
    while (true) {
      bool busy_iter = false;
      if (g_stop_signal && !told_signal) {
        out.send(0, kTagSignal, std::to_string(g_stop_signal));
        told_signal = true;
        runner.stop();
      }
      int src = 0, tag = 0;
      std::string payload;
      while (try_recv(comm, 0, &src, &tag, &payload)) {
        busy_iter = true;
        if (tag == kTagJob) {
          if (told_signal || got_stop || runner.busy()) continue;  // stopping: rank 0 does not wait for it
          FarmJob job = farm_job_from_json(json::parse(payload));
          if (auto o = runner.start(job)) out.send(0, kTagResult, o->dump());
        } else if (tag == kTagStop) {
          got_stop = true;
          code = json::parse(payload).value("code", kFarmOk);
          runner.stop();
        }
      }
      if (auto o = runner.tick(told_signal || got_stop)) {
        busy_iter = true;
        out.send(0, kTagResult, o->dump());
      }
      out.progress();
      if (got_stop && !runner.busy()) {
        out.send(0, kTagBye, "");
        break;
      }
      if (!busy_iter) std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(opts.poll_s * 1000)));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petl sweep: rank %d: internal error: %s; aborting\n", info.rank, e.what());
    runner.kill_now();
    MPI_Abort(comm, 3);
  }
  out.wait_all();
  return code;
}

}  // namespace


int run_farm(const std::vector<FarmJob>& jobs, const FarmOptions& opts_in, MPI_Comm comm) {
  FarmOptions opts = opts_in;
  PETL_CHECK(!opts.program.empty(), "sweep: no program for the child processes");
  if (opts.poll_s <= 0) opts.poll_s = 0.02;
  install_farm_signal_handlers();
  const RankInfo info = rank_info(comm, opts.threads);
  if (info.rank != 0) return run_worker(opts, info, comm);
  Scheduler s(jobs, opts, info, comm);
  try {
    return s.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petl sweep: rank 0: internal error: %s; aborting\n", e.what());
    s.abort_children();
    MPI_Abort(comm, 3);
    return 3;
  }
}

}  // namespace petl

// The child processes of one farm rank (see process_pool.h).
#include "harness/sweep/process_pool.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/enums.h"
#include "core/env.h"
#include "core/error.h"
#include "core/process.h"
#include "core/system.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The complete lines of `path` from byte `from` (an incomplete last line is not a record).
std::vector<std::string> complete_lines(const std::string& path, int64_t from = 0) {
  std::vector<std::string> out;
  std::ifstream is(path, std::ios::binary);
  if (!is) return out;
  is.seekg(from);
  std::stringstream ss;
  ss << is.rdbuf();
  const std::string d = ss.str();
  for (size_t pos = 0;;) {
    const size_t nl = d.find('\n', pos);
    if (nl == std::string::npos) break;
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
std::optional<json> last_record_with_status(const std::string& path, RecordStatus status, int64_t from = 0) {
  auto lines = complete_lines(path, from);
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    try {
      json j = json::parse(*it);
      if (j.is_object() && j.value("status", std::string()) == to_string(status)) return j;
    } catch (const json::exception&) {
    }
  }
  return std::nullopt;
}

// The last `max_lines` lines of a log from byte `from`, progress-bar redraws collapsed.
std::string log_tail(const std::string& path, int64_t from, int max_lines = 20) {
  std::ifstream is(path, std::ios::binary);
  if (!is) return "(no log)";
  is.seekg(from);
  std::stringstream ss;
  ss << is.rdbuf();
  std::vector<std::string> lines;
  std::string cur;
  for (char ch : ss.str()) {
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
  const size_t start = lines.size() > size_t(max_lines) ? lines.size() - max_lines : 0;
  for (size_t i = start; i < lines.size(); ++i)
    out += (lines[i].size() > 400 ? lines[i].substr(0, 400) + " …" : lines[i]) + "\n";
  return out.empty() ? "(empty log)\n" : out;
}

std::string signal_text(int sig) {
  if (sig == SIGKILL) return "killed by signal 9 (out of memory or killed)";
  const char* name = strsignal(sig);
  return "killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
}

std::string fmt_seconds(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", s);
  return b;
}

void signal_group(pid_t pid, int sig) {
  if (pid > 0) ::kill(-pid, sig);
}

}  // namespace

ProcessPool::ProcessPool(const FarmOptions& opts, const RankInfo& info) : opts_(opts), info_(info) {}

ProcessPool::~ProcessPool() { kill_now(); }

int ProcessPool::running() const { return int(children_.size()); }

bool ProcessPool::may_start() {
  // A held outcome keeps its slot: its child may have been stopped with the whole step.
  if (running() + int(held_.size()) >= std::max(1, opts_.slots)) return false;
  return !opts_.admission || opts_.admission->may_start(running());
}

std::optional<FarmOutcome> ProcessPool::start(const FarmJob& job) {
  Child c;
  c.job = job;
  c.start = SteadyClock::now();
  c.argv.push_back(opts_.program);
  const std::string device =
      opts_.gpus_per_node > 0 ? "cuda:" + std::to_string(info_.local_rank % opts_.gpus_per_node) : "cpu";
  for (const auto& a : job.argv) c.argv.push_back(a == kFarmDeviceToken ? device : a);
  const std::string err = spawn(c);
  if (!err.empty()) {
    if (!job.members.empty()) return bundle_outcome(c, "cannot start the bundle: " + err);
    return outcome(c, false, "cannot start the job: " + err, json(), "");
  }
  children_.push_back(std::move(c));
  return std::nullopt;
}

std::vector<FarmOutcome> ProcessPool::tick(bool stopping) {
  std::vector<FarmOutcome> out;
  for (auto it = held_.begin(); it != held_.end();) {
    if (stopping) {
      it = held_.erase(it);
    } else if (SteadyClock::now() >= it->until) {
      out.push_back(std::move(it->outcome));
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = children_.begin(); it != children_.end();) {
    if (it->pid > 0) {
      if (auto o = poll(*it)) out.push_back(std::move(*o));
    }
    if (it->pid <= 0) {
      it = children_.erase(it);
      if (opts_.admission) opts_.admission->job_ended();
    } else {
      ++it;
    }
  }
  return out;
}

// Time limits and the child's exit; the outcome when it ended and is to be reported now.
std::optional<FarmOutcome> ProcessPool::poll(Child& c) {
  const auto now = SteadyClock::now();
  if (!c.term_sent && opts_.job_timeout_s > 0 && seconds_since(c.start) > time_limit_s(c)) {
    c.reason = Child::kTimeout;
    signal_group(c.pid, SIGTERM);
    c.term_sent = true;
    c.kill_at = now + std::chrono::milliseconds(int64_t(opts_.kill_after_s * 1000));
  }
  if (c.term_sent && !c.kill_sent && now >= c.kill_at) {
    signal_group(c.pid, SIGKILL);
    c.kill_sent = true;
  }
  int status = 0;
  const pid_t r = ::waitpid(c.pid, &status, WNOHANG);
  if (r == 0 || (r < 0 && errno == EINTR)) return std::nullopt;
  const bool lost = r < 0;  // ECHILD: cannot happen unless someone else reaped it
  const int wait_errno = errno;
  ::kill(-c.pid, SIGKILL);  // whatever the job left behind in its process group
  c.pid = -1;
  if (c.reason == Child::kStop) return std::nullopt;  // interrupted: not reported
  std::string failure;                                // "" = exit status 0
  if (lost)
    failure = "the child process was lost (waitpid: " + std::string(std::strerror(wait_errno)) + ")";
  else if (c.reason == Child::kTimeout)
    failure = "time limit of " + fmt_seconds(time_limit_s(c)) + " s exceeded";
  else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    failure = "exit status " + std::to_string(WEXITSTATUS(status));
  else if (!WIFEXITED(status))
    failure = signal_text(WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  FarmOutcome o =
      c.job.members.empty() ? job_outcome(c, c.job, c.result_offset, failure, true) : bundle_outcome(c, failure);
  const int sig = !lost && c.reason == Child::kNone && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
    // Not sent by us: most likely the whole step is being stopped (scancel, mpirun) and the signal
    // reached the child first. Wait a moment for our own stop flag before reporting.
    held_.push_back({std::move(o), SteadyClock::now() + std::chrono::seconds(2)});
    return std::nullopt;
  }
  return o;
}

void ProcessPool::stop() {
  held_.clear();
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(int64_t(opts_.grace_s * 1000));
  for (auto& c : children_) {
    if (c.pid <= 0) continue;
    c.reason = Child::kStop;
    if (!c.term_sent) {
      signal_group(c.pid, SIGTERM);
      c.term_sent = true;
      c.kill_at = deadline;
    } else if (!c.kill_sent) {
      c.kill_at = std::min(c.kill_at, deadline);
    }
  }
}

void ProcessPool::kill_now() {
  for (auto& c : children_) {
    if (c.pid <= 0) continue;
    ::kill(-c.pid, SIGKILL);
    int st;
    ::waitpid(c.pid, &st, 0);
    c.pid = -1;
  }
  children_.clear();
}

// A bundle's time limit grows with its members.
double ProcessPool::time_limit_s(const Child& c) const {
  return opts_.job_timeout_s * double(std::max<size_t>(1, c.job.members.size()));
}

// The outcome of `job` (the child's job or a bundle's member) from its result file: an ok record
// (with --resume it may be an earlier one), else a does_not_fit or failed record written since
// `offset`; `failure` ("" = exit status 0) is how the child ended. `single`: the child ran this job
// alone, so an ok record counts only when it exited 0.
FarmOutcome ProcessPool::job_outcome(const Child& c, const FarmJob& job, int64_t offset, const std::string& failure,
                                     bool single) const {
  if (job.result_file.empty()) return outcome(c, failure.empty(), failure, json(), failure, &job);
  if (failure.empty() || !single) {
    auto rec = last_record_with_status(job.result_file, RecordStatus::kOk);
    if (!rec) rec = last_record_with_status(job.result_file, RecordStatus::kDoesNotFit, offset);
    if (rec) return outcome(c, true, "", *rec, failure, &job);
  }
  std::string msg = failure;
  auto f = last_record_with_status(job.result_file, RecordStatus::kFailed, offset);
  if (f && f->contains("error") && (*f)["error"].is_string())
    msg += (msg.empty() ? "" : ": ") + (*f)["error"].get<std::string>();
  if (msg.empty())
    msg = single ? "exited with status 0 but wrote no ok record to " + job.result_file
                 : "the bundle exited with status 0 but wrote no record to " + job.result_file;
  return outcome(c, false, msg, f ? *f : json(), failure, &job);
}

FarmOutcome ProcessPool::bundle_outcome(const Child& c, const std::string& failure) const {
  FarmOutcome o;
  o.key = c.job.key;
  for (size_t k = 0; k < c.job.members.size(); ++k)
    o.members.push_back(
        job_outcome(c, c.job.members[k], k < c.member_offsets.size() ? c.member_offsets[k] : 0, failure, false));
  return o;
}

FarmOutcome ProcessPool::outcome(const Child& c, bool ok, const std::string& error, const json& record,
                                 const std::string& ended, const FarmJob* member) const {
  FarmOutcome o;
  o.key = member ? member->key : c.job.key;
  o.ok = ok;
  o.rank = info_.rank;
  o.host = info_.host;
  o.threads = info_.threads;
  o.wall_s = seconds_since(c.start);
  o.argv = c.argv;
  o.time_utc = now_utc();
  o.record = record;
  o.ended = ended;
  if (!ok)
    o.error = error + "\n--- last lines of " + c.job.log_file + " ---\n" + log_tail(c.job.log_file, c.log_offset);
  return o;
}

// posix_spawn into a new process group; "" or the reason it failed.
std::string ProcessPool::spawn(Child& c) {
  const FarmJob& job = c.job;
  std::error_code ec;
  // First, so that a bundle that cannot start reads only what its members write from now on.
  c.member_offsets.clear();
  for (const auto& m : job.members) {
    if (fs::path(m.result_file).has_parent_path()) fs::create_directories(fs::path(m.result_file).parent_path(), ec);
    c.member_offsets.push_back(m.result_file.empty() ? 0 : file_size(m.result_file));
  }
  if (fs::path(job.log_file).has_parent_path()) fs::create_directories(fs::path(job.log_file).parent_path(), ec);
  if (!job.result_file.empty() && fs::path(job.result_file).has_parent_path())
    fs::create_directories(fs::path(job.result_file).parent_path(), ec);
  {  // the attempt's header line; the log is best effort
    std::ofstream log(job.log_file, std::ios::app);
    if (!log) return "cannot open log " + job.log_file + ": " + std::strerror(errno);
    std::string cmd;
    for (const auto& a : c.argv) cmd += (cmd.empty() ? "" : " ") + a;
    log << "\n=== " << opts_.label << " " << now_utc() << " rank " << info_.rank << " on " << info_.host << ", "
        << info_.threads << " thread(s): " << cmd << "\n";
  }
  c.log_offset = file_size(job.log_file);
  c.result_offset = job.result_file.empty() ? 0 : file_size(job.result_file);

  // Environment: ours minus MPI launcher variables, plus thread settings and the caller's.
  process::SpawnOptions so;
  so.argv = c.argv;  // [0] is opts_.program
  so.log_file = job.log_file;
  so.append_log = true;
  so.new_process_group = true;  // stopped and timed out as a group
  so.drop_env_prefixes = {"OMPI_", "PMIX_", "PMI_"};
  const std::string t = std::to_string(info_.threads);
  so.env = {{env::kOmpNumThreads, t},
            {"MKL_NUM_THREADS", t},
            {"OPENBLAS_NUM_THREADS", t},
            {env::kNoProgress, "1"},
            {env::kSweepParentPid, std::to_string(::getpid())},
            {env::kSweepJobKey, job.key},
            {env::kSweepRank, std::to_string(info_.rank)}};
  if (!opts_.threads_by.empty()) so.env[env::kThreadsBy] = opts_.threads_by;
  for (const auto& [k, v] : opts_.env) so.env[k] = v;
  try {
    c.pid = process::spawn(so);
  } catch (const Error& e) {
    c.pid = -1;
    return e.what();
  }
  return "";
}

}  // namespace petl

#include "core/threads.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/resource.h>
#include <thread>

#include "core/env.h"
#include "core/system.h"

namespace petl::threads {

namespace {

// Why the re-exec did not happen ("" when it was not attempted).
std::string g_exec_error;  // NOLINT: written once in main() before any thread starts

bool set_by_user(const char* name) { return !env::get(name).empty(); }

// Idle and total ticks per CPU of the affinity mask; false when /proc/stat is unreadable.
bool read_cpu_ticks(const cpu_set_t& mask, unsigned long long* idle, unsigned long long* total) {
  std::ifstream in("/proc/stat");
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  return mask_ticks(text.str(), mask, idle, total);
}

double own_cpu_seconds() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return double(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + 1e-6 * double(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

}  // namespace

bool parse_cpu_line(const std::string& line, int* cpu, unsigned long long* idle, unsigned long long* total) {
  if (line.compare(0, 3, "cpu") != 0) return false;
  std::istringstream s(line);
  std::string name;
  s >> name;
  if (name == "cpu") {
    *cpu = -1;
  } else {
    const std::string digits = name.substr(3);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return false;
    *cpu = std::stoi(digits);
  }
  unsigned long long v[8] = {0};
  int n = 0;
  while (n < 8 && s >> v[n]) ++n;
  if (n < 4) return false;
  *idle = v[3] + v[4];  // idle + iowait
  *total = 0;
  for (int k = 0; k < n; ++k) *total += v[k];
  return true;
}

void apply_default_wait_policy(char** argv) {
  if (set_by_user(env::kOmpWaitPolicy) || set_by_user(env::kGompSpincount)) return;
  // One thread has no team to wait in: no re-exec for `--threads 1` (e.g. petl demo's workers) or
  // OMP_NUM_THREADS=1 (a farm's one-thread jobs).
  if (env::get(env::kOmpNumThreads) == "1") return;
  for (char** a = argv; *a; ++a) {
    if (!std::strcmp(*a, "--threads=1") || (!std::strcmp(*a, "--threads") && a[1] && !std::strcmp(a[1], "1"))) return;
  }
  env::set(env::kGompSpincount, kDefaultSpinCount);
  env::set(env::kWaitPolicyByPetl, "1");
  ::execv("/proc/self/exe", argv);
  // Still here: the runtime started without it. Children would inherit a policy this process
  // does not have, so take the variables back.
  g_exec_error = std::string("re-exec failed: ") + std::strerror(errno);
  ::unsetenv(env::kGompSpincount);
  ::unsetenv(env::kWaitPolicyByPetl);
}

WaitPolicy wait_policy() {
  WaitPolicy w;
  const std::string p = env::get(env::kOmpWaitPolicy), s = env::get(env::kGompSpincount);
  if (!p.empty()) w.policy = std::string(env::kOmpWaitPolicy) + "=" + p;
  if (!s.empty()) w.policy += (w.policy.empty() ? "" : ", ") + std::string(env::kGompSpincount) + "=" + s;
  if (w.policy.empty()) {
    w.policy = "runtime default";
    if (!g_exec_error.empty()) w.policy += " (" + g_exec_error + ")";
  } else {
    w.by = env::flag(env::kWaitPolicyByPetl) ? "petl" : "environment";
  }
  return w;
}

bool mask_ticks(const std::string& proc_stat, const cpu_set_t& mask, unsigned long long* idle,
                unsigned long long* total) {
  std::istringstream in(proc_stat);
  std::string line;
  bool any = false;
  *idle = *total = 0;
  while (std::getline(in, line)) {
    int cpu = -1;
    unsigned long long i = 0, t = 0;
    if (!parse_cpu_line(line, &cpu, &i, &t) || cpu < 0) continue;
    if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask)) continue;
    *idle += i;
    *total += t;
    any = true;
  }
  return any;
}

double free_cores_between(const CpuSample& a, const CpuSample& b, double ticks_per_s, int cores) {
  const double wall = b.wall_s - a.wall_s;
  if (wall <= 0 || ticks_per_s <= 0) return -1;
  const double free_s = double(b.idle - a.idle) / ticks_per_s + (b.own_s - a.own_s);
  return std::clamp(free_s / wall, 0.0, double(cores));
}

double measure_free_cores(double window_s) {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return -1;
  auto sample = [&](CpuSample* s) {
    s->wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    s->own_s = own_cpu_seconds();
    return read_cpu_ticks(mask, &s->idle, &s->total);
  };
  CpuSample a, b;
  if (!sample(&a)) return -1;
  std::this_thread::sleep_for(std::chrono::duration<double>(window_s));
  if (!sample(&b)) return -1;
  return free_cores_between(a, b, double(sysconf(_SC_CLK_TCK)), CPU_COUNT(&mask));
}

ThreadChoice choose_threads(int requested, double window_s, const FreeCoresFn& measure) {
  ThreadChoice c;
  c.cores = available_cores();
  const std::string by = env::get(env::kThreadsBy);
  if (requested > 0) {
    c.threads = requested;
    c.chosen_by = by.empty() ? "--threads" : by;
    return c;
  }
  if (const std::string omp = env::get(env::kOmpNumThreads); !omp.empty()) {
    // The first entry of a nested list ("4,2") is this level's count.
    char* end = nullptr;
    const long n = std::strtol(omp.c_str(), &end, 10);
    if (n > 0 && end != omp.c_str()) {
      c.threads = int(n);
      c.chosen_by = by.empty() ? "OMP_NUM_THREADS" : by;  // a parent that set both says how it chose
      return c;
    }
  }
  if (c.cores == 1) {
    c.threads = 1;
    c.chosen_by = "one core";
    return c;
  }
  c.free_cores = measure ? measure(window_s) : measure_free_cores(window_s);
  if (c.free_cores < 0) {
    c.threads = c.cores;
    c.chosen_by = "all cores (/proc/stat unreadable)";
    return c;
  }
  c.free_cores = std::round(c.free_cores * 100) / 100;
  c.threads = std::clamp(int(std::lround(c.free_cores)), 1, c.cores);
  c.chosen_by = "free cores";
  return c;
}

}  // namespace petl::threads

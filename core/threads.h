// The thread policy of every petl process that computes: how its OpenMP threads wait between
// parallel regions, and how many intra-op threads a job uses. Torch-free: the caller applies the
// count (at::set_num_threads) and records the choice (provenance).
//
// Waiting. Debian's LibTorch runs on libgomp (OpenBLAS is its OpenMP build, oneDNN too), whose
// threads spin about 300,000 times before they sleep when OMP_WAIT_POLICY is unset. Beside a busy
// process a spinning thread takes turns on a core with it, and every barrier waits for a thread
// that is not running. Measured on this 2-core machine (full fine-tuning of the embedded backbone,
// fashion_mnist, 5 epochs, 2 threads; seconds alone / beside one `yes > /dev/null`; alone runs
// interleaved, 3-8 each, medians):
//   libgomp default (spin ~300k, then sleep)      3.9 / 20.3  (5.3x)
//   OMP_WAIT_POLICY=passive (never spin)          5.3 /  7.0  (idle machine ~40% slower: the small
//                                                              backbone's regions are microseconds apart)
//   GOMP_SPINCOUNT=1000 (short spin, then sleep)  4.0 /  8.6  (2.2x; 3% slower alone; ViT-B/16 alike)
//   GOMP_SPINCOUNT=3000 / 10000                   3.8 / 11.5, 3.7 / 20.6
//   one thread                                    5.5 /  5.7
// petl's default is therefore the short spin, and the thread count from the cores actually free
// (below), so that a job started beside a busy process runs on the free core alone and one that
// meets load later degrades by at most the short spin's factor.
// libgomp reads its environment when it is loaded, before main() runs, so setting a variable in
// main() is too late: apply_default_wait_policy() sets GOMP_SPINCOUNT (and PETL_WAIT_POLICY_BY_PETL)
// and re-executes the program once (one more process start: about 0.35 s, as Debian's LibTorch
// loads ~300 shared libraries; none for `--threads 1`). Children inherit the variables and start
// directly. A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone.
//
// Thread count (requested 0): OMP_NUM_THREADS when set; else the cores free now: over a short
// window (0.1 s), the idle time of the CPUs in this process's affinity mask (/proc/stat) plus this
// process's own CPU time (its threads count as free), divided by the window, rounded, between 1
// and the mask's size. Beside one busy process on 2 cores that is 1 thread.
#pragma once
#include <sched.h>

#include <functional>
#include <string>

namespace petl::threads {

// GOMP_SPINCOUNT petl sets when the user set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT.
constexpr const char* kDefaultSpinCount = "1000";

// Call first thing in main(), before anything starts a thread. Unless the user chose a wait policy
// (OMP_WAIT_POLICY or GOMP_SPINCOUNT set) or argv asks for one thread (`--threads 1`: no team to
// wait in), sets petl's default and re-executes /proc/self/exe with the same argv; returns only
// when nothing was to be done or the exec failed (the process then runs under the runtime's
// default, and wait_policy() says why).
void apply_default_wait_policy(char** argv);

// The wait policy this process's OpenMP runtime started with.
struct WaitPolicy {
  std::string policy;  // "GOMP_SPINCOUNT=1000", "OMP_WAIT_POLICY=passive", "OMP_WAIT_POLICY=active,
                       // GOMP_SPINCOUNT=10", or "runtime default"
  std::string by;      // "petl" (its default), "environment" (the user's), "" (nobody: runtime default)
};
WaitPolicy wait_policy();

struct ThreadChoice {
  int threads = 1;         // intra-op threads to use
  int cores = 1;           // CPUs in the affinity mask
  double free_cores = -1;  // measured free cores; -1 when not measured
  std::string chosen_by;   // "--threads", "OMP_NUM_THREADS", "free cores", "one core", or the
                           // caller's description (PETL_THREADS_BY, set by `petl demo` for its workers)
};

// Measures the free cores over a window of the given seconds (measure_free_cores; tests inject theirs).
using FreeCoresFn = std::function<double(double window_s)>;

// requested > 0: that many (chosen_by "--threads", or PETL_THREADS_BY when set). 0: as described
// above (from OMP_NUM_THREADS, chosen_by says PETL_THREADS_BY when set: a farm's children). window_s
// is the measuring window for free cores; `measure` how they are measured (default: the machine's).
ThreadChoice choose_threads(int requested, double window_s = 0.1, const FreeCoresFn& measure = {});

// Free cores of this process's affinity mask over window_s seconds (sleeps that long): idle CPU
// time plus this process's own CPU time, per second of the window; -1 when /proc/stat is unreadable.
double measure_free_cores(double window_s);

// The pieces of that measurement, pure functions of their inputs:
// one reading of the counters — the idle and all ticks of the CPUs in a mask (from /proc/stat's
// text), this process's CPU seconds and the wall clock;
struct CpuSample {
  unsigned long long idle = 0, total = 0;  // ticks, summed over the mask's CPUs
  double own_s = 0, wall_s = 0;
};
// the mask's CPU lines of /proc/stat text summed into *idle, *total (false: no CPU of the mask);
bool mask_ticks(const std::string& proc_stat, const cpu_set_t& mask, unsigned long long* idle,
                unsigned long long* total);
// and the free cores between two readings: (idle ticks / ticks_per_s + own seconds) per second of
// wall time, clamped to [0, cores] (-1 when no time passed).
double free_cores_between(const CpuSample& a, const CpuSample& b, double ticks_per_s, int cores);

// Parses one "cpuN user nice system idle iowait irq softirq steal ..." line of /proc/stat: the CPU
// index (-1 for the "cpu" total line), idle ticks (idle + iowait) and all ticks (first 8 fields).
// False when the line is not a cpu line.
bool parse_cpu_line(const std::string& line, int* cpu, unsigned long long* idle, unsigned long long* total);

}  // namespace petl::threads

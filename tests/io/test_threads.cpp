// Tests for core/threads (the thread policy): /proc/stat parsing, the thread choice (--threads,
// OMP_NUM_THREADS, PETL_THREADS_BY, free cores, this process's own busy threads) and the wait
// policy's description (who set it).
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <gtest/gtest.h>

#include "core/env.h"
#include "core/system.h"
#include "core/threads.h"

namespace petl {
namespace {

// Sets an environment variable for one test and restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name), old_(env::get(name)), had_(!old_.empty()) {
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_;
};

TEST(Threads, ParsesCpuLines) {
  int cpu = 0;
  unsigned long long idle = 0, total = 0;
  ASSERT_TRUE(threads::parse_cpu_line("cpu  100 5 50 1000 20 1 2 3 0 0", &cpu, &idle, &total));
  EXPECT_EQ(cpu, -1);
  EXPECT_EQ(idle, 1020u);                                   // idle + iowait
  EXPECT_EQ(total, 100u + 5 + 50 + 1000 + 20 + 1 + 2 + 3);  // guest time is already in user
  ASSERT_TRUE(threads::parse_cpu_line("cpu13 1 2 3 4", &cpu, &idle, &total));
  EXPECT_EQ(cpu, 13);
  EXPECT_EQ(idle, 4u);
  EXPECT_EQ(total, 10u);
  EXPECT_FALSE(threads::parse_cpu_line("intr 12345 0 0", &cpu, &idle, &total));
  EXPECT_FALSE(threads::parse_cpu_line("cpufreq 1 2 3 4", &cpu, &idle, &total));
  EXPECT_FALSE(threads::parse_cpu_line("cpu2 1 2", &cpu, &idle, &total));
}

TEST(Threads, RequestedCountWins) {
  ScopedEnv by(env::kThreadsBy, nullptr);
  ScopedEnv omp(env::kOmpNumThreads, "3");
  auto c = threads::choose_threads(5);
  EXPECT_EQ(c.threads, 5);
  EXPECT_EQ(c.chosen_by, "--threads");
  EXPECT_LT(c.free_cores, 0);  // not measured
  EXPECT_EQ(c.cores, available_cores());
}

TEST(Threads, CallerDescribesItsChoice) {
  ScopedEnv by(env::kThreadsBy, "petl demo: 1 thread(s) per job");
  EXPECT_EQ(threads::choose_threads(1).chosen_by, "petl demo: 1 thread(s) per job");
}

TEST(Threads, OmpNumThreadsWhenNotRequested) {
  ScopedEnv by(env::kThreadsBy, nullptr);
  {
    ScopedEnv omp(env::kOmpNumThreads, "3");
    auto c = threads::choose_threads(0);
    EXPECT_EQ(c.threads, 3);
    EXPECT_EQ(c.chosen_by, "OMP_NUM_THREADS");
  }
  {
    ScopedEnv omp(env::kOmpNumThreads, "2,1");  // nested list: this level's count
    EXPECT_EQ(threads::choose_threads(0).threads, 2);
  }
}

// The free cores from /proc/stat's counters, on synthetic readings (no timing on the live machine):
// only the affinity mask's CPUs count, idle ticks and this process's own CPU time are free, the
// result is clamped to the mask's size.
TEST(Threads, FreeCoresFromTheCountersOfTheMaskOnly) {
  const std::string stat =
      "cpu  300 0 0 900 0 0 0 0\n"
      "cpu0 100 0 0 300 0 0 0 0\n"
      "cpu1 100 0 0 300 0 0 0 0\n"
      "cpu2 100 0 0 300 0 0 0 0\n"
      "intr 1 2 3\n";
  cpu_set_t mask;
  CPU_ZERO(&mask);
  CPU_SET(0, &mask);
  CPU_SET(2, &mask);
  unsigned long long idle = 0, total = 0;
  ASSERT_TRUE(threads::mask_ticks(stat, mask, &idle, &total));
  EXPECT_EQ(idle, 600u);  // cpu0 + cpu2, not the total line, not cpu1
  EXPECT_EQ(total, 800u);
  CPU_ZERO(&mask);
  CPU_SET(7, &mask);
  EXPECT_FALSE(threads::mask_ticks(stat, mask, &idle, &total)) << "no CPU of the mask";
  // Two cores, 100 ticks a second, one second apart.
  threads::CpuSample a{1000, 5000, 3.0, 10.0}, b = a;
  b.wall_s = 11.0;
  b.idle = a.idle + 100;  // one core idle the whole second
  EXPECT_DOUBLE_EQ(threads::free_cores_between(a, b, 100, 2), 1.0);
  b.own_s = a.own_s + 0.5;  // and half a core of our own work: free for the job that measures
  EXPECT_DOUBLE_EQ(threads::free_cores_between(a, b, 100, 2), 1.5);
  b.idle = a.idle;  // no idle tick at all, and a whole core of our own work
  b.own_s = a.own_s + 1.0;
  EXPECT_DOUBLE_EQ(threads::free_cores_between(a, b, 100, 2), 1.0) << "our own spinning thread counts as free";
  b.idle = a.idle + 300;  // more idle than the mask holds (a sampling edge): clamped
  EXPECT_DOUBLE_EQ(threads::free_cores_between(a, b, 100, 2), 2.0);
  b.wall_s = a.wall_s;
  EXPECT_EQ(threads::free_cores_between(a, b, 100, 2), -1.0) << "no time passed";
}

// The thread count from the free cores, with the measurement injected: rounded, at least 1, at most
// the mask's cores; an unreadable measurement takes every core.
TEST(Threads, FreeCoresChooseTheCount) {
  ScopedEnv by(env::kThreadsBy, nullptr);
  ScopedEnv omp(env::kOmpNumThreads, nullptr);
  if (available_cores() < 2) GTEST_SKIP() << "one core: always one thread";
  auto with = [](double free) { return threads::choose_threads(0, 0.1, [free](double) { return free; }); };
  EXPECT_EQ(with(1.4).threads, 1);
  EXPECT_EQ(with(1.6).threads, 2);
  EXPECT_EQ(with(0.0).threads, 1) << "at least one";
  EXPECT_EQ(with(1e9).threads, available_cores()) << "at most the mask";
  EXPECT_EQ(with(1.6).chosen_by, "free cores");
  EXPECT_DOUBLE_EQ(with(1.234).free_cores, 1.23);
  const auto unreadable = with(-1);
  EXPECT_EQ(unreadable.threads, available_cores());
  EXPECT_EQ(unreadable.chosen_by, "all cores (/proc/stat unreadable)");
}

// The live measurement, as a smoke test: it reads this machine's counters and stays within bounds.
TEST(Threads, LiveMeasurementIsWithinTheMask) {
  const double f = threads::measure_free_cores(0.02);
  ASSERT_GE(f, 0.0) << "/proc/stat unreadable";
  EXPECT_LE(f, double(available_cores()));
}

TEST(Threads, WaitPolicyNamesWhoSetIt) {
  {
    ScopedEnv p(env::kOmpWaitPolicy, "passive"), s(env::kGompSpincount, nullptr), b(env::kWaitPolicyByPetl, nullptr);
    auto w = threads::wait_policy();
    EXPECT_EQ(w.policy, "OMP_WAIT_POLICY=passive");
    EXPECT_EQ(w.by, "environment");
  }
  {
    ScopedEnv p(env::kOmpWaitPolicy, nullptr), s(env::kGompSpincount, threads::kDefaultSpinCount),
        b(env::kWaitPolicyByPetl, "1");
    auto w = threads::wait_policy();
    EXPECT_EQ(w.policy, std::string("GOMP_SPINCOUNT=") + threads::kDefaultSpinCount);
    EXPECT_EQ(w.by, "petl");
  }
  {
    ScopedEnv p(env::kOmpWaitPolicy, nullptr), s(env::kGompSpincount, nullptr), b(env::kWaitPolicyByPetl, nullptr);
    auto w = threads::wait_policy();
    EXPECT_EQ(w.policy, "runtime default");
    EXPECT_EQ(w.by, "");
  }
}

}  // namespace
}  // namespace petl

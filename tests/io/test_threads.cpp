// Tests for core/threads (the thread policy): /proc/stat parsing, the thread choice (--threads,
// OMP_NUM_THREADS, PETL_THREADS_BY, free cores, this process's own busy threads) and the wait
// policy's description (who set it).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <gtest/gtest.h>
#include <thread>

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

TEST(Threads, FreeCoresWithinTheAffinityMask) {
  ScopedEnv by(env::kThreadsBy, nullptr);
  ScopedEnv omp(env::kOmpNumThreads, nullptr);
  const double f = threads::measure_free_cores(0.05);
  ASSERT_GE(f, 0.0) << "/proc/stat unreadable";
  EXPECT_LE(f, double(available_cores()));
  auto c = threads::choose_threads(0, 0.05);
  EXPECT_GE(c.threads, 1);
  EXPECT_LE(c.threads, c.cores);
  if (c.cores > 1) {
    EXPECT_EQ(c.chosen_by, "free cores");
    EXPECT_GE(c.free_cores, 0.0);
  }
}

TEST(Threads, OwnBusyThreadsCountAsFree) {
  if (available_cores() < 2) GTEST_SKIP() << "one core";
  // This process spinning on a core must not make that core look taken: its own CPU time counts
  // as free (otherwise a job would see its previous job's spinning threads as load). Other tests
  // run beside this one (ctest -j2), so the check is relative: the free cores measured while our
  // thread spins are not fewer than without it (less a margin for the others' noise). Were our
  // own time counted as load, a spinning thread would take up to a whole core away.
  const double before = threads::measure_free_cores(0.2);
  std::atomic<bool> stop{false};
  std::thread spin([&] {
    while (!stop.load(std::memory_order_relaxed)) {
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double during = threads::measure_free_cores(0.2);
  stop = true;
  spin.join();
  const double after = threads::measure_free_cores(0.2);
  EXPECT_GE(during, std::min(before, after) - 0.35)
      << "free cores while a thread of ours spins (before " << before << ", after " << after << ")";
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

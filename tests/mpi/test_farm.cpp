// Multi-rank tests of the sweep farm (harness/farm): every job runs exactly once and is journaled
// once; failures, crashes (SIGKILL), time limits and failed feature caches are recorded and the
// sweep goes on; resume skips finished work; a torn journal line is cut; a stop signal that
// reaches a single rank stops every rank with status 143 and a re-run completes the sweep.
// The jobs are tests/mpi/fake_petl.sh, which honours the argv contract of `petl run` and
// `petl cache build`. Run under mpirun with any number of ranks (1, 2, 4); this file has its own
// main() calling MPI_Init/MPI_Finalize. Checks run on rank 0; every TEST is collective.
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <set>
#include <sys/stat.h>

#include "app/job_args.h"
#include "app/sweep_jobs.h"
#include "harness/sweep/farm.h"
#include "harness/sweep/farm_reporter.h"
#include "harness/sweep/sweep_config.h"
#include "harness/sweep/sweep_journal.h"

#ifndef PETL_TEST_DIR
#error "PETL_TEST_DIR must name the tests/ directory (fake_petl.sh lives in tests/mpi/)"
#endif

namespace petl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

int g_rank = 0, g_size = 1;

std::string bcast_string(std::string s) {
  int n = int(s.size());
  MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
  s.resize(size_t(n));
  MPI_Bcast(s.data(), n, MPI_CHAR, 0, MPI_COMM_WORLD);
  return s;
}

// Exit codes of every rank, on rank 0.
std::vector<int> all_codes(int code) {
  std::vector<int> codes(static_cast<size_t>(g_size), 0);
  MPI_Gather(&code, 1, MPI_INT, codes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  return codes;
}

std::map<std::string, std::vector<json>> journal_lines(const std::string& path) {
  std::map<std::string, std::vector<json>> out;
  std::ifstream is(path);
  std::string line;
  while (std::getline(is, line)) {
    json j = json::parse(line);  // throws (fails the test) on a torn or corrupt line
    out[j.at("sweep_key").get<std::string>()].push_back(j);
  }
  return out;
}

// key → number of starts ("<key> <kind> start" lines written by fake_petl.sh).
std::map<std::string, int> starts(const std::string& runs_log) {
  std::map<std::string, int> n;
  std::ifstream is(runs_log);
  std::string key, kind, what;
  while (is >> key >> kind >> what)
    if (what == "start") n[key]++;
  return n;
}

class Sweep {
 public:
  explicit Sweep(const std::string& name) {
    std::string d;
    if (g_rank == 0) {
      d = (fs::temp_directory_path() / ("petl_test_farm_" + name + "_" + std::to_string(::getpid()))).string();
      fs::remove_all(d);
      fs::create_directories(fs::path(d) / "data");
      fs::create_directories(fs::path(d) / "state");
      fake_ = d + "/fake_petl.sh";
      fs::copy_file(std::string(PETL_TEST_DIR) + "/mpi/fake_petl.sh", fake_);
      ::chmod(fake_.c_str(), 0755);
    }
    dir_ = bcast_string(d);
    fake_ = dir_ + "/fake_petl.sh";
    runs_log_ = dir_ + "/runs.log";
  }
  ~Sweep() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0 && !::testing::Test::HasFailure()) fs::remove_all(dir_);
  }

  // Plans a sweep over fake methods; lin* methods need a "cls" cache (train800val200, test).
  // Methods whose name starts with "lin" (with `anywhere`: contains it) train on a cls cache.
  SweepPlan plan(const std::string& body, bool anywhere = false) const {
    std::string yaml = "name: farmtest\nout: " + dir_ + "/out\ndata_root: " + dir_ + "/data\n" + body;
    PlanOptions o;
    o.cache_need = [anywhere](const std::string& m, const std::string&, const std::string&,
                              const std::map<std::string, std::string>&, Benchmark) -> std::optional<CacheNeed> {
      if (anywhere ? m.find("lin") != std::string::npos : m.rfind("lin", 0) == 0)
        return CacheNeed{CacheTaps::parse("cls"), {"train800val200", "test"}, ""};
      return std::nullopt;
    };
    return plan_sweep(parse_sweep_config(yaml, "farmtest.yaml"), o);
  }

  FarmOptions options(const SweepPlan&, double sleep_s = 0.02) const {
    FarmOptions f;
    f.program = fake_;
    f.poll_s = 0.01;
    f.grace_s = 5;
    f.env = {
        {"FAKE_RUNS_LOG", runs_log_}, {"FAKE_STATE_DIR", dir_ + "/state"}, {"FAKE_SLEEP", std::to_string(sleep_s)}};
    f.bundle_command = cli::bundle_command;
    return f;
  }

  int run(const SweepPlan& p, const FarmOptions& f, std::vector<FarmJob> extra = {}) const {
    auto jobs = cli::farm_jobs_from_plan(p.jobs);
    for (auto& e : extra) jobs.push_back(e);
    SweepReporter::Options ro;
    ro.journal = p.journal;
    ro.sweep_name = p.config.name;
    ro.retry_failed = f.retry_failed;
    ro.verbose = false;
    SweepReporter reporter(ro);
    return run_farm(g_rank == 0 ? jobs : std::vector<FarmJob>{}, f, reporter, MPI_COMM_WORLD);
  }

  const std::string& dir() const { return dir_; }
  const std::string& runs_log() const { return runs_log_; }

 private:
  std::string dir_, fake_, runs_log_;
};

std::set<std::string> plan_keys(const SweepPlan& p) {
  std::set<std::string> k;
  for (auto& j : p.jobs) k.insert(j.key);
  return k;
}

std::string method_of_key(const SweepPlan& p, const std::string& key) {
  for (auto& j : p.jobs)
    if (j.key == key) return j.is_cache ? "cache:" + j.task : j.method + ":" + j.task;
  return "?";
}

TEST(Farm, EveryJobRunsAndIsJournaledExactlyOnce) {
  Sweep s("once");
  auto p = s.plan("methods: [ok_a, ok_b, lin]\ntasks: [t1, t2, t3]\nseeds: [1, 2]\ngrid: {lr: [1, 2]}\n");
  auto f = s.options(p);
  auto codes = all_codes(s.run(p, f));
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmOk);
    auto lines = journal_lines(p.journal);
    auto st = starts(s.runs_log());
    EXPECT_EQ(plan_keys(p).size(), 39u);  // 3 × 3 × 2 × 2 training + 3 caches
    std::set<int> ranks;
    std::map<std::string, size_t> order;  // key → journal line number
    {
      std::ifstream is(p.journal);
      std::string line;
      size_t n = 0;
      while (std::getline(is, line)) order[json::parse(line)["sweep_key"]] = n++;
    }
    for (auto& j : p.jobs) {
      ASSERT_EQ(lines[j.key].size(), 1u) << j.key << " " << method_of_key(p, j.key);
      const json& r = lines[j.key][0];
      EXPECT_EQ(r["status"], "ok") << r.dump();
      EXPECT_EQ(r["sweep"], "farmtest");
      EXPECT_EQ(st[j.key], 1) << "job " << j.key << " started " << st[j.key] << " times";
      if (j.is_cache) {
        EXPECT_EQ(r["schema"], "petl.sweep_cache");
        EXPECT_EQ(r["kind"], "cache");
      } else {
        EXPECT_EQ(r["schema"], "petl.result");
        EXPECT_EQ(r["method"], j.method);
        EXPECT_EQ(r["task"], j.task);
        EXPECT_EQ(r["seed"], j.seed);
        EXPECT_TRUE(r["accuracy"].is_number());
      }
      if (!j.depends_on.empty()) {
        EXPECT_LT(order[j.depends_on], order[j.key]) << "ran before its cache";
      }
      ranks.insert(r["sweep_rank"].get<int>());
    }
    EXPECT_EQ(lines.size(), p.jobs.size());
    if (g_size > 1) {
      EXPECT_GT(ranks.size(), 1u) << "only one rank ran jobs";
    }
    // The 4 lin jobs of each task share its cache: one bundle child per task ran them.
    std::map<std::string, int> bundles;
    for (auto& j : p.jobs)
      if (j.method == "lin") ++bundles[j.bundle];
    EXPECT_EQ(bundles.size(), 3u);
    for (auto& [b, n] : bundles) {
      EXPECT_FALSE(b.empty());
      EXPECT_EQ(n, 4) << b;
      EXPECT_TRUE(fs::exists(s.dir() + "/out/logs/bundle-" + b + ".log")) << b;
    }
  }
  // Resume of a finished sweep: nothing runs, nothing is written.
  const auto size_before = g_rank == 0 ? fs::file_size(p.journal) : 0;
  codes = all_codes(s.run(p, f));
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmOk);
    EXPECT_EQ(fs::file_size(p.journal), size_before);
    for (auto& [k, n] : starts(s.runs_log())) EXPECT_EQ(n, 1) << k;
  }
}

TEST(Farm, FailuresAndCrashesAreRecordedAndTheRestRuns) {
  Sweep s("fail");
  auto p = s.plan("methods: [ok_a, fail_b, crash_c]\ntasks: [t1, t2]\nseeds: [7]\nprotocol: final\n");
  auto f = s.options(p);
  auto codes = all_codes(s.run(p, f));
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmJobsFailed);
    auto lines = journal_lines(p.journal);
    for (auto& j : p.jobs) {
      ASSERT_EQ(lines[j.key].size(), 1u) << j.method;
      const json& r = lines[j.key][0];
      if (j.method == "ok_a") {
        EXPECT_EQ(r["status"], "ok");
        continue;
      }
      // The fields of petl::failed_record, plus sweep_key, sweep and the log.
      for (auto* k : {"schema", "schema_version", "status", "error", "method", "task", "seed", "protocol", "provenance",
                      "sweep_key", "sweep", "log"})
        EXPECT_TRUE(r.contains(k)) << k << " missing in " << r.dump();
      EXPECT_EQ(r["schema"], "petl.result");
      EXPECT_EQ(r["schema_version"], 1);
      EXPECT_EQ(r["status"], "failed");
      EXPECT_EQ(r["method"], j.method);
      EXPECT_EQ(r["seed"], 7);
      EXPECT_EQ(r["protocol"], "final");
      EXPECT_TRUE(r["provenance"]["host"].is_string());
      EXPECT_TRUE(r["provenance"]["argv"].is_array());
      EXPECT_TRUE(fs::exists(r["log"].get<std::string>()));
      const std::string e = r["error"];
      if (j.method == "fail_b") {
        EXPECT_EQ(e.rfind("exit status 2: training diverged", 0), 0u) << e;
        EXPECT_NE(e.find("--- last lines of"), std::string::npos) << e;
        EXPECT_NE(e.find("petl run: error: training diverged"), std::string::npos) << e;  // the log tail
      } else {
        EXPECT_EQ(e.rfind("killed by signal 9 (out of memory or killed)", 0), 0u) << e;
        EXPECT_NE(e.find("allocating a lot of memory"), std::string::npos) << e;
      }
    }
  }
  // Without retry_failed a re-run starts nothing; with it, only the failed jobs run again.
  codes = all_codes(s.run(p, f));
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmJobsFailed);
    for (auto& [k, n] : starts(s.runs_log())) EXPECT_EQ(n, 1) << k;
  }
  f.retry_failed = true;
  codes = all_codes(s.run(p, f));
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmJobsFailed);
    auto st = starts(s.runs_log());
    auto lines = journal_lines(p.journal);
    for (auto& j : p.jobs) {
      EXPECT_EQ(st[j.key], j.method == "ok_a" ? 1 : 2) << j.method;
      EXPECT_EQ(lines[j.key].size(), j.method == "ok_a" ? 1u : 2u) << j.method;
    }
  }
}

TEST(Farm, TimeLimitStopsTheJobAndRecordsIt) {
  Sweep s("timeout");
  auto p = s.plan("methods: [slow_s, ok_a]\ntasks: [t1]\nseeds: [1]\n");
  auto f = s.options(p);
  f.job_timeout_s = 1;
  f.kill_after_s = 1;
  // The slow job sleeps 600 s: that the farm ends at all (before ctest's limit) is the limit working;
  // no wall-clock bound is asserted here.
  auto codes = all_codes(s.run(p, f));
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmJobsFailed);
    auto lines = journal_lines(p.journal);
    for (auto& j : p.jobs) {
      ASSERT_EQ(lines[j.key].size(), 1u);
      const json& r = lines[j.key][0];
      if (j.method == "slow_s") {
        EXPECT_EQ(r["status"], "failed");
        EXPECT_EQ(r["error"].get<std::string>().rfind("time limit of 1 s exceeded", 0), 0u) << r["error"];
        EXPECT_NE(r["error"].get<std::string>().find("this takes forever"), std::string::npos);
        EXPECT_GE(r["sweep_wall_s"].get<double>(), 1.0) << "it ran its whole limit";
      } else {
        EXPECT_EQ(r["status"], "ok");
      }
    }
  }
}

TEST(Farm, AFailedFeatureCacheFailsItsDependentsWithoutRunningThem) {
  Sweep s("cachefail");
  auto p = s.plan("methods: [lin, ok_a]\ntasks: [badcache, t1]\nseeds: [1, 2]\n");
  auto f = s.options(p);
  auto codes = all_codes(s.run(p, f));
  std::string bad_cache;
  for (auto& j : p.jobs)
    if (j.is_cache && j.task == "badcache") bad_cache = j.key;
  if (g_rank == 0) {
    ASSERT_FALSE(bad_cache.empty());
    for (int c : codes) EXPECT_EQ(c, kFarmJobsFailed);
    auto lines = journal_lines(p.journal);
    auto st = starts(s.runs_log());
    for (auto& j : p.jobs) {
      ASSERT_EQ(lines[j.key].size(), 1u) << method_of_key(p, j.key);
      const json& r = lines[j.key][0];
      if (j.key == bad_cache) {
        EXPECT_EQ(r["status"], "failed");
        EXPECT_EQ(r["kind"], "cache");
        EXPECT_EQ(r["error"].get<std::string>().rfind("exit status 3", 0), 0u) << r["error"];
      } else if (j.depends_on == bad_cache) {
        EXPECT_EQ(r["status"], "failed");
        EXPECT_EQ(r["schema"], "petl.result");
        EXPECT_EQ(r["error"].get<std::string>().rfind("feature cache " + bad_cache + " failed: exit status 3", 0), 0u)
            << r["error"];
        EXPECT_EQ(st[j.key], 0) << "a dependent of a failed cache was started";
      } else {
        EXPECT_EQ(r["status"], "ok") << r.dump();
      }
    }
  }
  // With retry_failed the cache is tried again, and its dependents are failed again (not run).
  f.retry_failed = true;
  codes = all_codes(s.run(p, f));
  if (g_rank == 0) {
    auto st = starts(s.runs_log());
    EXPECT_EQ(st[bad_cache], 2);
    for (auto& j : p.jobs)
      if (j.depends_on == bad_cache) {
        EXPECT_EQ(st[j.key], 0);
      }
  }
}

TEST(Farm, ATornJournalLineIsCutAndFinishedJobsAreSkipped) {
  Sweep s("torn");
  auto p = s.plan("methods: [ok_a]\ntasks: [t1, t2]\nseeds: [1, 2]\n");
  std::string done_key = p.jobs[1].key;
  if (g_rank == 0) {
    append_journal_line(p.journal, {{"schema", "petl.result"},
                                    {"schema_version", 1},
                                    {"status", "ok"},
                                    {"method", "ok_a"},
                                    {"sweep_key", done_key},
                                    {"sweep", "farmtest"}});
    std::ofstream(p.journal, std::ios::app) << "{\"schema\":\"petl.result\",\"status\":\"ok\",\"sweep_key\":\""
                                            << p.jobs[2].key << "\",\"acc";  // killed mid-write
  }
  auto codes = all_codes(s.run(p, s.options(p)));
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmOk);
    auto lines = journal_lines(p.journal);  // every line parses
    auto st = starts(s.runs_log());
    EXPECT_EQ(st[done_key], 0);
    for (auto& j : p.jobs) EXPECT_EQ(lines[j.key].size(), 1u) << j.key;
    EXPECT_FALSE(read_journal(p.journal).torn);
  }
}

TEST(Farm, ABundleRecordsEachJobAloneAndACrashFailsOnlyTheJobsItStopped) {
  Sweep s("bundle");
  // One cache, one bundle of four jobs in plan order: ok, failed, crash (SIGKILL takes the bundle
  // down), and one that never ran.
  auto p = s.plan("methods: [lin_a, fail_lin, crash_lin, lin_z]\ntasks: [t1]\nseeds: [1]\n", true);
  std::map<std::string, std::string> key_of;
  for (auto& j : p.jobs)
    if (!j.is_cache) {
      key_of[j.method] = j.key;
      EXPECT_EQ(j.bundle, p.jobs[0].key + "-0") << j.method;
    }
  auto codes = all_codes(s.run(p, s.options(p)));
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmJobsFailed);
    auto lines = journal_lines(p.journal);
    auto st = starts(s.runs_log());
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[key_of["lin_a"]][0]["status"], "ok");
    EXPECT_EQ(lines[key_of["lin_a"]][0]["accuracy"], 51.5);
    const std::string fail = lines[key_of["fail_lin"]][0].value("error", "");
    EXPECT_NE(fail.find("training diverged"), std::string::npos) << fail;
    const std::string crash = lines[key_of["crash_lin"]][0].value("error", "");
    EXPECT_NE(crash.find("killed by signal 9"), std::string::npos) << crash;
    const std::string never = lines[key_of["lin_z"]][0].value("error", "");
    EXPECT_NE(never.find("killed by signal 9"), std::string::npos) << never;
    EXPECT_EQ(st[key_of["lin_z"]], 0) << "the job after the crash never started";
    for (auto& [m, k] : key_of) EXPECT_EQ(lines[k].size(), 1u) << m;
  }
  // Re-run with retry_failed: the ok job is not run again; the others run in one bundle again.
  auto f = s.options(p);
  f.retry_failed = true;
  codes = all_codes(s.run(p, f));
  if (g_rank == 0) {
    auto st = starts(s.runs_log());
    EXPECT_EQ(st[key_of["lin_a"]], 1);
    EXPECT_EQ(st[key_of["fail_lin"]], 2);
    EXPECT_EQ(st[key_of["lin_z"]], 0);
  }
}

TEST(Farm, ASignalOnOneRankStopsEveryRankAndAReRunCompletes) {
  Sweep s("signal");
  auto p = s.plan("methods: [ok_a, ok_b]\ntasks: [t1, t2, t3]\nseeds: [1, 2]\n");
  auto f = s.options(p, 0.3);
  // Extra jobs, dispatched first (one per rank): the one that runs on the last rank sends SIGUSR2
  // to that rank (the first time) — a worker with several ranks, rank 0 alone with one.
  f.env["FAKE_SIGNAL_RANK"] = std::to_string(g_size - 1);
  std::vector<FarmJob> sigs;
  for (int r = 0; r < g_size; ++r) {
    FarmJob sig = cli::farm_jobs_from_plan({p.jobs[0]})[0];
    sig.key = "516700000000000" + std::to_string(r);
    for (size_t i = 0; i + 1 < sig.argv.size(); ++i) {
      if (sig.argv[i] == "--method") sig.argv[i + 1] = "sigparent_x";
      if (sig.argv[i] == "--out") sig.argv[i + 1] = s.dir() + "/out/jobs/" + sig.key;
    }
    sig.result_file = s.dir() + "/out/jobs/" + sig.key + "/results.jsonl";
    sig.log_file = s.dir() + "/out/logs/" + sig.key + ".log";
    sig.identity["method"] = "sigparent_x";
    sig.cost = 1e12;
    sigs.push_back(sig);
  }
  auto codes = all_codes(s.run(p, f, sigs));  // the signalled job sleeps 600 s: ending at all is the stop
  int stop_signal = farm_stop_signal();
  std::vector<int> signals(static_cast<size_t>(g_size), 0);
  MPI_Gather(&stop_signal, 1, MPI_INT, signals.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  farm_clear_stop_request();
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmInterrupted);
    int signalled = 0;
    for (int x : signals) signalled += x == SIGUSR2;
    EXPECT_EQ(signalled, 1) << "exactly one rank received the signal";
    EXPECT_EQ(signals[size_t(g_size - 1)], SIGUSR2) << "the last rank should have received it";
    auto lines = journal_lines(p.journal);
    int sig_recorded = 0;
    for (auto& sj : sigs) sig_recorded += int(lines.count(sj.key));
    EXPECT_LT(sig_recorded, g_size) << "the interrupted job was recorded";
    EXPECT_LT(lines.size(), p.jobs.size()) << "the sweep was not stopped";
    for (auto& [k, v] : lines) EXPECT_EQ(v.size(), 1u) << k;
  }
  // Resume: the signal job now behaves, everything finishes, no key twice.
  f = s.options(p, 0.02);
  codes = all_codes(s.run(p, f, sigs));
  if (g_rank == 0) {
    for (int c : codes) EXPECT_EQ(c, kFarmOk);
    auto lines = journal_lines(p.journal);
    auto want = plan_keys(p);
    for (auto& sj : sigs) want.insert(sj.key);
    std::set<std::string> got;
    for (auto& [k, v] : lines) {
      got.insert(k);
      EXPECT_EQ(v.size(), 1u) << k;
      EXPECT_EQ(v[0]["status"], "ok");
    }
    EXPECT_EQ(got, want);
    auto st = starts(s.runs_log());
    int restarted = 0;
    for (auto& sj : sigs) restarted += st[sj.key] == 2;
    EXPECT_GE(restarted, 1) << "the signalling job was not run again";
  }
}

// The demo's farm: one process, no MPI, several slots. Every job runs once, at most `slots` at a
// time and (with jobs long enough to overlap) `slots` at once; a reporter of the caller's own gets
// every outcome. Runs on rank 0 alone.
TEST(Farm, OneProcessRunsSlotsChildrenAtOnceWithoutMpi) {
  Sweep s("local");
  auto p = s.plan("methods: [ok_a, ok_b, fail_c]\ntasks: [t1, t2]\nseeds: [1]\n");
  if (g_rank != 0) return;
  struct Collect final : FarmReporter {
    std::map<std::string, FarmOutcome> got;
    void finished(const FarmJob& job, const FarmOutcome& o, int, int) override { got[job.key] = o; }
  } collect;
  FarmOptions f = s.options(p, 0.4);
  f.slots = 3;
  f.threads = 1;
  const int code = run_local_farm(cli::farm_jobs_from_plan(p.jobs), f, collect);
  EXPECT_EQ(code, kFarmJobsFailed);
  ASSERT_EQ(collect.got.size(), p.jobs.size());
  for (auto& j : p.jobs) {
    const FarmOutcome& o = collect.got.at(j.key);
    EXPECT_EQ(o.ok, j.method != "fail_c") << j.method;
    EXPECT_EQ(o.rank, 0);
    EXPECT_EQ(o.threads, 1);
    if (o.ok) EXPECT_EQ(o.record.value("method", ""), j.method);
    if (!o.ok) EXPECT_NE(o.error.find("training diverged"), std::string::npos) << o.error;
  }
  // Concurrency from the runs log: +1 at each start, -1 at each end (failed jobs log no end: they
  // exit at once).
  std::ifstream is(s.runs_log());
  std::string key, kind, what;
  int now = 0, most = 0;
  while (is >> key >> kind >> what) {
    if (what == "start") most = std::max(most, ++now);
    if (what == "end") --now;
  }
  EXPECT_EQ(most, 3) << "three slots: three 0.4 s jobs at once";
}

TEST(Farm, OutcomesSurviveAMessageRoundTrip) {
  FarmOutcome o;
  o.key = "bundle:x";
  FarmOutcome m;
  m.key = "k";
  m.ok = true;
  m.record = {{"status", "ok"}, {"accuracy", 51.5}};
  m.rank = 3;
  m.host = "h";
  m.threads = 2;
  m.wall_s = 1.25;
  m.argv = {"petl", "run"};
  m.time_utc = "2026-12-06T00:00:00Z";
  o.members = {m, m};
  o.members[1].ok = false;
  o.members[1].error = "exit status 2: boom";
  const FarmOutcome b = farm_outcome_from_json(json::parse(farm_outcome_to_json(o).dump()));
  EXPECT_EQ(farm_outcome_to_json(b), farm_outcome_to_json(o));
  ASSERT_EQ(b.members.size(), 2u);
  EXPECT_EQ(b.members[0].record["accuracy"], 51.5);
  EXPECT_EQ(b.members[1].error, "exit status 2: boom");
}

TEST(Farm, JobsSurviveAMessageRoundTrip) {
  FarmJob j;
  j.key = "k";
  j.argv = {"run", "--method", "m"};
  j.cost = 3.5;
  j.depends_on = "c";
  j.is_cache = false;
  j.identity = {{"method", "m"}, {"seed", 1}};
  j.result_file = "/r";
  j.log_file = "/l";
  FarmJob k = farm_job_from_json(json::parse(farm_job_to_json(j).dump()));
  EXPECT_EQ(k.key, j.key);
  EXPECT_EQ(k.argv, j.argv);
  EXPECT_EQ(k.cost, j.cost);
  EXPECT_EQ(k.depends_on, j.depends_on);
  EXPECT_EQ(k.identity, j.identity);
  EXPECT_EQ(k.result_file, j.result_file);
  EXPECT_EQ(k.log_file, j.log_file);
}

}  // namespace
}  // namespace petl

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &petl::g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &petl::g_size);
  ::testing::InitGoogleTest(&argc, argv);
  if (petl::g_rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}

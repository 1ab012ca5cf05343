// `petl demo`: the main job — every registered method on every task of the embedded suite with
// the embedded backbone (the suite is built on first use), a table of accuracy, trainable
// parameters and peak training memory, and the report of this run's records. The jobs run one per
// free core at a time, each a `petl run` process with one thread (measured on 2 cores: 2 such
// workers train the 85 jobs in 395-408 s, one 2-thread process in 608-635 s, same accuracies), or
// one after another in this process (--jobs 1).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "app/cli_util.h"
#include "app/commands.h"
#include "core/env.h"
#include "core/process.h"
#include "core/system.h"
#include "core/text.h"
#include "core/threads.h"
#include "datasets/suite_mini.h"
#include "datasets/vtab.h"
#include "core/error.h"
#include "harness/train/job.h"
#include "io/journal.h"
#include "results/report.h"

namespace petl::cli {
namespace fs = std::filesystem;

namespace {

struct DemoJob {
  std::string method, task;
};

struct DemoOptions {
  std::string out, data, recipe, backbone;
  int epochs = JobSpec::kRecipeValue;  // the recipe's unless --epochs
  int threads = 0;  // per job; 0: chosen per job (in process) or 1 (workers)
  bool progress = true, fresh = false;
  Args argv;
};

JobSpec demo_spec(const DemoJob& j, const DemoOptions& o) {
  JobSpec s;
  s.method = j.method;
  s.task = j.task;
  s.data_root = o.data;
  s.recipe = o.recipe;
  s.epochs = o.epochs;
  s.threads = o.threads;
  s.out_dir = o.out;
  s.backbone_file = o.backbone;
  s.progress = o.progress;
  s.reuse_done = !o.fresh;  // a re-run after a kill picks up where it stopped
  s.argv = o.argv;
  return s;
}

// Every job in this process, one after another (--jobs 1).
std::vector<Record> run_in_process(const std::vector<DemoJob>& jobs, const DemoOptions& o) {
  std::vector<Record> recs;
  for (const auto& j : jobs) {
    JobSpec s = demo_spec(j, o);
    try {
      recs.push_back(run_job(s));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[petl] job %s/%s failed: %s\n", j.method.c_str(), j.task.c_str(), e.what());
      auto f = failed_record(s, e.what());
      append_record(o.out, f);
      recs.push_back(f);
    }
  }
  return recs;
}

// How many jobs run at once: a fixed number (--jobs N), or (--jobs 0) as many as there are cores
// free for them: a further job starts only when the cores its threads need are idle (measured over
// 0.05 s when a job ends, else every 2 s), so the demo takes the cores other work leaves, grows when
// they free up, and shrinks (by not replacing a finished job) when other work starts.
struct WorkerPolicy {
  int max_workers = 1;
  bool adaptive = false;
  std::string describe() const {
    return adaptive ? str_cat("up to ", max_workers, " at once, one per free core") : str_cat(max_workers, " at once (--jobs)");
  }
};

// Up to one job per core, one per GiB of available memory (a job of the embedded suite peaks near
// 0.4 GiB resident) and one per job.
WorkerPolicy worker_policy(int jobs_opt, size_t n_jobs) {
  WorkerPolicy w;
  w.adaptive = jobs_opt == 0;
  w.max_workers = jobs_opt > 0 ? jobs_opt : available_cores();
  if (const int64_t mem = available_memory_bytes(); w.adaptive && mem > 0)
    w.max_workers = int(std::min<int64_t>(w.max_workers, std::max<int64_t>(1, mem >> 30)));
  w.max_workers = std::max(1, std::min(w.max_workers, int(n_jobs)));
  return w;
}

// The jobs, each a `petl run` child with o.threads threads (posix_spawn: no fork after OpenMP
// started), as many at once as the WorkerPolicy allows. Children append their records to
// <out>/results.jsonl themselves (one O_APPEND write each) and hand the record back through
// --record-file; a child that dies without a record gets a failed record here, with the end of its
// log. One line per finished job on stderr.
class DemoWorkers {
 public:
  DemoWorkers(const std::vector<DemoJob>& jobs, const DemoOptions& o, const WorkerPolicy& policy)
      : jobs_(jobs), o_(o), policy_(policy), logs_(fs::path(o.out) / "logs" / "demo"),
        self_(process::self_executable()), recs_(jobs.size()) {
    threads_by_ = str_cat("petl demo: ", o.threads, " thread(s) per job, ", policy.describe());
  }

  std::vector<Record> run() {
    fs::create_directories(logs_);
    std::fprintf(stderr, "[petl] %zu jobs, %s, each a `petl run` process with %d thread(s); logs in %s\n",
                 jobs_.size(), policy_.describe().c_str(), o_.threads, logs_.c_str());
    while (finished_ < jobs_.size()) {
      while (next_ < jobs_.size() && may_start_another()) start(next_++);
      bool any = false;
      for (size_t k = 0; k < running_.size();) {
        if (auto st = process::poll(running_[k].pid)) {
          collect(running_[k], *st);
          running_.erase(running_.begin() + long(k));
          next_check_ = Clock::now();  // a core was just freed
          any = true;
        } else {
          ++k;
        }
      }
      if (!any) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::vector<Record> out;
    for (auto& r : recs_) out.push_back(std::move(*r));
    return out;
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Running {
    size_t index;
    pid_t pid;
    std::string log, record_file;
    Clock::time_point start;
  };

  // Whether one more job may start now.
  bool may_start_another() {
    if (running_.empty()) return true;
    if (int(running_.size()) >= policy_.max_workers) return false;
    if (!policy_.adaptive) return true;
    if (Clock::now() < next_check_) return false;
    const double idle = threads::measure_free_cores(0.05);  // the cores a new job's threads would get
    if (idle < 0 || idle >= o_.threads - 0.5) return true;
    next_check_ = Clock::now() + std::chrono::seconds(2);  // busy elsewhere: look again later
    return false;
  }

  void start(size_t i) {
    const DemoJob& j = jobs_[i];
    const std::string stem = j.method + "_" + j.task;
    Running r{i, -1, (logs_ / (stem + ".log")).string(), (logs_ / (stem + ".record.json")).string(), Clock::now()};
    fs::remove(r.record_file);
    process::SpawnOptions so;
    so.argv = {self_, "run", "--method", j.method, "--task", j.task, "--data-root", o_.data, "--recipe", o_.recipe,
               "--threads", std::to_string(o_.threads), "--out", o_.out, "--no-progress", "--record-file", r.record_file};
    if (o_.epochs != JobSpec::kRecipeValue) so.argv.insert(so.argv.end(), {"--epochs", std::to_string(o_.epochs)});
    if (!o_.backbone.empty()) so.argv.insert(so.argv.end(), {"--backbone", o_.backbone});
    if (!o_.fresh) so.argv.push_back("--resume");
    so.env[env::kNoProgress] = "1";
    so.env[env::kSweepParentPid] = std::to_string(::getpid());  // a job dies with the demo
    so.env[env::kThreadsBy] = threads_by_;
    so.log_file = r.log;
    r.pid = process::spawn(so);
    running_.push_back(r);
  }

  void collect(const Running& r, const process::ExitStatus& st) {
    const DemoJob& j = jobs_[r.index];
    const double secs = std::chrono::duration<double>(Clock::now() - r.start).count();
    std::optional<Record> rec;
    auto lines = io::read_json_lines(r.record_file, "record file");
    if (!lines.objects.empty()) rec = record_from_json(lines.objects.back(), r.record_file);
    fs::remove(r.record_file);
    if (!rec) {  // died without a record (signal, out of memory): record it here
      rec = failed_record(demo_spec(j, o_), "petl run " + st.text() + "; last lines of " + r.log + ":\n" +
                                                process::file_tail(r.log));
      append_record(o_.out, *rec);
    }
    ++finished_;
    if (rec->ok())
      std::fprintf(stderr, "[petl] [%zu/%zu] %s/%s: %.2f%% %s in %.1f s\n", finished_, jobs_.size(), j.method.c_str(),
                   j.task.c_str(), rec->accuracy.value_or(0), rec->reused ? "(finished record reused)" : "trained",
                   secs);
    else
      std::fprintf(stderr, "[petl] [%zu/%zu] %s/%s failed (%s): %s (log: %s)\n", finished_, jobs_.size(),
                   j.method.c_str(), j.task.c_str(), st.text().c_str(),
                   rec->error.substr(0, rec->error.find('\n')).c_str(), r.log.c_str());
    recs_[r.index] = std::move(rec);
  }

  const std::vector<DemoJob>& jobs_;
  const DemoOptions& o_;
  const WorkerPolicy policy_;
  const fs::path logs_;
  const std::string self_;
  std::string threads_by_;
  std::vector<std::optional<Record>> recs_;
  std::vector<Running> running_;
  size_t next_ = 0, finished_ = 0;
  Clock::time_point next_check_ = Clock::now();
};

}  // namespace

int cmd_demo(const Args& args) {
  std::string methods_csv = "all", tasks_csv;
  DemoOptions o;
  o.out = "runs/demo";
  o.data = "data/mini";
  o.recipe = "mini";
  int jobs_opt = 0;
  po::options_description d("petl demo options");
  d.add_options()("out", po::value(&o.out)->default_value(o.out), "output directory (results.jsonl, checkpoints/)")
      ("data", po::value(&o.data)->default_value(o.data), "embedded suite directory (built with `petl suite` when missing)")
      ("methods", po::value(&methods_csv)->default_value(methods_csv), "comma-separated methods, or 'all' registered")
      ("tasks", po::value(&tasks_csv), "comma-separated tasks (default: every task of the suite)")
      ("recipe", po::value(&o.recipe)->default_value(o.recipe), "recipe for every job (config/recipes.yaml)")
      ("epochs", po::value(&o.epochs), "override the recipe's epochs")
      ("backbone", po::value(&o.backbone), "backbone file (default: the embedded one)")
      ("jobs", po::value(&jobs_opt)->default_value(0), "jobs trained at once, each a `petl run` process (0 = one per free core: a further job starts while a core is idle; 1 = one after another in this process)")
      ("threads", po::value(&o.threads)->default_value(0), "intra-op threads per job (0 = one per job, or with --jobs 1 the cores free at each job's start)")
      ("fresh", "train every job again even when --out already holds its finished record")
      ("no-progress", "no progress bars");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl demo [--out DIR] [--data DIR] [--methods all|a,b] [--tasks a,b] [--jobs N] [--threads N]\n"
                  "The main job: trains every registered method on every task of the embedded suite with the\n"
                  "embedded backbone and prints accuracy, trainable parameters and peak training memory.\n"
                  "Jobs run at once in `petl run` processes with one thread each, one per free core (--jobs)."))
    return 0;
  PETL_CHECK(jobs_opt >= 0, "--jobs ", jobs_opt, ": expected an integer >= 0 (0 = one per free core)");
  PETL_CHECK(!vm.count("epochs") || o.epochs >= 1, "--epochs ", o.epochs, ": expected an integer >= 1");
  PETL_CHECK(o.threads >= 0, "--threads ", o.threads, ": expected an integer >= 0");
  io::check_writable_dir(o.out, "--out");  // before the suite is built or any job runs
  o.progress = !vm.count("no-progress");
  o.fresh = vm.count("fresh") > 0;
  o.argv = args;
  const std::string& data = o.data;
  const std::string& out = o.out;
  const std::string& recipe = o.recipe;
  const std::string& backbone = o.backbone;
  if (!fs::exists(fs::path(data) / "SUITE.md")) {
    std::fprintf(stderr, "[petl] building the embedded suite in %s\n", data.c_str());
    data::SuiteOptions so;
    so.progress = o.progress;
    data::build_mini_suite(data, so);
  }
  auto methods = methods_csv == "all" ? MethodRegistry::instance().names() : split_list(methods_csv);
  std::vector<std::string> tasks;
  if (tasks_csv.empty())
    for (auto& t : data::list_tasks(data)) tasks.push_back(t.name);
  else
    tasks = split_list(tasks_csv);
  std::vector<DemoJob> jobs;
  for (auto& m : methods) {
    MethodRegistry::instance().get(m);  // an unknown name fails here, before any job starts
    for (auto& t : tasks) jobs.push_back({m, t});
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Record> recs;
  if (jobs_opt == 1) {
    recs = run_in_process(jobs, o);
  } else {
    if (o.threads == 0) o.threads = 1;
    recs = DemoWorkers(jobs, o, worker_policy(jobs_opt, jobs.size())).run();
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\nembedded suite %s, backbone %s, recipe %s, protocol best_of_10 (final in brackets)\n", data.c_str(),
              backbone.empty() ? "petl_vit_mini_p8_32 (embedded)" : backbone.c_str(), recipe.c_str());
  std::printf("| method | task | classes | chance %% | accuracy %% | trainable params | peak train MiB | activations+other MiB | train img/s |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (auto& r : recs) {
    if (!r.ok()) {
      std::printf("| %s | %s | | | FAILED: %s | | | | |\n", r.method.c_str(), r.task.c_str(),
                  r.error.substr(0, r.error.find('\n')).c_str());  // a dead worker's log tail stays in the record
      continue;
    }
    int c = r.data["num_classes"];
    std::printf("| %s | %s | %d | %.1f | %.2f (%.2f) | %lld | %.1f | %.1f | %.0f |\n", r.method.c_str(), r.task.c_str(),
                c, 100.0 / c, r.accuracy.value_or(0), r.final_accuracy.value_or(0),
                (long long)r.trainable_params.value_or(0), r.memory.value("peak_train_mib", 0.0),
                r.memory.value("activations_other_mib", 0.0), r.timing ? r.timing->train_images_per_s : 0.0);
  }
  std::printf("\n%zu jobs in %.0f s; records in %s/results.jsonl\n", recs.size(), wall, out.c_str());
  // The report of this invocation's records (results.jsonl keeps every run ever made).
  const std::string last = (fs::path(out) / "last_demo.jsonl").string();
  {
    std::ofstream o(last, std::ios::trunc);
    for (auto& r : recs) o << to_json(r).dump() << "\n";
  }
  try {
    report::ReportOptions ro;
    ro.out_dir = (fs::path(out) / "report").string();
    ro.title = "petl main job: embedded suite " + data;
    ro.reference = "none";  // the published VTAB numbers do not apply to the embedded suite
    auto rep = report::write_report({last}, ro);
    std::printf("\n%s\nreport (md, csv, plots) written to %s\n", rep.table_markdown.c_str(), ro.out_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[petl] report not written: %s\n", e.what());
  }
  for (auto& r : recs)
    if (!r.ok()) return 1;
  return 0;
}

}  // namespace petl::cli

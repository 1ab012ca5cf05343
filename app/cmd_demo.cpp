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
#include "app/job_args.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/process.h"
#include "core/system.h"
#include "core/text.h"
#include "core/threads.h"
#include "datasets/suite_mini.h"
#include "datasets/vtab.h"
#include "harness/sweep/farm.h"
#include "harness/sweep/farm_reporter.h"
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
  int threads = 0;                     // per job; 0: chosen per job (in process) or 1 (workers)
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
class FreeCoreAdmission final : public AdmissionPolicy {
 public:
  explicit FreeCoreAdmission(int threads) : threads_(threads) {}
  bool may_start(int running) override {
    if (running == 0) return true;
    if (SteadyClock::now() < next_check_) return false;
    const double idle = threads::measure_free_cores(0.05);  // the cores a new job's threads would get
    if (idle < 0 || idle >= threads_ - 0.5) return true;
    next_check_ = SteadyClock::now() + std::chrono::seconds(2);  // busy elsewhere: look again later
    return false;
  }
  void job_ended() override { next_check_ = SteadyClock::now(); }  // a core was just freed

 private:
  int threads_;
  SteadyClock::time_point next_check_ = SteadyClock::now();
};

struct WorkerPolicy {
  int max_workers = 1;
  bool adaptive = false;
  std::string describe() const {
    return adaptive ? str_cat("up to ", max_workers, " at once, one per free core")
                    : str_cat(max_workers, " at once (--jobs)");
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

// The demo's view of the farm's outcomes: each job's record (the child's; one it died without is
// made and appended here, with the end of its log), a line per finished job on stderr.
class DemoReporter final : public FarmReporter {
 public:
  DemoReporter(const std::vector<DemoJob>& jobs, const DemoOptions& o) : jobs_(jobs), o_(o), recs_(jobs.size()) {}
  void finished(const FarmJob& job, const FarmOutcome& out, int done, int total) override {
    const size_t i = job.identity.at("index").get<size_t>();
    const DemoJob& j = jobs_[i];
    std::optional<Record> rec;
    if (out.record.is_object()) rec = record_from_json(out.record, job.result_file);
    fs::remove(job.result_file);
    const std::string ended = out.ended.empty() ? "exit status 0" : out.ended;
    if (!rec) {  // died without a record (signal, out of memory): record it here
      rec = failed_record(demo_spec(j, o_), "petl run " + ended + "; last lines of " + job.log_file + ":\n" +
                                                process::file_tail(job.log_file));
      append_record(o_.out, *rec);
    }
    if (rec->ok())
      std::fprintf(stderr, "[petl] [%d/%d] %s/%s: %.2f%% %s in %.1f s\n", done, total, j.method.c_str(), j.task.c_str(),
                   rec->accuracy.value_or(0), rec->reused ? "(finished record reused)" : "trained", out.wall_s);
    else
      std::fprintf(stderr, "[petl] [%d/%d] %s/%s failed (%s): %s (log: %s)\n", done, total, j.method.c_str(),
                   j.task.c_str(), ended.c_str(), first_line(rec->error).c_str(), job.log_file.c_str());
    recs_[i] = std::move(rec);
  }
  std::vector<Record> records() {
    std::vector<Record> out;
    for (auto& r : recs_)
      if (r) out.push_back(std::move(*r));
    return out;
  }

 private:
  const std::vector<DemoJob>& jobs_;
  const DemoOptions& o_;
  std::vector<std::optional<Record>> recs_;
};

// The jobs, each a `petl run` child with o.threads threads on the farm's process pool (posix_spawn:
// no fork after OpenMP started), as many at once as the policy allows. Children append their records
// to <out>/results.jsonl themselves (one O_APPEND write each) and hand the record back through
// --record-file.
std::vector<Record> run_on_the_farm(const std::vector<DemoJob>& jobs, const DemoOptions& o,
                                    const WorkerPolicy& policy) {
  const fs::path logs = fs::path(o.out) / "logs" / "demo";
  fs::create_directories(logs);
  std::fprintf(stderr, "[petl] %zu jobs, %s, each a `petl run` process with %d thread(s); logs in %s\n", jobs.size(),
               policy.describe().c_str(), o.threads, logs.c_str());
  std::vector<FarmJob> farm_jobs;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const std::string stem = jobs[i].method + "_" + jobs[i].task;
    JobSpec spec = demo_spec(jobs[i], o);
    spec.progress = false;
    spec.record_file = (logs / (stem + ".record.json")).string();
    fs::remove(spec.record_file);
    FarmJob f;
    f.key = stem;
    f.argv = run_command(spec);
    f.identity = {{"index", i}};
    f.result_file = spec.record_file;
    f.log_file = (logs / (stem + ".log")).string();
    fs::remove(f.log_file);
    farm_jobs.push_back(std::move(f));
  }
  FarmOptions fo;
  fo.program = process::self_executable();
  fo.label = "petl demo";
  fo.slots = policy.max_workers;
  fo.threads = o.threads;
  fo.threads_by = str_cat("petl demo: ", o.threads, " thread(s) per job, ", policy.describe());
  if (policy.adaptive) fo.admission = std::make_shared<FreeCoreAdmission>(o.threads);
  DemoReporter reporter(jobs, o);
  run_local_farm(farm_jobs, fo, reporter);
  return reporter.records();
}

}  // namespace

int cmd_demo(const Args& args) {
  std::string methods_csv = "all", tasks_csv;
  DemoOptions o;
  o.out = "runs/demo";
  o.data = "data/mini";
  o.recipe = "mini";
  int jobs_opt = 0;
  po::options_description d("petl demo options");
  d.add_options()("out", po::value(&o.out)->default_value(o.out), "output directory (results.jsonl, checkpoints/)")(
      "data", po::value(&o.data)->default_value(o.data),
      "embedded suite directory (built with `petl suite` when missing)")(
      "methods", po::value(&methods_csv)->default_value(methods_csv),
      "comma-separated methods, or 'all' registered (but a backbone family's own method such as mae_linprobe)")(
      "tasks", po::value(&tasks_csv), "comma-separated tasks (default: every task of the suite)")(
      "recipe", po::value(&o.recipe)->default_value(o.recipe), "recipe for every job (config/recipes.yaml)")(
      "epochs", po::value(&o.epochs), "override the recipe's epochs")("backbone", po::value(&o.backbone),
                                                                      "backbone file (default: the embedded one)")(
      "jobs", po::value(&jobs_opt)->default_value(0),
      "jobs trained at once, each a `petl run` process (0 = one per free core: a further job starts while a core is "
      "idle; 1 = one after another in this process)")(
      "threads", po::value(&o.threads)->default_value(0),
      "intra-op threads per job (0 = one per job, or with --jobs 1 the cores free at each job's start)")(
      "fresh", "train every job again even when --out already holds its finished record")("no-progress",
                                                                                          "no progress bars");
  po::variables_map vm;
  if (!parse_args(
          args, d, vm,
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
  // "all": every registered method made for any backbone (a family's own method, such as MAE's
  // linear probe, is not run on the embedded supervised backbone unless named).
  std::vector<std::string> methods;
  if (methods_csv == "all") {
    for (const auto& m : MethodRegistry::instance().names())
      if (MethodRegistry::instance().get(m).family.empty()) methods.push_back(m);
  } else {
    methods = split_list(methods_csv);
  }
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
    recs = run_on_the_farm(jobs, o, worker_policy(jobs_opt, jobs.size()));
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\nembedded suite %s, backbone %s, recipe %s, protocol best_of_10 (final in brackets)\n", data.c_str(),
              backbone.empty() ? "petl_vit_mini_p8_32 (embedded)" : backbone.c_str(), recipe.c_str());
  std::printf(
      "| method | task | classes | chance %% | accuracy %% | trainable params | peak train MiB | activations+other MiB "
      "| train img/s |\n");
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

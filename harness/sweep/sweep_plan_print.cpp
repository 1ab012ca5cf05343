// The sweep plan as `petl sweep --dry-run` prints it (see sweep_config.h: print_plan): the jobs with
// their keys, costs, bytes and journal status, then the totals, the few-shot sharing, the
// val_select stages, why each method is cached or live, and the bundles.
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/text.h"
#include "harness/sweep/sweep_config.h"
#include "harness/sweep/sweep_journal.h"
#include "io/tensor_file.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

// ------------------------------------------------------------------ --dry-run table

std::string mid_job_state_summary(const std::string& job_out_dir) {
  std::error_code ec;
  std::vector<std::string> parts;
  for (const auto& e : fs::directory_iterator(fs::path(job_out_dir) / "state", ec)) {
    if (e.path().extension() != ".safetensors") continue;
    try {
      const auto md = io::read_safetensors_metadata(e.path().string());
      const json s = json::parse(md.at("petl_job_state"));
      parts.push_back(s.value("summary", std::string("?")) + ", saved " + s.value("saved_utc", std::string("?")));
    } catch (const std::exception&) {
      parts.push_back("unreadable state file " + e.path().filename().string());
    }
  }
  return join(parts, "; ");
}

namespace {
// The dry run's bundles: jobs, still to run, task, cache, resident RAM (once per bundle), the
// cache's disk bytes and the estimated cost.
// Whether a planned job is finished (journal ok or does_not_fit).
bool is_done(const std::map<std::string, PlannedJobStatus>& status, const std::string& key) {
  auto it = status.find(key);
  return it != status.end() && it->second.journal && journal_done(*it->second.journal);
}

// Why each method trains from a feature cache or without one: one line per (method, reason), with
// the number of jobs.
void print_cache_reasons(std::ostream& os, const std::vector<SweepJob>& jobs, const SweepConfig& c) {
  std::map<std::string, std::string> cache_taps;  // cache key → "cls" / "kv"
  for (const auto& j : jobs)
    if (j.is_cache) cache_taps[j.key] = j.cache.taps.str();
  std::map<std::pair<std::string, std::string>, int> lines;  // (method, why) → jobs
  for (const auto& j : jobs) {
    if (j.is_cache) continue;
    std::string why;
    if (!j.depends_on.empty())
      why =
          "cache " + cache_taps[j.depends_on] + " (" + to_string(c.cache_dtype) + "): trains from features built once";
    else
      why = "live: " + (j.cache_note.empty() ? std::string("its needs do not match any cache") : j.cache_note);
    ++lines[{j.method, why}];
  }
  if (lines.empty()) return;
  os << "feature caches, by method (built where a method reads only frozen features of a deterministic backbone):\n";
  for (const auto& [mw, n] : lines)
    os << "  " << std::left << std::setw(16) << mw.first << std::right << std::setw(5) << n << " job(s)  " << mw.second
       << "\n";
}

// A few-shot sweep: its lists, and how many jobs each dataset's one train-pool cache serves (its
// backbone pass is shared by every shot, split seed and cacheable method).
void print_fewshot_sharing(std::ostream& os, const std::vector<SweepJob>& jobs, const SweepConfig& c) {
  std::vector<std::string> shots, seeds;
  for (int k : c.shots) shots.push_back(std::to_string(k));
  for (int s : c.split_seeds) seeds.push_back(std::to_string(s));
  os << "few-shot: " << c.tasks.size() << " dataset(s) x shots [" << join(shots, ", ") << "] x split seeds ["
     << join(seeds, ", ") << "] per method and training seed\n";
  std::map<std::string, int> served;
  for (const auto& j : jobs)
    if (!j.is_cache && !j.depends_on.empty()) ++served[j.depends_on];
  for (const auto& j : jobs)
    if (j.is_cache)
      os << "  cache " << j.key << " (" << j.task << ": " << join(j.cache.splits, ",") << ", " << j.cache.taps.str()
         << "): one backbone pass over the merged train lists serves " << served[j.key] << " training job(s)\n";
}

// A val_select sweep's two stages: searches, final runs after them, the ordinary runs beside them.
void print_val_select_stages(std::ostream& os, const std::vector<SweepJob>& jobs,
                             const std::map<std::string, PlannedJobStatus>& status) {
  struct Stage {
    int n = 0, done = 0;
    double cost = 0;
  };
  std::map<std::string, Stage> st;
  for (const auto& j : jobs) {
    if (j.is_cache) continue;
    Stage& s = st[j.stage.empty() ? "ordinary" : j.stage];
    ++s.n;
    s.done += is_done(status, j.key);
    s.cost += j.cost;
  }
  os << "val_select, two stages (selection without the test set):\n";
  const std::pair<const char*, const char*> order[] = {
      {"search", "grid points trained on train800, evaluated on val200 at every evaluation epoch"},
      {"final",
       "each after its searches: the best (point, epoch count) on val200, trained on train800val200, "
       "tested once after its last epoch"},
      {"ordinary", "best_of_10 at the default settings (test-selected epoch), for the report's comparison"}};
  for (const auto& [name, what] : order) {
    const Stage& s = st[name];
    os << "  " << std::left << std::setw(9) << name << std::right << std::setw(5) << s.n << " job(s), " << s.done
       << " done, est. " << format_seconds(s.cost) << (std::string(name) == "final" ? " (at the recipe's epochs)" : "")
       << ": " << what << "\n";
  }
}

void print_bundles(std::ostream& os, const std::vector<SweepJob>& jobs,
                   const std::map<std::string, PlannedJobStatus>& status) {
  struct B {
    int jobs = 0, todo = 0;
    std::string task, cache;
    int64_t ram = 0, disk = 0;
    double cost = 0;
  };
  std::map<std::string, B> bundles;
  std::map<std::string, int64_t> cache_disk;
  for (const auto& j : jobs)
    if (j.is_cache) cache_disk[j.key] = j.disk_bytes;
  for (const auto& j : jobs) {
    if (j.bundle.empty()) continue;
    B& b = bundles[j.bundle];
    ++b.jobs;
    if (!is_done(status, j.key)) ++b.todo;
    b.task = j.task;
    b.cache = j.depends_on;
    b.ram = std::max(b.ram, j.ram_bytes);
    b.disk = cache_disk.count(j.depends_on) ? cache_disk[j.depends_on] : 0;
    b.cost += j.cost;
  }
  if (bundles.empty()) return;
  os << bundles.size()
     << " bundle(s): the query-only jobs that train on one feature cache run in one child (`petl "
        "bundle`): train features loaded once, ONE test pass for every snapshot of every job (bundle_jobs caps "
        "the jobs per bundle)\n";
  for (const auto& [id, b] : bundles) {
    os << "  bundle " << std::left << std::setw(20) << id << std::right << std::setw(4) << b.jobs << " jobs (" << b.todo
       << " to run)  task " << b.task << "  RAM " << (b.ram > 0 ? format_bytes(double(b.ram)) : "-") << "  disk "
       << (b.disk > 0 ? format_bytes(double(b.disk)) : "-") << "  est. " << format_seconds(b.cost) << "\n";
  }
}
}  // namespace

void print_plan(std::ostream& os, const SweepPlan& plan, const std::vector<SweepJob>& jobs,
                const std::map<std::string, PlannedJobStatus>& status) {
  const auto& c = plan.config;
  os << "sweep '" << c.name << "' from " << c.file << "\n"
     << "  out " << plan.out << "  (journal " << plan.journal << ")\n"
     << "  data_root " << c.data_root << ", backbone " << (c.backbone.empty() ? "(embedded)" : c.backbone)
     << (c.arch.empty() ? "" : ", arch " + c.arch) << ", protocol " << to_string(c.protocol)
     << (c.recipe.empty() ? "" : ", recipe " + c.recipe) << "\n"
     << "  feature_cache "
     << (!c.feature_cache    ? std::string("off (feature_cache: false): every job runs the backbone live")
         : c.cache_dtype_set ? "on, cache_dtype " + std::string(to_string(c.cache_dtype))
                             : "on, cache_dtype " + std::string(to_string(c.cache_dtype)) +
                                   " (the default; float32 stores exact features at twice the bytes)")
     << ", precision " << to_string(c.precision) << ", job_timeout_s " << c.job_timeout_s << ", retry_failed "
     << (c.retry_failed ? "yes" : "no") << "\n\n";
  const int task_width = c.benchmark == Benchmark::kFewshot ? 26 : 20;  // "objects_count 16sh/s2"
  auto row = [&](const std::string& key, const std::string& what, const std::string& task, const std::string& seed,
                 const std::string& sets, const std::string& dep, const std::string& cost, const std::string& bytes,
                 const std::string& st) {
    os << std::left << std::setw(17) << key << std::setw(16) << what << std::setw(task_width) << task << std::setw(6)
       << seed << std::setw(34) << sets << std::setw(17) << dep << std::right << std::setw(10) << cost << std::setw(15)
       << bytes << "  " << st << "\n";
  };
  auto fmt_bytes = [](const char* where, int64_t b) {
    return b > 0 ? std::string(where) + " " + format_bytes(double(b)) : std::string("-");
  };
  auto fmt_cost = [](double v) { return format_seconds(v); };
  row("key", "method", "task", "seed", "sets", "depends_on", "est. time", "disk / RAM", "journal");
  int64_t disk_all = 0, disk_todo = 0, ram_max = 0;
  int n_cache = 0, n_train = 0, n_ok = 0, n_failed = 0, n_state = 0;
  double cost_all = 0, cost_todo = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& j : jobs) {
      if (j.is_cache != (pass == 0)) continue;
      const auto it = status.find(j.key);
      const PlannedJobStatus ps = it == status.end() ? PlannedJobStatus{} : it->second;
      const bool done = ps.journal && journal_done(*ps.journal);
      std::string st = ps.journal ? to_string(*ps.journal) : "";
      if (!ps.state.empty()) st += (st.empty() ? "" : "; ") + std::string("state: ") + ps.state;
      (j.is_cache ? n_cache : n_train)++;
      if (done) ++n_ok;
      if (ps.journal == RecordStatus::kFailed) ++n_failed;
      if (!ps.state.empty()) ++n_state;
      cost_all += j.cost;
      if (!done) cost_todo += j.cost;
      disk_all += j.disk_bytes;
      if (!done) disk_todo += j.disk_bytes;
      ram_max = std::max(ram_max, j.ram_bytes);
      if (j.is_cache) {
        row(j.key, "[cache " + j.cache.taps.str() + "]", j.task, "-",
            join(j.cache.splits, ",") + " " + to_string(j.cache_dtype), "-", fmt_cost(j.cost),
            fmt_bytes("disk", j.disk_bytes), st);
      } else {
        std::vector<std::string> s;
        for (auto& [k, v] : j.sets) s.push_back(k + "=" + v);
        const std::string task =
            j.shots > 0 ? j.task + " " + std::to_string(j.shots) + "sh/s" + std::to_string(j.split_seed) : j.task;
        const std::string what = j.stage.empty() ? j.method : j.method + " [" + j.stage + "]";
        const std::string dep = !j.after.empty()       ? "after " + std::to_string(j.after.size()) + " searches"
                                : j.depends_on.empty() ? "-"
                                                       : j.depends_on;
        row(j.key, what, task, std::to_string(j.seed), s.empty() ? "-" : join(s, " "), dep, fmt_cost(j.cost),
            fmt_bytes("RAM", j.ram_bytes), st);
      }
    }
  }
  os << "\n"
     << n_train << " training job(s), " << n_cache << " cache build(s); journal: " << n_ok << " ok, " << n_failed
     << " failed, " << (n_train + n_cache - n_ok - n_failed) << " not run"
     << (n_state ? ", " + std::to_string(n_state) + " with a mid-job state (continued, not restarted)" : std::string())
     << (c.retry_failed ? " (failed jobs will be retried)" : " (failed jobs are skipped; retry_failed re-runs them)")
     << "\n"
     << "estimated time: " << std::fixed << std::setprecision(1) << cost_todo / 3600.0 << " rank-hours still to run of "
     << cost_all / 3600.0 << " (" << format_seconds(cost_todo) << " of " << format_seconds(cost_all)
     << "; divide by the ranks for the wall time) at " << std::setprecision(0) << c.est_gflops_per_rank
     << " GFLOP/s per rank (est_gflops_per_rank), a model of FLOPs per image, not a measurement\n";
  os.unsetf(std::ios::floatfield);
  if (c.benchmark == Benchmark::kFewshot) print_fewshot_sharing(os, jobs, c);
  if (c.protocol == Protocol::kValSelect) print_val_select_stages(os, jobs, status);
  print_cache_reasons(os, jobs, c);
  print_bundles(os, jobs, status);
  if (disk_all > 0 || ram_max > 0)
    os << "feature caches: " << format_bytes(double(disk_all)) << " on disk (" << format_bytes(double(disk_todo))
       << " still to build; train-split K/V and cls taps only: a test split's K/V is never stored); a training job "
          "holds at most "
       << format_bytes(double(ram_max)) << " of train-split features in memory (" << to_string(c.cache_dtype)
       << "; one such job per rank at a time)\n";
}

}  // namespace petl

// `petl demo`: the main job — every registered method on every task of the embedded suite with
// the embedded backbone (the suite is built on first use), a table of accuracy, trainable
// parameters and peak training memory, and the report of this run's records.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "app/cli_util.h"
#include "app/commands.h"
#include "core/text.h"
#include "datasets/suite_mini.h"
#include "datasets/vtab.h"
#include "core/error.h"
#include "harness/train/job.h"
#include "io/journal.h"
#include "results/report.h"

namespace petl::cli {
namespace fs = std::filesystem;

int cmd_demo(const Args& args) {
  std::string out = "runs/demo", data = "data/mini", methods_csv = "all", tasks_csv, recipe = "mini", backbone;
  int threads = 0, epochs = JobSpec::kRecipeValue;
  po::options_description d("petl demo options");
  d.add_options()("out", po::value(&out)->default_value(out), "output directory (results.jsonl, checkpoints/)")
      ("data", po::value(&data)->default_value(data), "embedded suite directory (built with `petl suite` when missing)")
      ("methods", po::value(&methods_csv)->default_value(methods_csv), "comma-separated methods, or 'all' registered")
      ("tasks", po::value(&tasks_csv), "comma-separated tasks (default: every task of the suite)")
      ("recipe", po::value(&recipe)->default_value(recipe), "recipe for every job (config/recipes.yaml)")
      ("epochs", po::value(&epochs), "override the recipe's epochs")
      ("backbone", po::value(&backbone), "backbone file (default: the embedded one)")
      ("threads", po::value(&threads)->default_value(0), "intra-op threads (0 = available cores)")
      ("fresh", "train every job again even when --out already holds its finished record")
      ("no-progress", "no progress bars");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl demo [--out DIR] [--data DIR] [--methods all|a,b] [--tasks a,b]\n"
                  "The main job: trains every registered method on every task of the embedded suite with the\n"
                  "embedded backbone and prints accuracy, trainable parameters and peak training memory."))
    return 0;
  PETL_CHECK(!vm.count("epochs") || epochs >= 1, "--epochs ", epochs, ": expected an integer >= 1");
  PETL_CHECK(threads >= 0, "--threads ", threads, ": expected an integer >= 0 (0 = the cores available)");
  io::check_writable_dir(out, "--out");  // before the suite is built or any job runs
  if (!fs::exists(fs::path(data) / "SUITE.md")) {
    std::fprintf(stderr, "[petl] building the embedded suite in %s\n", data.c_str());
    data::SuiteOptions so;
    so.progress = !vm.count("no-progress");
    data::build_mini_suite(data, so);
  }
  auto methods = methods_csv == "all" ? MethodRegistry::instance().names() : split_list(methods_csv);
  std::vector<std::string> tasks;
  if (tasks_csv.empty())
    for (auto& t : data::list_tasks(data)) tasks.push_back(t.name);
  else
    tasks = split_list(tasks_csv);
  std::vector<Record> recs;
  auto t0 = std::chrono::steady_clock::now();
  for (auto& m : methods) {
    for (auto& t : tasks) {
      JobSpec s;
      s.method = m;
      s.task = t;
      s.data_root = data;
      s.recipe = recipe;
      s.epochs = epochs;
      s.threads = threads;
      s.out_dir = out;
      s.backbone_file = backbone;
      s.progress = !vm.count("no-progress");
      s.reuse_done = !vm.count("fresh");  // a re-run after a kill picks up where it stopped
      s.argv = args;
      try {
        recs.push_back(run_job(s));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[petl] job %s/%s failed: %s\n", m.c_str(), t.c_str(), e.what());
        auto f = failed_record(s, e.what());
        append_record(out, f);
        recs.push_back(f);
      }
    }
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\nembedded suite %s, backbone %s, recipe %s, protocol best_of_10 (final in brackets)\n", data.c_str(),
              backbone.empty() ? "petl_vit_mini_p8_32 (embedded)" : backbone.c_str(), recipe.c_str());
  std::printf("| method | task | classes | chance %% | accuracy %% | trainable params | peak train MiB | activations+other MiB | train img/s |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (auto& r : recs) {
    if (!r.ok()) {
      std::printf("| %s | %s | | | FAILED: %s | | | | |\n", r.method.c_str(), r.task.c_str(), r.error.c_str());
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

// `petl bench` (memory/throughput benchmark in one process, ratios against a baseline method)
// and `petl demo` (the main job: every registered method on every task of the embedded suite).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/cli_util.h"
#include "core/system.h"
#include "app/commands.h"
#include "datasets/suite_mini.h"
#include "datasets/vtab.h"
#include "harness/train/job.h"
#include "harness/train/memory_meter.h"
#include "methods/method.h"
#include "harness/train/recipe.h"
#include "harness/train/train_util.h"
#include "results/report.h"

namespace petl::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}
}  // namespace

int cmd_bench(const Args& args) {
  std::string arch = "vit_base_patch16_224_in21k", methods_csv = "linear,synqt,full", batches_csv = "64,8",
              baseline = "full", json_out;
  int steps = 2, threads = 0, num_classes = 100;
  std::vector<std::string> sets;
  po::options_description d("petl bench options");
  d.add_options()("arch", po::value(&arch)->default_value(arch), "backbone architecture (random weights; speed and memory do not depend on them)")
      ("methods", po::value(&methods_csv)->default_value(methods_csv), "comma-separated methods, or 'all'")
      ("baseline", po::value(&baseline)->default_value(baseline), "method the ratios are taken against")
      ("batch-sizes", po::value(&batches_csv)->default_value(batches_csv), "comma-separated batch sizes")
      ("steps", po::value(&steps)->default_value(steps), "timed training steps per case (after one untimed step)")
      ("num-classes", po::value(&num_classes)->default_value(num_classes), "head size")
      ("threads", po::value(&threads)->default_value(0), "intra-op threads (0 = available cores)")
      ("set", po::value(&sets)->composing(), "method settings key=value (e.g. token_nums=4)")
      ("json", po::value(&json_out), "also write the figures as JSON lines to this file");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl bench [--arch NAME] [--methods a,b,c] [--batch-sizes 64,8] [--steps N]\n"
                  "Peak training memory (exact CPU tensor bytes, by category) and training images/s per method,\n"
                  "fp32, measured in this process; ratios are against --baseline at the same batch size."))
    return 0;
  const int nthreads = threads > 0 ? threads : available_cores();
  at::set_num_threads(nthreads);
  auto methods = methods_csv == "all" ? MethodRegistry::instance().names() : split_csv(methods_csv);
  VitConfig cfg = vit_config_by_name(arch);
  std::vector<json> rows;
  std::printf("petl bench: %s, fp32, CPU, %d threads, %d timed steps (+1 untimed) per case\n", arch.c_str(), nthreads,
              steps);
  for (auto& bs_s : split_csv(batches_csv)) {
    const int bs = std::stoi(bs_s);
    for (auto& m : methods) {
      auto recipe = load_recipe(MethodRegistry::instance().get(m).default_recipe);
      cfg.drop_path_rate = recipe.drop_path_rate;
      VisionTransformer vit(cfg);
      vit->init_weights(0);
      vit->set_trainable(false);
      MethodContext ctx;
      ctx.backbone = vit;
      ctx.num_classes = num_classes;
      ctx.task = "cifar";
      ctx.settings = Settings::parse(sets);
      ctx.backbone_drop_path = recipe.drop_path_rate;
      torch::manual_seed(0);
      auto method = build_method(m, ctx);
      auto trainable = method->trainable_parameters();
      auto opt = make_optimizer(trainable, recipe);
      auto x = torch::randn({bs, 3, cfg.img_size, cfg.img_size});
      auto y = torch::randint(num_classes, {bs}, torch::kInt64);
      method->train(true);
      TrainingPeak peak;
      peak.begin();
      double secs = 0;
      for (int s = 0; s < steps + 1; ++s) {
        auto t0 = std::chrono::steady_clock::now();
        opt->zero_grad();
        auto loss = torch::nn::functional::cross_entropy(method->forward(x), y);
        loss.backward();
        opt->step();
        if (s > 0) secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      peak.end();
      auto mem = memory_breakdown(*method, trainable, *opt, peak);
      json row = {{"method", m}, {"batch_size", bs}, {"arch", arch}, {"threads", nthreads},
                  {"trainable_params", method->num_trainable()},
                  {"images_per_s", bs * steps / secs}, {"memory", mem.to_json(bs, cfg.img_size)}};
      rows.push_back(row);
      std::fprintf(stderr, "[bench] %s bs %d: peak %.1f MiB, %.2f img/s\n", m.c_str(), bs,
                   MemoryMeter::mib(mem.peak_train), bs * steps / secs);
    }
  }
  std::printf("\n| method | batch | trainable | peak train MiB | backbone weights | trainable+grad+optim | activations+other | img/s | peak vs %s | speed vs %s |\n",
              baseline.c_str(), baseline.c_str());
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (auto& r : rows) {
    const json* base = nullptr;
    for (auto& b : rows)
      if (b["method"] == baseline && b["batch_size"] == r["batch_size"]) base = &b;
    auto& mm = r["memory"];
    char pr[32] = "-", sr[32] = "-";
    if (base) {
      std::snprintf(pr, sizeof pr, "%.3f", mm["peak_train_mib"].get<double>() / (*base)["memory"]["peak_train_mib"].get<double>());
      std::snprintf(sr, sizeof sr, "%.2f", r["images_per_s"].get<double>() / (*base)["images_per_s"].get<double>());
    }
    std::printf("| %s | %d | %lld | %.1f | %.1f | %.1f | %.1f | %.2f | %s | %s |\n", r["method"].get<std::string>().c_str(),
                r["batch_size"].get<int>(), (long long)r["trainable_params"].get<int64_t>(),
                mm["peak_train_mib"].get<double>(), mm["backbone_weights_mib"].get<double>(),
                mm["trainable_state_mib"].get<double>(), mm["activations_other_mib"].get<double>(),
                r["images_per_s"].get<double>(), pr, sr);
  }
  if (!json_out.empty()) {
    std::ofstream o(json_out);
    for (auto& r : rows) o << r.dump() << "\n";
  }
  return 0;
}

int cmd_demo(const Args& args) {
  std::string out = "runs/demo", data = "data/mini", methods_csv = "all", tasks_csv, recipe = "mini", backbone;
  int threads = 0, epochs = -1;
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
  if (!fs::exists(fs::path(data) / "SUITE.md")) {
    std::fprintf(stderr, "[petl] building the embedded suite in %s\n", data.c_str());
    data::SuiteOptions so;
    so.progress = !vm.count("no-progress");
    data::build_mini_suite(data, so);
  }
  auto methods = methods_csv == "all" ? MethodRegistry::instance().names() : split_csv(methods_csv);
  std::vector<std::string> tasks;
  if (tasks_csv.empty())
    for (auto& t : data::list_tasks(data)) tasks.push_back(t.name);
  else
    tasks = split_csv(tasks_csv);
  std::vector<json> recs;
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
        append_record((fs::path(out) / "results.jsonl").string(), f);
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
    if (r["status"] != "ok") {
      std::printf("| %s | %s | | | FAILED: %s | | | | |\n", r["method"].get<std::string>().c_str(),
                  r["task"].get<std::string>().c_str(), r["error"].get<std::string>().c_str());
      continue;
    }
    int c = r["data"]["num_classes"];
    std::printf("| %s | %s | %d | %.1f | %.2f (%.2f) | %lld | %.1f | %.1f | %.0f |\n", r["method"].get<std::string>().c_str(),
                r["task"].get<std::string>().c_str(), c, 100.0 / c, r["accuracy"].get<double>(),
                r["accuracy_by_protocol"]["final"].get<double>(), (long long)r["trainable_params"].get<int64_t>(),
                r["memory"]["peak_train_mib"].get<double>(), r["memory"]["activations_other_mib"].get<double>(),
                r["timing"]["train_images_per_s"].get<double>());
  }
  std::printf("\n%zu jobs in %.0f s; records in %s/results.jsonl\n", recs.size(), wall, out.c_str());
  // The report of this invocation's records (results.jsonl keeps every run ever made).
  const std::string last = (fs::path(out) / "last_demo.jsonl").string();
  {
    std::ofstream o(last, std::ios::trunc);
    for (auto& r : recs) o << r.dump() << "\n";
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
    if (r["status"] != "ok") return 1;
  return 0;
}

}  // namespace petl::cli

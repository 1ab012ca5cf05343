// `petl bench`: peak training memory (by category) and training throughput per method, measured
// in one process at a given architecture with random weights, as ratios against a baseline method.
#include <chrono>
#include <cstdio>
#include <fstream>

#include "app/bench_steps.h"
#include "app/cli_util.h"
#include "app/commands.h"
#include "core/system.h"
#include "core/text.h"
#include "core/threads.h"
#include "harness/train/job.h"
#include "harness/train/memory_meter.h"
#include "harness/train/train_util.h"
#include "models/arch_registry.h"

namespace petl::cli {
using json = nlohmann::json;

int cmd_bench(const Args& args) {
  // The modes, wherever their flag stands.
  for (size_t i = 0; i < args.size(); ++i)
    if (args[i] == "--cached") {
      Args rest = args;
      rest.erase(rest.begin() + long(i));
      return cmd_bench_cached(rest);
    }
  for (auto& a : args)
    if (a == "--budget" || a.rfind("--budget=", 0) == 0) return cmd_bench_budget(args);
  const std::string set_help = "method settings key=value (e.g. token_nums=4)" + method_keys_help();
  std::string arch = "vit_base_patch16_224_in21k", methods_csv = "linear,synqt,full", batches_csv = "64,8",
              baseline = "full", json_out, device = "cpu", precision = "fp32";
  int steps = 2, threads = 0, num_classes = 100;
  std::vector<std::string> sets;
  po::options_description d("petl bench options");
  d.add_options()("arch", po::value(&arch)->default_value(arch),
                  "backbone architecture (random weights; speed and memory do not depend on them)")(
      "methods", po::value(&methods_csv)->default_value(methods_csv), "comma-separated methods, or 'all'")(
      "baseline", po::value(&baseline)->default_value(baseline), "method the ratios are taken against")(
      "batch-sizes", po::value(&batches_csv)->default_value(batches_csv), "comma-separated batch sizes")(
      "steps", po::value(&steps)->default_value(steps), "timed training steps per case (after one untimed step)")(
      "num-classes", po::value(&num_classes)->default_value(num_classes), "head size")(
      "threads", po::value(&threads)->default_value(0),
      "intra-op threads (0 = OMP_NUM_THREADS when set, else the cores free now)")(
      "device", po::value(&device)->default_value(device),
      "cpu, cuda or cuda:N (CUDA LibTorch builds; memory is then the caching allocator's peak allocated and reserved)")(
      "precision", po::value(&precision)->default_value(precision),
      "fp32 or bf16 (bfloat16 autocast of the forward passes, as petl run --precision)")(
      "set", po::value(&sets)->composing(), set_help.c_str())("json", po::value(&json_out),
                                                              "also write the figures as JSON lines to this file")(
      "cached",
      "the other mode: query-only methods trained live vs from resident frozen features (petl bench --cached --help)")(
      "budget", po::value<std::string>(),
      "the other mode: LIST of memory budgets (e.g. 4G,8G): micro-batch, peak and speed under each (petl bench "
      "--budget 4G --help)");
  po::variables_map vm;
  if (!parse_args(
          args, d, vm,
          "usage: petl bench [--arch NAME] [--methods a,b,c] [--batch-sizes 64,8] [--steps N]\n"
          "       petl bench --cached ...   (query-only methods live vs resident features; --cached --help)\n"
          "       petl bench --budget 4G,8G ...   (micro-batch and speed per memory budget; --budget X --help)\n"
          "Peak training memory (exact CPU tensor bytes, by category) and training images/s per method,\n"
          "measured in this process; ratios are against --baseline at the same batch size."))
    return 0;
  const threads::ThreadChoice tc = threads::choose_threads(threads);
  const int nthreads = tc.threads;
  at::set_num_threads(nthreads);
  auto methods = methods_csv == "all" ? MethodRegistry::instance().names() : split_list(methods_csv);
  std::vector<json> rows;
  std::ofstream json_file;  // one line per case as soon as it is measured (a run cut short keeps them)
  if (!json_out.empty()) {
    json_file.open(json_out);
    PETL_CHECK(json_file.good(), "--json ", json_out, ": cannot write");
  }
  const VitConfig bench_cfg = vit_config_by_name(arch);  // the family and its token count (registers count)
  std::printf("petl bench: %s (%s family, %d tokens), %s, %s, %d threads (%s), %d timed steps (+1 untimed) per case\n",
              arch.c_str(), to_string(arch_by_name(arch).family).c_str(), bench_cfg.num_tokens(), precision.c_str(),
              device.c_str(), nthreads, tc.chosen_by.c_str(), steps);
  for (auto& bs_s : split_list(batches_csv)) {
    const int bs = std::stoi(bs_s);
    for (auto& m : methods) {
      JobSpec spec;
      spec.method = m;
      spec.task = "cifar";  // per-task values as for VTAB cifar
      spec.arch = arch;
      spec.set = sets;
      spec.threads = nthreads;
      spec.device = device;
      spec.precision = parse_enum<Precision>(precision, "--precision");
      spec.dry_run = true;  // random backbone weights: speed and memory do not depend on them
      const ResolvedJob job = resolve_job(spec);
      const Recipe& recipe = job.recipe();
      JobBackbone bb = load_job_backbone(job);
      auto method = build_job_method(job, bb.model, num_classes);
      bb.model->to(job.device);
      method->to(job.device);
      const VitConfig& cfg = bb.model->cfg_;
      auto x = torch::randn({bs, 3, cfg.img_size, cfg.img_size}).to(job.device);
      auto r = bench_train_steps(
          *method, recipe, steps, bs, num_classes, [&] { return method->forward(x); }, job.device);
      const auto& mem = r.mem;
      json row = {{"method", m},
                  {"batch_size", bs},
                  {"arch", arch},
                  {"threads", nthreads},
                  {"device", device},
                  {"precision", precision},
                  {"trainable_params", method->num_trainable()},
                  {"images_per_s", r.images_per_s},
                  {"memory", mem.to_json(bs, cfg.img_size)}};
      rows.push_back(row);
      if (json_file.is_open()) json_file << row.dump() << std::endl;
      std::fprintf(stderr, "[bench] %s bs %d: peak %.1f MiB, %.2f img/s\n", m.c_str(), bs,
                   MemoryMeter::mib(mem.peak_train), r.images_per_s);
    }
  }
  std::printf(
      "\n| method | batch | trainable | peak train MiB | backbone weights | trainable+grad+optim | activations+other | "
      "img/s | peak vs %s | speed vs %s |\n",
      baseline.c_str(), baseline.c_str());
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (auto& r : rows) {
    const json* base = nullptr;
    for (auto& b : rows)
      if (b["method"] == baseline && b["batch_size"] == r["batch_size"]) base = &b;
    auto& mm = r["memory"];
    char pr[32] = "-", sr[32] = "-";
    if (base) {
      std::snprintf(pr, sizeof pr, "%.3f",
                    mm["peak_train_mib"].get<double>() / (*base)["memory"]["peak_train_mib"].get<double>());
      std::snprintf(sr, sizeof sr, "%.2f", r["images_per_s"].get<double>() / (*base)["images_per_s"].get<double>());
    }
    std::printf("| %s | %d | %lld | %.1f | %.1f | %.1f | %.1f | %.2f | %s | %s |\n",
                r["method"].get<std::string>().c_str(), r["batch_size"].get<int>(),
                (long long)r["trainable_params"].get<int64_t>(), mm["peak_train_mib"].get<double>(),
                mm["backbone_weights_mib"].get<double>(), mm["trainable_state_mib"].get<double>(),
                mm["activations_other_mib"].get<double>(), r["images_per_s"].get<double>(), pr, sr);
  }
  return 0;
}

}  // namespace petl::cli

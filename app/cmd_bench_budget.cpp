// `petl bench --budget 4G,8G,...`: for every method × backbone, the training peak at the full batch
// (the job's memory model: two exact probe steps, harness/train/memory_budget.h), the micro-batch
// each budget needs and the training throughput it costs, or "does not fit" with the minimum peak.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>

#include "app/cli_util.h"
#include "app/commands.h"
#include "core/system.h"
#include "core/text.h"
#include "core/threads.h"
#include "harness/train/job.h"
#include "harness/train/memory_budget.h"
#include "harness/train/memory_meter.h"
#include "harness/train/train_util.h"
#include "harness/train/trainer.h"

namespace petl::cli {
using json = nlohmann::json;

namespace {

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

struct Timed {
  double images_per_s = 0;
  int64_t peak = 0;  // measured, counted as the record's peak_train (model + what training holds)
};

// AdamW's state as its first step creates it (step 0, zero moments), for every trainable tensor
// that has none yet: a step measured first then peaks as every later step does (with the state
// alive during forward and backward). Tensors that never receive a gradient (e.g. SynQT's unused
// out_combine.weight) get a state AdamW would not create — bytes the budget model counts as well.
void create_adamw_state(torch::optim::AdamW& opt) {
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) {
      const auto key = optimizer_key(p);
      if (opt.state().count(key)) continue;
      auto st = std::make_unique<torch::optim::AdamWParamState>();
      st->step(0);
      st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      opt.state()[key] = std::move(st);
    }
}

// Training images/s over `steps` optimizer steps (after one untimed) at micro-batch m (== the batch:
// no split), and the measured training peak of those steps. steps == 0: the peak only, from one
// step over two micro-batches (min(batch, 2m) images): the second finds the gradients and AdamW's
// state alive as every later one of a whole step does, so the step peaks as a whole one would.
Timed timed_steps(Method& method, Recipe recipe, const SplitTensors& data, int64_t m, int steps) {
  const int64_t n = data.images.size(0), images = steps > 0 ? n : std::min(n, 2 * m);
  recipe.batch_size = int(images);
  SplitTensors part;
  part.images = data.images.narrow(0, 0, images);
  part.labels = data.labels.narrow(0, 0, images);
  LiveImages train(std::move(part));
  DataParallel dp(1, torch::kCPU);
  Trainer t(method, recipe, dp, torch::kCPU, "bench", false);
  t.set_micro_batch(m < images ? m : 0);
  // The gradients and AdamW's state alive from the start, as in every step of a job after its first
  // (LibTorch's zero_grad keeps the gradients): the step measured first peaks as those do, and as
  // the memory model (whose probes count the gradients throughout) predicts. A first step without
  // them peaks lower by up to the gradients' bytes where its first micro-batch is its largest.
  allocate_missing_gradients(t.optimizer());
  create_adamw_state(t.optimizer());
  // alive before the probe: not in its growth
  const int64_t opt_before = optimizer_bytes(t.optimizer()) + gradient_bytes(t.optimizer());
  PeakProbe probe;
  double secs = 0;
  int64_t done = 0;
  for (int s = 0; s < steps + 1; ++s) {
    auto r = t.train_one_epoch(train, 0);  // one batch per "epoch": one step
    if (s > 0) secs += r.seconds, done += r.images;
  }
  return {secs > 0 ? double(done) / secs : 0, probe.growth() + model_bytes(method) + opt_before};
}

struct BenchShape {
  int64_t batch;
  int steps, num_classes, threads;
  int64_t cap;  // host memory a probe or a measured step may use
};

std::string mib0(int64_t bytes) { return fixed(MemoryMeter::mib(bytes), 0); }

// One method x backbone: its memory model (probes under the cap), the full batch timed when
// steps > 0, and for every budget the micro-batch, its measured (or, above the cap, predicted)
// peak and its speed. Returns the JSON row and the table line.
std::pair<json, std::string> bench_row(const std::string& arch, const std::string& m, const BenchShape& sh,
                                       const std::vector<int64_t>& budgets) {
  JobSpec spec;
  spec.method = m;
  spec.task = "cifar";
  spec.arch = arch;
  spec.threads = sh.threads;
  spec.dry_run = true;  // random weights: memory and speed do not depend on them
  const ResolvedJob job = resolve_job(spec);
  Recipe recipe = job.recipe();
  recipe.batch_size = int(sh.batch);
  recipe.drop_last = true;
  JobBackbone bb = load_job_backbone(job);
  auto method = build_job_method(job, bb.model, sh.num_classes);
  const int img = bb.model->cfg_.img_size;
  SplitTensors data;
  data.images = torch::randn({sh.batch, 3, img, img});
  data.labels = torch::randint(sh.num_classes, {sh.batch}, torch::kInt64);
  BudgetChoice model;
  {
    LiveImages train(SplitTensors{data.images, data.labels, {}});
    DataParallel dp(1, torch::kCPU);
    Trainer t(*method, recipe, dp, torch::kCPU, m, false);
    model = fit_memory_model(t, train, sh.batch, sh.cap, [&](int64_t images, int64_t peak) {
      std::fprintf(stderr, "[bench] %s %s: probe at %lld images: %.1f MiB\n", arch.c_str(), m.c_str(),
                   (long long)images, MemoryMeter::mib(peak));
    });
  }
  const int64_t batch = model.batch;
  std::map<int64_t, Timed> timed;  // micro-batch → img/s, measured peak
  auto measure = [&](int64_t mb) -> const Timed* {
    if (!model.known(mb) || model.predicted(mb) > sh.cap) return nullptr;  // above what this host may spend
    if (!timed.count(mb)) timed[mb] = timed_steps(*method, recipe, data, mb, sh.steps);
    return &timed[mb];
  };
  json probes = model.to_json()["probes"];
  // A flat line probed below the batch (fixed bytes above the cap) knows nothing of bigger chunks.
  const std::string unknown =
      str_cat("not known: probes flat to ", model.probed_up_to(), " images, above --measure-up-to");
  json row = {{"arch", arch},
              {"method", m},
              {"batch_size", batch},
              {"peak_mib", model.known(batch) ? json(MemoryMeter::mib(model.predicted(batch))) : json(nullptr)},
              {"model", model.to_json()["model"]},
              {"probes", probes},
              {"measure_up_to_mib", MemoryMeter::mib(sh.cap)},
              {"budgets", json::array()}};
  std::string line = str_cat("| ", arch, " | ", m, " | ",
                             model.known(batch) ? fixed(MemoryMeter::mib(model.predicted(batch)), 1) : unknown, " | ");
  const Timed* full = sh.steps > 0 ? measure(batch) : nullptr;
  if (full) {
    row["measured_peak_mib"] = MemoryMeter::mib(full->peak);
    row["images_per_s"] = full->images_per_s;
    line += fixed(full->images_per_s, 2);
  }
  line += " |";
  for (int64_t b : budgets) {
    const BudgetChoice c = under_budget(model, b);
    json cell = {{"budget_mib", MemoryMeter::mib(b)}, {"fits", c.fits}};
    if (!c.fits) {
      cell["minimum_peak_mib"] = MemoryMeter::mib(c.predicted(c.min_micro_batch));
      line += str_cat(" does not fit (min ", mib0(c.predicted(c.min_micro_batch)), " MiB) |");
      row["budgets"].push_back(cell);
      continue;
    }
    if (!model.known(batch) && b > sh.cap) {  // the search stopped at the cap on a flat line
      cell["known"] = false;
      cell["probed_up_to"] = c.probed_up_to();
      line += str_cat(" ", unknown, " |");
      row["budgets"].push_back(cell);
      continue;
    }
    cell["micro_batch"] = c.micro_batch;
    cell["predicted_peak_mib"] = MemoryMeter::mib(c.predicted(c.micro_batch));
    // A chunk the search probed: its prediction is a measurement of a probe step, not a prediction.
    const bool probed = std::any_of(c.probes.begin(), c.probes.end(),
                                    [&](const std::pair<int64_t, int64_t>& p) { return p.first == c.micro_batch; });
    cell["prediction_is_a_probe"] = probed;
    line += c.micro_batch == batch ? std::string(" full batch") : str_cat(" micro-batch ", c.micro_batch);
    if (const Timed* t = measure(c.micro_batch)) {
      cell["measured_peak_mib"] = MemoryMeter::mib(t->peak);
      line += str_cat(", ", mib0(t->peak), " MiB measured (", mib0(c.predicted(c.micro_batch)), " predicted, ",
                      probed ? "a probe" : "not probed", ")");
      if (sh.steps > 0) {
        cell["images_per_s"] = t->images_per_s;
        if (full) line += str_cat(", ", fixed(t->images_per_s / full->images_per_s, 2), "× speed");
      }
    } else {
      line +=
          str_cat(", ", mib0(c.predicted(c.micro_batch)), " MiB predicted (above ", mib0(sh.cap), ": not measured)");
    }
    line += " |";
    row["budgets"].push_back(cell);
  }
  return {row, line};
}

}  // namespace

int cmd_bench_budget(const Args& args) {
  std::string budgets_csv,
      archs_csv =
          "vit_small_patch16_224_in21k,vit_base_patch16_224_in21k,"
          "vit_large_patch16_224_in21k,vit_huge_patch14_224_in21k",
      methods_csv = "all", json_out, measure_csv;
  int64_t batch = 64;
  int steps = 1, threads = 0, num_classes = 100;
  po::options_description d("petl bench --budget options");
  d.add_options()("budget", po::value(&budgets_csv)->required(), "comma-separated budgets (e.g. 4G,8G,16G,24G,80G)")(
      "archs", po::value(&archs_csv)->default_value(archs_csv), "comma-separated backbones (random weights)")(
      "methods", po::value(&methods_csv)->default_value(methods_csv), "comma-separated methods, or 'all'")(
      "batch-size", po::value(&batch)->default_value(batch), "images per optimizer step")(
      "steps", po::value(&steps)->default_value(steps),
      "timed steps per micro-batch (after one untimed); 0: peaks only "
      "(the full batch is not run; one untimed step over two micro-batches measures each budget's peak)")(
      "threads", po::value(&threads)->default_value(0), "intra-op threads (0 = OMP_NUM_THREADS, else the free cores)")(
      "num-classes", po::value(&num_classes)->default_value(num_classes), "head size")(
      "measure-up-to", po::value(&measure_csv),
      "host memory a probe or measured step may use (default: 80 % of the "
      "memory available at start); bigger peaks are predicted by the model (fitted from probes that fit) and "
      "marked so, not measured")("json", po::value(&json_out),
                                 "also write the rows as JSON lines to this file (each row as it is measured)");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl bench --budget 4G,8G,16G [--archs a,b] [--methods all|a,b] [--batch-size 64]\n"
                  "For every method x backbone: the training peak at the full batch (memory model from exact probe\n"
                  "steps, taken at chunks that fit --measure-up-to), the micro-batch each budget needs (gradient\n"
                  "accumulation: same steps) and the throughput it costs, or 'does not fit' with the minimum peak.\n"
                  "fp32, CPU memory meter."))
    return 0;
  PETL_CHECK(batch >= 1, "--batch-size: expected an integer >= 1, got ", batch);
  PETL_CHECK(steps >= 0, "--steps: expected an integer >= 0, got ", steps);
  std::vector<int64_t> budgets;
  for (auto& b : split_list(budgets_csv)) budgets.push_back(parse_size(b, "--budget"));
  const int64_t cap = vm.count("measure-up-to") ? parse_size(measure_csv, "--measure-up-to")
                                                : int64_t(0.8 * double(available_memory_bytes()));
  PETL_CHECK(cap > 0, "--measure-up-to: the host's available memory is unknown; give a size (e.g. 16G)");
  std::ofstream json_file;
  if (!json_out.empty()) {
    json_file.open(json_out);
    PETL_CHECK(json_file.good(), "--json: cannot write ", json_out);
  }
  MemoryMeter::install();
  const threads::ThreadChoice tc = threads::choose_threads(threads);
  at::set_num_threads(tc.threads);
  auto methods = methods_csv == "all" ? MethodRegistry::instance().names() : split_list(methods_csv);
  std::string header = "| backbone | method | peak at batch " + std::to_string(batch) + " MiB | img/s |";
  for (auto& b : split_list(budgets_csv)) header += " " + b + " |";
  std::string table = header + "\n|---|---|---:|---:|" + [&] {
    std::string s;
    for (size_t i = 0; i < budgets.size(); ++i) s += "---|";
    return s;
  }() + "\n";
  for (auto& arch : split_list(archs_csv))
    for (auto& m : methods) {
      auto [row, line] = bench_row(arch, m, BenchShape{batch, steps, num_classes, tc.threads, cap}, budgets);
      table += line + "\n";
      std::fprintf(stderr, "[bench] %s\n", line.c_str());
      if (json_file.is_open()) json_file << row.dump() << std::endl;  // kept when a later row is cut short
    }
  std::printf("petl bench --budget: fp32, CPU, %d threads (%s), batch %lld, %d timed step(s) per micro-batch\n\n%s",
              tc.threads, tc.chosen_by.c_str(), (long long)batch, steps, table.c_str());
  return 0;
}

}  // namespace petl::cli

// `petl bench --budget 4G,8G,...`: for every method × backbone, the training peak at the full batch
// (the job's memory model: two exact probe steps, harness/train/memory_budget.h), the micro-batch
// each budget needs and the training throughput it costs, or "does not fit" with the minimum peak.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>

#include "app/cli_util.h"
#include "app/commands.h"
#include "core/text.h"
#include "core/threads.h"
#include "harness/train/job.h"
#include "harness/train/memory_budget.h"
#include "harness/train/memory_meter.h"
#include "harness/train/trainer.h"

namespace petl::cli {
using json = nlohmann::json;

namespace {

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

int64_t optimizer_bytes(torch::optim::AdamW& opt) {
  int64_t n = 0;
  for (auto& [k, st] : opt.state()) {
    auto& s = static_cast<torch::optim::AdamWParamState&>(*st);
    for (auto& t : {s.exp_avg(), s.exp_avg_sq(), s.max_exp_avg_sq()})
      if (t.defined()) n += t.nbytes();
  }
  return n;
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
      const auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
      if (opt.state().count(key)) continue;
      auto st = std::make_unique<torch::optim::AdamWParamState>();
      st->step(0);
      st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      opt.state()[key] = std::move(st);
    }
}

// Training images/s over `steps` optimizer steps (after one untimed) at micro-batch m (0: the
// whole batch), and the measured training peak of those steps.
Timed timed_steps(Trainer& t, Method& method, const FeatureSource& train, int64_t m, int steps) {
  t.set_micro_batch(m);
  create_adamw_state(t.optimizer());
  const int64_t opt_before = optimizer_bytes(t.optimizer());  // alive before the probe: not in its growth
  PeakProbe probe;
  double secs = 0;
  int64_t images = 0;
  for (int s = 0; s < steps + 1; ++s) {
    auto r = t.train_one_epoch(train, 0);  // one batch per "epoch": one step
    if (s > 0) secs += r.seconds, images += r.images;
  }
  return {secs > 0 ? double(images) / secs : 0, probe.growth() + model_bytes(method) + opt_before};
}

}  // namespace

int cmd_bench_budget(const Args& args) {
  std::string budgets_csv, archs_csv = "vit_small_patch16_224_in21k,vit_base_patch16_224_in21k,"
                                       "vit_large_patch16_224_in21k,vit_huge_patch14_224_in21k",
                           methods_csv = "all", json_out;
  int64_t batch = 64;
  int steps = 1, threads = 0, num_classes = 100;
  po::options_description d("petl bench --budget options");
  d.add_options()("budget", po::value(&budgets_csv)->required(), "comma-separated budgets (e.g. 4G,8G,16G,24G,80G)")
      ("archs", po::value(&archs_csv)->default_value(archs_csv), "comma-separated backbones (random weights)")
      ("methods", po::value(&methods_csv)->default_value(methods_csv), "comma-separated methods, or 'all'")
      ("batch-size", po::value(&batch)->default_value(batch), "images per optimizer step")
      ("steps", po::value(&steps)->default_value(steps), "timed steps per micro-batch (after one untimed); 0: peaks only "
       "(the full batch is not run; one untimed step at each budget's micro-batch measures its peak)")
      ("threads", po::value(&threads)->default_value(0), "intra-op threads (0 = OMP_NUM_THREADS, else the free cores)")
      ("num-classes", po::value(&num_classes)->default_value(num_classes), "head size")
      ("json", po::value(&json_out), "also write the rows as JSON lines to this file");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl bench --budget 4G,8G,16G [--archs a,b] [--methods all|a,b] [--batch-size 64]\n"
                  "For every method x backbone: the training peak at the full batch (memory model from two exact\n"
                  "probe steps), the micro-batch each budget needs (gradient accumulation: same steps) and the\n"
                  "throughput it costs, or 'does not fit' with the minimum peak. fp32, CPU memory meter."))
    return 0;
  PETL_CHECK(batch >= 1, "--batch-size: expected an integer >= 1, got ", batch);
  PETL_CHECK(steps >= 0, "--steps: expected an integer >= 0, got ", steps);
  std::vector<int64_t> budgets;
  for (auto& b : split_list(budgets_csv)) budgets.push_back(parse_size(b, "--budget"));
  MemoryMeter::install();
  const threads::ThreadChoice tc = threads::choose_threads(threads);
  at::set_num_threads(tc.threads);
  auto methods = methods_csv == "all" ? MethodRegistry::instance().names() : split_list(methods_csv);
  std::vector<json> rows;
  std::string header = "| backbone | method | peak at batch " + std::to_string(batch) + " MiB | img/s |";
  for (auto& b : split_list(budgets_csv)) header += " " + b + " |";
  std::string table = header + "\n|---|---|---:|---:|" + [&] {
    std::string s;
    for (size_t i = 0; i < budgets.size(); ++i) s += "---|";
    return s;
  }() + "\n";
  for (auto& arch : split_list(archs_csv)) {
    for (auto& m : methods) {
      JobSpec spec;
      spec.method = m;
      spec.task = "cifar";
      spec.arch = arch;
      spec.threads = tc.threads;
      spec.dry_run = true;  // random weights: memory and speed do not depend on them
      const ResolvedJob job = resolve_job(spec);
      Recipe recipe = job.recipe();
      recipe.batch_size = int(batch);
      recipe.drop_last = true;
      JobBackbone bb = load_job_backbone(job);
      auto method = build_job_method(job, bb.model, num_classes);
      const int img = bb.model->cfg_.img_size;
      SplitTensors st;
      st.images = torch::randn({batch, 3, img, img});
      st.labels = torch::randint(num_classes, {batch}, torch::kInt64);
      LiveImages train(std::move(st));
      DataParallel dp(1, torch::kCPU);
      Trainer t(*method, recipe, dp, torch::kCPU, -1, m, false);
      const BudgetChoice model = fit_memory_model(t, train, batch);
      std::map<int64_t, Timed> timed;  // micro-batch → img/s, measured peak
      json row = {{"arch", arch},         {"method", m},
                  {"batch_size", batch},  {"peak_mib", MemoryMeter::mib(model.predicted(batch))},
                  {"model", model.to_json()["model"]}, {"budgets", json::array()}};
      std::string line = str_cat("| ", arch, " | ", m, " | ", fixed(MemoryMeter::mib(model.predicted(batch)), 1), " | ");
      if (steps > 0) {  // the full batch, timed
        timed[batch] = timed_steps(t, *method, train, 0, steps);
        row["measured_peak_mib"] = MemoryMeter::mib(timed[batch].peak);
        row["images_per_s"] = timed[batch].images_per_s;
        line += fixed(timed[batch].images_per_s, 2);
      }
      line += " |";
      for (int64_t b : budgets) {
        const BudgetChoice c = under_budget(model, b);
        json cell = {{"budget_mib", MemoryMeter::mib(b)}, {"fits", c.fits}};
        if (!c.fits) {
          cell["minimum_peak_mib"] = MemoryMeter::mib(c.predicted(1));
          line += str_cat(" does not fit (min ", fixed(MemoryMeter::mib(c.predicted(1)), 0), " MiB) |");
        } else {
          if (!timed.count(c.micro_batch)) timed[c.micro_batch] = timed_steps(t, *method, train, c.micro_batch, steps);
          const double s = timed[c.micro_batch].images_per_s;
          cell["micro_batch"] = c.micro_batch;
          if (steps > 0) cell["images_per_s"] = s;
          cell["predicted_peak_mib"] = MemoryMeter::mib(c.predicted(c.micro_batch));
          cell["measured_peak_mib"] = MemoryMeter::mib(timed[c.micro_batch].peak);
          line += str_cat(c.micro_batch == batch ? std::string(" full batch") : str_cat(" micro-batch ", c.micro_batch),
                          ", ", fixed(MemoryMeter::mib(timed[c.micro_batch].peak), 0), " MiB measured (",
                          fixed(MemoryMeter::mib(c.predicted(c.micro_batch)), 0), " predicted)",
                          steps > 0 ? str_cat(", ", fixed(s / timed[batch].images_per_s, 2), "× speed") : std::string(),
                          " |");
        }
        row["budgets"].push_back(cell);
      }
      std::fprintf(stderr, "[bench] %s %s: peak %.1f MiB at batch %lld\n", arch.c_str(), m.c_str(),
                   MemoryMeter::mib(model.predicted(batch)), (long long)batch);
      table += line + "\n";
      rows.push_back(row);
    }
  }
  std::printf("petl bench --budget: fp32, CPU, %d threads (%s), batch %lld, %d timed step(s) per micro-batch\n\n%s",
              tc.threads, tc.chosen_by.c_str(), (long long)batch, steps, table.c_str());
  if (!json_out.empty()) {
    std::ofstream o(json_out);
    for (auto& r : rows) o << r.dump() << "\n";
  }
  return 0;
}

}  // namespace petl::cli

// `petl bench --cached`: the query-only methods (linear, vqt, synqt at several T) at scale — training
// throughput and peak memory live vs from resident frozen-backbone features (float16, as a sweep's
// feature cache holds them), SynQT's live peak against its K/V floor, and the time to evaluate
// several snapshots in one test pass vs one pass each. All in one process, random weights.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <torch/csrc/autograd/profiler_legacy.h>

#include "app/bench_steps.h"
#include "app/cli_util.h"
#include "app/commands.h"
#include "core/clock.h"
#include "core/system.h"
#include "core/text.h"
#include "core/threads.h"
#include "harness/train/feature_cache.h"
#include "harness/train/job.h"
#include "harness/train/memory_meter.h"
#include "harness/train/train_util.h"
#include "harness/train/trainer.h"
#include "models/kv_attention.h"

namespace petl::cli {
using json = nlohmann::json;

namespace {

struct Case {
  std::string label, method;
  std::vector<std::string> sets;
};

// Whole-batch features in the layout of a feature cache (kv: N, L, 2, H, T, D/H), as float16.
CachedSplit resident_features(VisionTransformer backbone, const torch::Tensor& images, const CacheTaps& taps,
                              int64_t chunk) {
  std::vector<torch::Tensor> cls, kv;
  for (int64_t r = 0; r < images.size(0); r += chunk) {
    auto f = backbone_features(backbone, images.narrow(0, r, std::min(chunk, images.size(0) - r)), taps);
    if (taps.cls) cls.push_back(f.cls.to(torch::kHalf));
    if (taps.kv) {
      std::vector<torch::Tensor> layers;
      for (size_t l = 0; l < f.k.size(); ++l) layers.push_back(torch::stack({f.k[l], f.v[l]}, 1));
      kv.push_back(torch::stack(layers, 1).to(torch::kHalf));
    }
  }
  return CachedSplit(cls.empty() ? torch::Tensor() : torch::cat(cls), kv.empty() ? torch::Tensor() : torch::cat(kv),
                     torch::zeros({images.size(0)}, torch::kInt64));
}

// The query path's compute floor: seconds for the frozen blocks' dense matmuls that SynQT applies to
// its B·T query tokens in one training step — per block the q and output projections (D×D) and the
// MLP (D×4D, 4D×D), forward and the input gradients of backward (frozen weights: no weight
// gradients) — timed alone (best of 3). Its images/s bound every resident SynQT step here.
double query_matmul_seconds(int64_t rows, int64_t D, int64_t hidden, int64_t L, torch::Device dev) {
  torch::NoGradGuard ng;
  auto x = torch::randn({rows, D}, dev), h = torch::randn({rows, hidden}, dev);
  auto wq = torch::randn({D, D}, dev), wp = torch::randn({D, D}, dev);
  auto w1 = torch::randn({hidden, D}, dev), w2 = torch::randn({D, hidden}, dev);
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = SteadyClock::now();
    for (int64_t l = 0; l < L; ++l) {
      auto a = torch::mm(x, wq.t()), b = torch::mm(x, wp.t()), c = torch::mm(x, w1.t()), d = torch::mm(h, w2.t());
      auto e = torch::mm(a, wq), f = torch::mm(b, wp), g = torch::mm(c, w1), k = torch::mm(d, w2);
    }
    if (dev.is_cuda()) torch::cuda::synchronize();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// Seconds of SynQT's attention over the stored float16 K/V in one training step (L layers, forward
// and backward, B images, T query tokens), best of 3, with the CPU kernel and with the ATen
// operations it replaces: {kernel, aten}.
std::pair<double, double> kv_attention_seconds(int64_t B, int64_t H, int64_t T, int64_t N, int64_t dh, int64_t L,
                                               torch::Device dev) {
  auto kv = torch::randn({B, 2, H, N, dh}, dev).to(torch::kHalf);  // a cache layer's layout
  auto k = kv.select(1, 0), v = kv.select(1, 1);
  auto q = torch::randn({B, H, T, dh}, dev).requires_grad_(true);
  auto go = torch::randn({B, H, T, dh}, dev);
  auto time = [&](bool kernel) {
    kv_attention_use_kernel(kernel);
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = SteadyClock::now();
      for (int64_t l = 0; l < L; ++l) frozen_kv_attention(q, k, v, 1.0 / std::sqrt(double(dh))).backward(go);
      if (dev.is_cuda()) torch::cuda::synchronize();
      best = std::min(best, seconds_since(t0));
    }
    return best;
  };
  const double aten = time(false), kernel = time(true);
  kv_attention_use_kernel(true);
  return {kernel, aten};
}

// The table, the attention kernel's timings and the snapshot evaluation, from the JSON rows.
// The resident steps with the memory meter's freed-block cache from 1 MiB vs from its default, A B A
// B in this process (timings drift): img/s and page faults per step of each.
json compare_block_cache(const std::string& label, const std::function<BenchSteps()>& resident_steps) {
  const int64_t dflt = MemoryMeter::cache_min();
  double img_s[2] = {0, 0}, faults[2] = {0, 0};
  for (int round = 0; round < 4; ++round) {
    const int which = round % 2;
    MemoryMeter::release_cache();
    MemoryMeter::set_cache_min(which == 0 ? int64_t(1) << 20 : dflt);
    const BenchSteps b = resident_steps();
    img_s[which] += b.images_per_s / 2;
    faults[which] += b.page_faults_per_step / 2;
  }
  MemoryMeter::set_cache_min(dflt);
  std::fprintf(stderr,
               "[bench] %s resident, freed-block cache from 1 MiB: %.2f img/s, %.0f page faults per step; "
               "from %lld KiB: %.2f img/s (%.2f×), %.0f page faults per step\n",
               label.c_str(), img_s[0], faults[0], (long long)(dflt >> 10), img_s[1], img_s[1] / img_s[0], faults[1]);
  return {{"block_cache_1mib_images_per_s", img_s[0]},
          {"block_cache_default_images_per_s", img_s[1]},
          {"block_cache_1mib_page_faults_per_step", faults[0]},
          {"block_cache_default_page_faults_per_step", faults[1]}};
}

// `snapshots` snapshots of the method evaluated in one pass over bs random test images vs one pass
// each: the figures of the row's eval_ keys.
json time_snapshot_eval(Method& method, VisionTransformer backbone, const CacheTaps& taps, int bs, int64_t img_size,
                        int snapshots, torch::Device dev) {
  SplitTensors test;
  test.images = torch::randn({bs, 3, img_size, img_size});  // moved per batch to the device
  test.labels = torch::zeros({bs}, torch::kInt64);
  LiveImages source(std::move(test));
  std::vector<Snapshot> snaps;
  for (int i = 0; i < snapshots; ++i) snaps.push_back(Snapshot::take(method.trainable_parameters(), i, 0));
  auto pass = [&](const std::vector<Snapshot>& s) {
    const auto t0 = SteadyClock::now();
    evaluate_snapshots(method, source, s, backbone, taps, bs, dev, false, "");
    return seconds_since(t0);
  };
  auto one_pass = [&] {  // PETL_PROFILE_EVAL=FILE: the last one-pass evaluation as a Chrome trace
    std::unique_ptr<torch::autograd::profiler::RecordProfile> prof;
    if (const char* trace = std::getenv("PETL_PROFILE_EVAL"))
      prof = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(trace));
    return pass(snaps);
  };
  // One untimed pass first: the first pass at this batch size takes fresh pages for every layer's
  // K/V and activations (about 0.9 GiB at ViT-B/16), which every later pass of a test split reuses;
  // timed first, the one pass paid them and the single passes did not. Then the one pass, the
  // single passes, the one pass again: their mean brackets the singles in time.
  pass({snaps[0]});
  const int64_t f0 = minor_page_faults();
  const double first = one_pass();
  const int64_t f1 = minor_page_faults();
  double each = 0;
  for (auto& s : snaps) each += pass({s}) / snapshots;
  const int64_t f2 = minor_page_faults();
  const double again = one_pass();
  const double one = (first + again) / 2;
  return {
      {"eval_snapshots", snapshots},
      {"eval_one_pass_s", one},
      {"eval_one_pass_runs_s", {first, again}},
      {"eval_single_pass_s", each},
      {"eval_one_pass_vs_single", one / each},
      {"eval_page_faults_per_pass",
       {{"one_pass", double(f1 - f0 + minor_page_faults() - f2) / 2}, {"single_pass", double(f2 - f1) / snapshots}}}};
}

void print_cached_table(const std::vector<json>& rows, int bs) {
  std::printf(
      "\n| case | trainable | live img/s | resident img/s | resident/live | ceiling | live peak MiB | resident peak "
      "MiB | K/V floor MiB | live/floor | gathered img/s | gathered peak MiB | gather share |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (auto& r : rows) {
    char ceiling[32] = "";
    if (r.contains("speedup_ceiling"))
      std::snprintf(ceiling, sizeof ceiling, "%.1f", r["speedup_ceiling"].get<double>());
    std::printf("| %s | %lld | %.2f | %.2f | %.1f | %s | %.1f | %.1f | %.1f | %.3f | %.2f | %.1f | %.2f |\n",
                r["case"].get<std::string>().c_str(), (long long)r["trainable_params"].get<int64_t>(),
                r["live_images_per_s"].get<double>(), r["resident_images_per_s"].get<double>(),
                r["speedup"].get<double>(), ceiling, r["live_peak_mib"].get<double>(),
                r["resident_peak_mib"].get<double>(), r["kv_floor_mib"].get<double>(),
                r["live_peak_vs_floor"].get<double>(), r["resident_gathered_images_per_s"].get<double>(),
                r["resident_gathered_peak_mib"].get<double>(), r["resident_gather_share"].get<double>());
  }
  for (auto& r : rows)
    if (r.contains("kv_attention_kernel_s"))
      std::printf(
          "\n%s: attention over the stored float16 K/V, all layers, forward + backward: %.1f ms with the CPU "
          "kernel (%.0f %% of a resident step), %.1f ms with ATen's operations (%.2f×)",
          r["case"].get<std::string>().c_str(), 1e3 * r["kv_attention_kernel_s"].get<double>(),
          100 * r["kv_attention_share"].get<double>(), 1e3 * r["kv_attention_aten_s"].get<double>(),
          r["kv_attention_aten_s"].get<double>() / r["kv_attention_kernel_s"].get<double>());
  std::printf("\n");
  for (auto& r : rows)
    if (r.contains("eval_snapshots"))
      std::printf(
          "\n%s: %d snapshots evaluated in one pass over %d test images took %.2f s (mean of %.2f and %.2f, "
          "before and after the single passes), %.2f× one pass (%.2f s); page faults per pass %.0f and %.0f\n",
          r["case"].get<std::string>().c_str(), r["eval_snapshots"].get<int>(), bs, r["eval_one_pass_s"].get<double>(),
          r["eval_one_pass_runs_s"][0].get<double>(), r["eval_one_pass_runs_s"][1].get<double>(),
          r["eval_one_pass_vs_single"].get<double>(), r["eval_single_pass_s"].get<double>(),
          r["eval_page_faults_per_pass"]["one_pass"].get<double>(),
          r["eval_page_faults_per_pass"]["single_pass"].get<double>());
}

}  // namespace

int cmd_bench_cached(const Args& args) {
  std::string arch = "vit_base_patch16_224_in21k", tokens_csv = "1,4,16", json_out, device = "cpu", precision = "fp32";
  int steps = 2, threads = 0, classes = 100, bs = 64, snapshots = 5, micro = -1;
  po::options_description d("petl bench --cached options");
  d.add_options()("arch", po::value(&arch)->default_value(arch), "backbone architecture (random weights)")(
      "batch-size", po::value(&bs)->default_value(bs),
      "training batch size (also the test images of the evaluation timing)")(
      "tokens", po::value(&tokens_csv)->default_value(tokens_csv), "SynQT query tokens T to measure, comma-separated")(
      "steps", po::value(&steps)->default_value(steps), "timed training steps per case (after one untimed step)")(
      "snapshots", po::value(&snapshots)->default_value(snapshots),
      "snapshots evaluated in one pass vs one pass each (SynQT, the middle T)")(
      "micro-batch", po::value(&micro)->default_value(micro),
      "SynQT backbone_micro_batch for the live runs (-1: its default)")("synqt-only",
                                                                        "measure SynQT only (no linear / vqt cases)")(
      "compare-block-cache",
      "also time the resident steps with the memory meter's freed-block cache starting at 1 MiB "
      "(as before) vs its default 128 KiB, alternating twice in one process: img/s and page faults per step")(
      "resident-only", "skip the live runs (profiling the resident path; live figures are then 0)")(
      "threads", po::value(&threads)->default_value(0),
      "intra-op threads (0 = OMP_NUM_THREADS when set, else the cores free now)")(
      "device", po::value(&device)->default_value(device),
      "cpu, cuda or cuda:N (CUDA builds: the resident features are then held in GPU memory)")(
      "precision", po::value(&precision)->default_value(precision),
      "fp32 or bf16 (bfloat16 autocast of the forward passes)")("json", po::value(&json_out),
                                                                "also write the figures as JSON lines to this file");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl bench --cached [--arch NAME] [--batch-size 64] [--tokens 1,4,16] [--steps N]\n"
                  "Query-only methods live vs from resident float16 features: training images/s, peak training\n"
                  "memory, SynQT's live peak vs its K/V floor, and one-pass evaluation of several snapshots.\n"
                  "Columns: resident/live = the training speed-up from stored features; ceiling = the speed-up\n"
                  "SynQT could reach if its step were only the frozen blocks' dense matmuls on the query tokens\n"
                  "(timed alone); K/V floor = backbone weights + trainable state + 2*L*B*N*D*4 bytes; gather share\n"
                  "= part of a gathered resident step spent gathering the batch's features; gathered = the\n"
                  "resident features copied per batch (as before the attention read them in place)."))
    return 0;
  const int nthreads = threads::choose_threads(threads).threads;
  std::vector<Case> cases;
  if (!vm.count("synqt-only")) cases = {{"linear", "linear", {}}, {"vqt", "vqt", {}}};
  const size_t first_synqt = cases.size();
  for (auto& t : split_list(tokens_csv))
    cases.push_back({"synqt T=" + t, "synqt", {"backbone_drop_path=off", "token_nums=" + t}});
  std::printf(
      "petl bench --cached: %s, batch %d, %s compute, float16 resident features, %s, %d threads, %d timed "
      "steps (+1 untimed)\n",
      arch.c_str(), bs, precision.c_str(), device.c_str(), nthreads, steps);
  std::vector<json> rows;
  for (auto& c : cases) {
    JobSpec spec;
    spec.method = c.method;
    spec.task = "cifar";
    spec.arch = arch;
    spec.set = c.sets;
    if (c.method == "synqt" && micro >= 0) spec.set.push_back("backbone_micro_batch=" + std::to_string(micro));
    spec.threads = nthreads;
    spec.device = device;
    spec.precision = parse_enum<Precision>(precision, "--precision");
    spec.dry_run = true;
    const ResolvedJob job = resolve_job(spec);
    const torch::Device dev = job.device;
    JobBackbone bb = load_job_backbone(job);
    bb.model->to(dev);
    const auto& cfg = bb.model->cfg_;
    auto images = torch::randn({bs, 3, cfg.img_size, cfg.img_size}).to(dev);
    auto method = build_job_method(job, bb.model, classes);
    method->to(dev);
    const auto taps = cache_taps_for(method->needs());
    BenchSteps live;
    if (!vm.count("resident-only"))
      live = bench_train_steps(
          *method, job.recipe(), steps, bs, classes, [&] { return method->forward(images); }, dev);
    CachedSplit resident = resident_features(bb.model, images, taps, bs);
    // A shuffled batch, as training draws it. Twice, in one process: with the batch's K/V gathered into
    // a copy first (as before the attention read the store in place), then read in place.
    auto index = torch::randperm(bs, torch::kInt64);
    double gather_s = 0;  // of the timed steps (the untimed first one also pays the page faults)
    auto resident_steps = [&](bool in_place) {
      auto m2 = build_job_method(job, bb.model, classes);
      m2->to(dev);
      int calls = 0;
      return bench_train_steps(
          *m2, job.recipe(), steps, bs, classes,
          [&] {
            auto t0 = SteadyClock::now();
            auto features = resident.batch(index, dev, in_place);
            if (!in_place && calls++ > 0) gather_s += seconds_since(t0);
            return m2->forward_cached(features);
          },
          dev);
    };
    json row_extra = json::object();
    const BenchSteps gathered = resident_steps(false), cached = resident_steps(true);
    if (vm.count("compare-block-cache")) row_extra = compare_block_cache(c.label, [&] { return resident_steps(true); });
    const double step_s = double(bs) / cached.images_per_s;
    const int64_t N = cfg.num_tokens(), L = cfg.depth, D = cfg.embed_dim;
    const double kv_floor = double(2 * L * bs * N * D * 4);
    const double floor = kv_floor + live.mem.frozen_backbone + live.mem.trainable_params + live.mem.gradients +
                         live.mem.optimizer_state + live.mem.other_model;
    json row = {{"case", c.label},
                {"method", c.method},
                {"batch_size", bs},
                {"arch", arch},
                {"threads", nthreads},
                {"trainable_params", method->num_trainable()},
                {"live_images_per_s", live.images_per_s},
                {"resident_images_per_s", cached.images_per_s},
                {"speedup", cached.images_per_s / live.images_per_s},
                {"live_peak_mib", MemoryMeter::mib(live.mem.peak_train)},
                {"resident_peak_mib", MemoryMeter::mib(cached.mem.peak_train)},
                {"kv_floor_mib", MemoryMeter::mib(int64_t(floor))},
                {"live_peak_vs_floor", double(live.mem.peak_train) / floor},
                {"resident_gathered_images_per_s", gathered.images_per_s},
                {"resident_gathered_peak_mib", MemoryMeter::mib(gathered.mem.peak_train)},
                {"live_page_faults_per_step", live.page_faults_per_step},
                {"resident_page_faults_per_step", cached.page_faults_per_step},
                {"resident_gather_share", gather_s / std::max(1, steps) / (double(bs) / gathered.images_per_s)}};
    if (c.method == "synqt" && !vm.count("resident-only")) {
      const int64_t T = std::stoll(c.sets.back().substr(std::string("token_nums=").size()));
      const double floor_img_s = double(bs) / query_matmul_seconds(bs * T, D, cfg.mlp_hidden(), L, dev);
      row["query_matmul_images_per_s"] = floor_img_s;
      row["speedup_ceiling"] = floor_img_s / live.images_per_s;
    }
    if (c.method == "synqt") {
      const int64_t T = std::stoll(c.sets.back().substr(std::string("token_nums=").size()));
      const int64_t H = cfg.num_heads;
      auto [kernel_s, aten_s] = kv_attention_seconds(bs, H, T, N, D / H, L, dev);
      row["kv_attention_kernel_s"] = kernel_s;
      row["kv_attention_aten_s"] = aten_s;
      row["kv_attention_share"] = kernel_s / step_s;
    }
    std::fprintf(stderr,
                 "[bench] %s: live %.2f img/s %.0f MiB, resident %.2f img/s %.0f MiB (page faults per step: live "
                 "%.0f, resident %.0f)\n",
                 c.label.c_str(), live.images_per_s, MemoryMeter::mib(live.mem.peak_train), cached.images_per_s,
                 MemoryMeter::mib(cached.mem.peak_train), live.page_faults_per_step, cached.page_faults_per_step);
    if (c.method == "synqt" && c.label == cases[first_synqt + (cases.size() - first_synqt) / 2].label &&
        snapshots > 1) {
      row.update(time_snapshot_eval(*method, bb.model, taps, bs, cfg.img_size, snapshots, dev));
    }
    row.update(row_extra);
    rows.push_back(row);
    if (!json_out.empty()) {  // each case as soon as it is measured (a run cut short keeps them)
      std::ofstream o(json_out, rows.size() == 1 ? std::ios::trunc : std::ios::app);
      o << row.dump() << "\n";
    }
  }
  print_cached_table(rows, bs);
  return 0;
}

}  // namespace petl::cli

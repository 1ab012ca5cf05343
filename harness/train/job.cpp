// The run loop of one job (see job.h). Knows no method by name: it builds the method through the
// registry, trains the tensors the method marks trainable, evaluates, measures memory and writes
// the record.
#include "harness/train/job.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "io/journal.h"
#include "core/build_info.h"
#include "core/system.h"
#include "harness/train/data_parallel.h"
#include "harness/train/evaluate.h"
#include "harness/train/feature_cache.h"
#include "models/backbone.h"
#include "core/hashing.h"
#include "harness/train/memory_meter.h"
#include "methods/method.h"
#include "core/progress.h"
#include "harness/train/recipe.h"
#include "harness/train/task_data.h"
#include "harness/train/train_util.h"
#include "models/checkpoint.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;



void append_record(const std::string& path, const json& record) { io::append_json_line(path, record, "results file"); }

namespace {



json provenance(const JobSpec& spec, int threads) {
  return {{"git_commit", git_commit()},
          {"host", host_name()},
          {"threads", threads},
          {"libtorch_version", libtorch_version()},
          {"time_utc", now_utc()},
          {"argv", spec.argv}};
}

// The last ok record with this job key whose checkpoint (if any) still exists, or null.
json find_finished(const fs::path& journal, const std::string& key) {
  json found;
  std::ifstream in(journal);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(key) == std::string::npos) continue;
    json r = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (r.is_discarded() || !r.is_object()) continue;  // a torn last line after a kill
    if (r.value("job_key", "") != key || r.value("status", "") != "ok") continue;
    if (r.contains("checkpoint") && r["checkpoint"].is_string() && !fs::exists(r["checkpoint"].get<std::string>()))
      continue;
    found = r;
  }
  return found;
}

}  // namespace



json failed_record(const JobSpec& spec, const std::string& message) {
  return {{"schema", "petl.result"}, {"schema_version", 1},      {"status", "failed"},
          {"error", message},        {"method", spec.method},    {"task", spec.task},
          {"seed", spec.seed},       {"protocol", spec.protocol}, {"provenance", provenance(spec, spec.threads)}};
}

json run_job(const JobSpec& spec) {
  auto t_start = std::chrono::steady_clock::now();
  PETL_CHECK(spec.protocol == "best_of_10" || spec.protocol == "final", "--protocol '", spec.protocol,
             "': expected best_of_10 or final");
  const auto& info = MethodRegistry::instance().get(spec.method);
  const Settings requested = Settings::parse(spec.set);
  Settings settings(requested.items());  // + the --epochs/--batch-size/--seed flags
  Recipe recipe = load_recipe(spec.recipe.empty() ? info.default_recipe : spec.recipe, "", spec.method);
  auto task = data::find_task(spec.data_root, spec.task);
  // Per-task recipe values of the method's reference configs, below the user's --set overrides.
  std::map<std::string, std::string> task_recipe;
  if (info.task_recipe) {
    for (auto& [k, v] : info.task_recipe(task.name))
      if (!requested.has(k)) task_recipe[k] = v;
    Settings ts(task_recipe);
    apply_overrides(recipe, ts);
    for (auto& k : ts.unused()) PETL_FAIL("per-task config of ", spec.method, " for ", task.name, ": '", k, "' is not a recipe key");
  }
  if (spec.epochs > 0) settings.set("epochs", std::to_string(spec.epochs));
  if (spec.batch_size > 0) settings.set("batch_size", std::to_string(spec.batch_size));
  if (spec.seed >= 0) settings.set("seed", std::to_string(spec.seed));
  // Shortening or lengthening a recipe keeps its warmup (and cooldown) proportion unless given.
  if (settings.has("epochs")) {
    int e = settings.get_int("epochs", recipe.epochs);
    PETL_CHECK(e > 0, "epochs must be positive, got ", e);
    auto scaled = [&](int v) { return std::to_string(int(std::lround(double(v) * e / recipe.epochs))); };
    if (!settings.has("warmup_epochs")) settings.set("warmup_epochs", scaled(recipe.warmup_epochs));
    if (!settings.has("cooldown_epochs") && recipe.cooldown_epochs > 0)
      settings.set("cooldown_epochs", scaled(recipe.cooldown_epochs));
  }
  apply_overrides(recipe, settings);

  const int threads = spec.threads > 0 ? spec.threads : available_cores();
  at::set_num_threads(threads);
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(spec.device);
  } catch (const c10::Error&) {
    PETL_FAIL("--device '", spec.device, "': expected cpu, cuda or cuda:N");
  }
  if (device.is_cuda())
    PETL_CHECK(torch::cuda::is_available() && CudaMemory::available(), "--device ", spec.device,
               ": no GPU found (this LibTorch has no CUDA, or no device is visible)");
  const int cuda_index = device.is_cuda() ? std::max<int>(0, device.index()) : -1;

  JobBackbone bb = make_job_backbone(spec.backbone_file, spec.arch, recipe.drop_path_rate, spec.dry_run);
  const auto& cfg = bb.model->cfg_;

  data::LoadOptions lopts;
  lopts.image_size = cfg.img_size;
  lopts.norm = data::parse_normalisation(recipe.normalisation);
  lopts.threads = threads;
  lopts.skip_bad = spec.skip_bad;
  lopts.progress = spec.progress;

  SplitTensors train, test;
  int num_classes = task.num_classes;
  const bool cached = !spec.feature_cache.empty();
  PETL_CHECK(!cached || (spec.limit_train < 0 && spec.limit_test < 0 && !spec.skip_bad),
             "--feature-cache caches whole splits: it cannot be combined with sample limits or --skip-bad");
  if (cached && num_classes <= 0) {
    for (auto& smp : data::read_split(task, recipe.train_split)) num_classes = std::max<int>(num_classes, smp.label + 1);
  } else if (!spec.dry_run || num_classes <= 0) {
    lopts.limit = spec.limit_train;
    train = load_split_tensors(task, recipe.train_split, lopts);
    if (num_classes <= 0) num_classes = int(train.labels.max().item<int64_t>()) + 1;
  }

  MethodContext ctx;
  ctx.backbone = bb.model;
  ctx.num_classes = num_classes;
  ctx.task = task.name;
  ctx.settings = settings;
  ctx.backbone_drop_path = recipe.drop_path_rate;
  torch::manual_seed(recipe.seed);
  auto method = build_method(spec.method, ctx);
  auto unused = method->unused_settings();
  if (!unused.empty()) {
    std::string u;
    for (auto& k : unused) u += " " + k;
    PETL_FAIL("unknown --set key(s) for method ", spec.method, " / recipe ", recipe.name, ":", u);
  }
  bb.model->to(device);
  method->to(device);
  auto trainable = method->trainable_parameters();
  int64_t n_trainable = 0;
  for (auto& [n, p] : trainable) n_trainable += p.numel();
  auto needs = method->needs();
  CacheTaps taps;
  if (cached) {
    taps = cache_taps_for(needs);
    PETL_CHECK(taps.any(), "--feature-cache: method ", spec.method, " cannot train from cached features (",
               needs.grad_through_backbone ? "gradients flow through the backbone"
               : needs.backbone_stochastic ? "its backbone path is stochastic (e.g. synqt: --set backbone_drop_path=off)"
                                           : "it needs tensors no cache holds",
               ")");
  }

  json record = {{"schema", "petl.result"},
                 {"schema_version", 1},
                 {"status", spec.dry_run ? "dry_run" : "ok"},
                 {"method", spec.method},
                 {"task", task.name},
                 {"seed", recipe.seed},
                 {"protocol", spec.protocol},
                 {"trainable_params", n_trainable},
                 {"backbone_params", bb.model->num_parameters()},
                 {"settings",
                  {{"recipe", recipe.to_map()},
                   {"recipe_source", recipe.source},
                   {"recipe_task_overrides", task_recipe},
                   {"method", method->effective_settings()},
                   {"requested", requested.items()},
                   {"needs",
                    {{"grad_through_backbone", needs.grad_through_backbone},
                     {"final_cls", needs.final_cls},
                     {"block_kv", needs.block_kv},
                     {"backbone_stochastic", needs.backbone_stochastic},
                     {"cacheable", needs.cacheable()},
                     {"memory_class", needs.memory_class}}}}},
                 {"backbone", bb.info},
                 {"provenance", provenance(spec, threads)}};
  record["provenance"]["device"] = spec.device;
  // The job key: a hash of the effective settings (not of how they were requested).
  auto list_hash = [&](const std::string& split) {
    auto p = fs::path(task.dir) / (split + "." + task.format);
    return fs::exists(p) ? sha256_file(p.string()) : std::string();
  };
  json key_src = {{"method", spec.method},
                  {"task", task.name},
                  {"recipe", record["settings"]["recipe"]},
                  {"method_settings", record["settings"]["method"]},
                  {"backbone_sha256", bb.info["sha256"]},
                  {"data_root", fs::absolute(spec.data_root).string()},
                  {"train_list_sha256", list_hash(recipe.train_split)},
                  {"test_list_sha256", list_hash(recipe.test_split)},
                  {"skip_bad", spec.skip_bad},
                  {"limits", {spec.limit_train, spec.limit_test}},
                  {"device", spec.device}};
  // Cached float32 features give the live run's exact losses and logits; float16 ones do not.
  if (cached && spec.cache_dtype != "float32") key_src["feature_cache_dtype"] = spec.cache_dtype;
  if (spec.dp > 1) key_src["data_parallel_ranks"] = spec.dp;  // same maths, another summation order
  record["job_key"] = sha256_string(key_src.dump()).substr(0, 16);
  if (spec.dry_run) {
    record["data"] = {{"root", spec.data_root}, {"task", task.name}, {"num_classes", num_classes}};
    return record;
  }
  if (spec.reuse_done && !spec.out_dir.empty()) {
    json done = find_finished(fs::path(spec.out_dir) / "results.jsonl", record["job_key"]);
    if (!done.is_null()) {
      std::fprintf(stderr, "[petl] %s/%s: reusing the finished job %s from %s/results.jsonl\n", spec.method.c_str(),
                   task.name.c_str(), record["job_key"].get<std::string>().c_str(), spec.out_dir.c_str());
      done["reused"] = true;
      return done;
    }
  }

  std::unique_ptr<CachedSplit> train_cache;
  std::string test_cache_path;
  io::AttributeMap test_identity;
  if (cached) {
    CacheBuildOptions co;
    co.root = spec.feature_cache;
    co.dtype = spec.cache_dtype;
    co.taps = taps;
    co.load = lopts;
    co.backbone_file = bb.info.value("path", json()).is_string() ? bb.info["path"].get<std::string>() : "";
    const std::string sha = bb.info["sha256"];
    auto train_path = ensure_feature_cache(co, bb.model, sha, task, recipe.train_split);
    test_cache_path = ensure_feature_cache(co, bb.model, sha, task, recipe.test_split);
    auto norm = data::to_string(lopts.norm);
    train_cache = std::make_unique<CachedSplit>(
        train_path, cache_identity(sha, cfg, task, recipe.train_split, norm, taps, co.dtype), taps);
    test_identity = cache_identity(sha, cfg, task, recipe.test_split, norm, taps, co.dtype);
    train.labels = train_cache->labels();
    train.meta.list_sha256 = train_cache->attributes().at("list_sha256");
    {
      io::FeatureStoreReader tr(test_cache_path, test_identity);
      test.labels = torch::empty({tr.n_rows()}, torch::kInt64);
      tr.read_labels(0, tr.n_rows(), test.labels.data_ptr<int64_t>());
      test.meta.list_sha256 = tr.attributes().at("list_sha256");
    }
    record["feature_cache"] = {{"train", train_path}, {"test", test_cache_path}, {"taps", taps.str()},
                               {"dtype", co.dtype}, {"root", fs::absolute(spec.feature_cache).string()}};
  } else {
    lopts.limit = spec.limit_test;
    test = load_split_tensors(task, recipe.test_split, lopts);
  }
  PETL_CHECK(test.labels.numel() == 0 || test.labels.max().item<int64_t>() < num_classes, "task ", task.name,
             ": test split has label ", test.labels.max().item<int64_t>(), " but the train split implies ",
             num_classes, " classes (class-count mismatch)");

  // ---------------------------------------------------------------- training
  DataParallel dp(spec.dp, device);
  std::vector<torch::Tensor> trainable_tensors;
  for (auto& [k, t] : trainable) trainable_tensors.push_back(t);
  if (dp.active())
    record["data_parallel"] = {{"ranks", dp.size()}, {"backend", dp.backend()},
                               {"note", "each rank trains on its slice of every global batch; gradients summed"}};
  auto opt_ptr = make_optimizer(trainable, recipe);
  auto& opt = *opt_ptr;
  const int64_t n = train.labels.size(0);
  const int64_t bs = recipe.batch_size;
  const int64_t iters = recipe.drop_last ? n / bs : (n + bs - 1) / bs;
  PETL_CHECK(iters > 0, "train split has ", n, " images, fewer than one batch of ", bs, " with drop_last");

  json evals = json::array(), losses = json::array();
  double train_seconds = 0, eval_seconds = 0;
  int64_t images_seen = 0;
  TrainingPeak peak(cuda_index);
  bool started = false;
  for (int epoch = 0; epoch < recipe.total_epochs(); ++epoch) {
    method->train(true);
    auto t0 = std::chrono::steady_clock::now();
    auto perm = torch::randperm(n, torch::kInt64);
    dp.broadcast(perm);  // rank 0's order everywhere (the ranks' random streams differ after dropout)
    ProgressBar bar(spec.method + "/" + task.name + " epoch " + std::to_string(epoch + 1) + "/" +
                        std::to_string(recipe.total_epochs()),
                    iters, spec.progress);
    double loss_sum = 0;
    for (int64_t it = 0; it < iters; ++it) {
      double lr = learning_rate(recipe, epoch, int(it), int(iters));
      set_learning_rate(opt, lr);
      if (!started) {
        peak.begin();  // right before the first training step
        started = true;
      }
      auto idx = perm.narrow(0, it * bs, std::min(bs, n - it * bs));
      const int64_t global = idx.size(0);
      if (dp.active()) {
        auto [b0, b1] = dp.slice(global);
        idx = idx.narrow(0, b0, b1 - b0);
      }
      auto y = train.labels.index_select(0, idx).to(device);
      opt.zero_grad();
      double l = 0;
      if (idx.size(0) > 0) {
        torch::Tensor logits;
        if (cached) {
          logits = method->forward_cached(train_cache->batch(idx, device));
        } else {
          logits = method->forward(train.images.index_select(0, idx).to(device));
        }
        // This rank's share of the global-batch mean loss (the whole of it without --dp).
        auto loss = torch::nn::functional::cross_entropy(logits, y) * (double(idx.size(0)) / double(global));
        loss.backward();
        l = loss.item<double>();
      }
      dp.allreduce_gradients(trainable_tensors);
      l = dp.allreduce_sum(l);
      opt.step();
      PETL_CHECK(std::isfinite(l), "training diverged: loss ", l, " at epoch ", epoch + 1, " iteration ", it);
      loss_sum += l;
      images_seen += global;
      bar.add(1);
      if (it % 4 == 0) {
        char b[64];
        std::snprintf(b, sizeof b, "loss %.4f lr %.2e", l, lr);
        bar.set_postfix(b);
      }
    }
    bar.finish();
    train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    losses.push_back(loss_sum / iters);
    const bool eval_now = (epoch + 1) % recipe.eval_every == 0 || epoch + 1 == recipe.total_epochs();
    if (eval_now) {
      peak.pause();
      auto t1 = std::chrono::steady_clock::now();
      auto ev = cached ? evaluate_cached(*method, test_cache_path, test_identity, taps, recipe.eval_batch_size, device)
                       : evaluate(*method, test.images, test.labels, recipe.eval_batch_size, nullptr, spec.progress,
                                  "eval " + spec.method + "/" + task.name, device);
      eval_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
      evals.push_back({{"epoch", epoch + 1}, {"test_acc", ev.accuracy}, {"train_loss", loss_sum / iters}});
      std::fprintf(stderr, "[petl] %s/%s epoch %d: loss %.4f, test acc %.2f%%\n", spec.method.c_str(),
                   task.name.c_str(), epoch + 1, loss_sum / iters, ev.accuracy);
      peak.resume();
    }
  }
  peak.end();

  // ---------------------------------------------------------------- record
  auto mem = memory_breakdown(*method, trainable, opt, peak);
  double best = -1, final_acc = evals.back()["test_acc"];
  json eval_epochs = json::array();
  for (auto& e : evals) {
    if (int(e["epoch"]) % recipe.eval_every == 0) {
      best = std::max(best, double(e["test_acc"]));
      eval_epochs.push_back(e["epoch"]);
    }
  }
  if (best < 0) best = final_acc;
  record["accuracy"] = spec.protocol == "final" ? final_acc : best;
  record["accuracy_by_protocol"] = {{"best_of_10", best}, {"final", final_acc}, {"best_of_10_epochs", eval_epochs}};
  record["evals"] = evals;
  record["epoch_train_loss"] = losses;
  record["memory"] = mem.to_json(bs, cfg.img_size);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  record["timing"] = {{"wall_s", wall},
                      {"train_s", train_seconds},
                      {"eval_s", eval_seconds},
                      {"train_images_per_s", train_seconds > 0 ? double(images_seen) / train_seconds : 0.0}};
  record["data"] = {{"root", fs::absolute(spec.data_root).string()},
                    {"task", task.name},
                    {"task_dir", task.dir},
                    {"format", task.format},
                    {"num_classes", num_classes},
                    {"normalisation", recipe.normalisation},
                    {"image_size", cfg.img_size},
                    {"train_split", recipe.train_split},
                    {"n_train", n},
                    {"train_list_sha256", train.meta.list_sha256},
                    {"test_split", recipe.test_split},
                    {"n_test", test.labels.size(0)},
                    {"test_list_sha256", test.meta.list_sha256},
                    {"skipped", train.meta.skipped}};
  for (auto& s : test.meta.skipped) record["data"]["skipped"].push_back(s);
  record["data"]["n_skipped"] = record["data"]["skipped"].size();

  if (!spec.out_dir.empty() && dp.rank() == 0) {  // one record per job, written by rank 0
    if (spec.save_checkpoint) {
      std::string ck = (fs::path(spec.out_dir) / "checkpoints" /
                        (spec.method + "_" + task.name + "_s" + std::to_string(recipe.seed) + "_" +
                         record["job_key"].get<std::string>() + ".safetensors"))
                           .string();
      std::map<std::string, std::string> meta = {{"method", spec.method},
                                                 {"task", task.name},
                                                 {"num_classes", std::to_string(num_classes)},
                                                 {"job_key", record["job_key"]},
                                                 {"backbone_sha256", bb.info["sha256"]},
                                                 {"method_settings", json(method->effective_settings()).dump()},
                                                 {"format", "pt"}};
      save_named_tensors(ck, trainable, meta);
      record["checkpoint"] = fs::absolute(ck).string();
    }
    append_record((fs::path(spec.out_dir) / "results.jsonl").string(), record);
  }
  return record;
}

}  // namespace petl

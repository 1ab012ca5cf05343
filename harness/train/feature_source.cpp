#include "harness/train/feature_source.h"

#include <cstdio>
#include <filesystem>
#include <future>

#include "core/error.h"
#include "core/progress.h"
#include "core/stop.h"
#include "core/system.h"
#include "core/text.h"
#include "datasets/fewshot.h"
#include "harness/train/precision.h"
#include "io/feature_store.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

torch::Tensor LiveImages::logits(Method& method, const torch::Tensor& index, torch::Device device) const {
  return method.forward(split_.images.index_select(0, index).to(device));
}

EvalResult LiveImages::evaluate(Method& method, int64_t batch_size, torch::Device device, bool progress,
                                const std::string& label, torch::Tensor* logits_out) const {
  return petl::evaluate(method, split_.images, split_.labels, batch_size, logits_out, progress, label, device);
}

void LiveImages::for_each_features(VisionTransformer backbone, const CacheTaps& taps, int64_t batch_size,
                                   torch::Device device, bool progress, const std::string& label,
                                   const FeatureFn& fn) const {
  const int64_t n = size();
  ProgressBar bar(label, (n + batch_size - 1) / batch_size, progress);
  for (int64_t s = 0; s < n; s += batch_size) {
    stop::check();
    const int64_t len = std::min(batch_size, n - s);
    fn(backbone_features(backbone, split_.images.narrow(0, s, len).to(device), taps), split_.labels.narrow(0, s, len));
    bar.add(1);
  }
  bar.finish();
}

StreamedImages::StreamedImages(data::TaskInfo task, std::string split, data::LoadOptions lo, int64_t chunk)
    : task_(std::move(task)), split_(std::move(split)), lo_(lo), chunk_(std::max<int64_t>(1, chunk)) {
  PETL_CHECK(!lo_.skip_bad, "a streamed split cannot skip bad samples (its rows must be known up front)");
  std::vector<int64_t> labels;
  for (const auto& smp : data::read_split(task_, split_)) {
    if (lo_.limit >= 0 && int64_t(labels.size()) >= lo_.limit) break;
    labels.push_back(smp.label);
  }
  labels_ = torch::tensor(labels, torch::kInt64);
  data::LoadOptions none = lo_;
  none.limit = 0;
  none.progress = false;
  list_sha256_ = data::load_split(task_, split_, none).list_sha256;
}

void StreamedImages::for_each_batch(int64_t batch_size, torch::Device device, bool progress, const std::string& label,
                                    const std::function<void(const torch::Tensor&, const torch::Tensor&)>& fn) const {
  const int64_t n = size();
  const int64_t chunk = std::max<int64_t>(1, (chunk_ + batch_size - 1) / batch_size) * batch_size;
  auto load = [this](int64_t start, int64_t len) {
    data::LoadOptions lo = lo_;
    lo.offset = start;
    lo.limit = len;
    lo.progress = false;
    return load_split_tensors(task_, split_, lo);
  };
  ProgressBar bar(label, (n + batch_size - 1) / batch_size, progress);
  std::future<SplitTensors> next;
  if (n > 0) next = std::async(std::launch::deferred, load, 0, std::min(chunk, n));
  for (int64_t start = 0; start < n; start += chunk) {
    SplitTensors part = next.get();
    PETL_CHECK(part.images.size(0) == std::min(chunk, n - start), "split ", task_.name, "/", split_,
               " changed while it was read (rows ", start, "..", start + chunk, ")");
    const int64_t after = start + chunk;
    if (after < n)  // decode ahead while the device computes; on the CPU both would share the cores
      next = std::async(device.is_cuda() ? std::launch::async : std::launch::deferred, load, after,
                        std::min(chunk, n - after));
    for (int64_t s = 0; s < part.images.size(0); s += batch_size) {
      stop::check();
      const int64_t len = std::min(batch_size, part.images.size(0) - s);
      fn(part.images.narrow(0, s, len).to(device), labels_.narrow(0, start + s, len));
      bar.add(1);
    }
  }
  bar.finish();
}

torch::Tensor StreamedImages::logits(Method&, const torch::Tensor&, torch::Device) const {
  PETL_FAIL("split ", task_.name, "/", split_, " is streamed in order: it has no batches by index");
}

EvalResult StreamedImages::evaluate(Method& method, int64_t batch_size, torch::Device device, bool progress,
                                    const std::string& label, torch::Tensor* logits_out) const {
  torch::NoGradGuard ng;
  Autocast amp(device);
  method.train(false);
  EvalResult r;
  int64_t correct = 0;
  std::vector<torch::Tensor> all;
  for_each_batch(batch_size, device, progress, label, [&](const torch::Tensor& x, const torch::Tensor& y) {
    auto out = widen(method.forward(x)).to(torch::kCPU);
    correct += out.argmax(1).eq(y).sum().item<int64_t>();
    r.n += y.size(0);
    if (logits_out) all.push_back(out);
  });
  r.accuracy = r.n ? 100.0 * double(correct) / double(r.n) : 0.0;
  if (logits_out) *logits_out = all.empty() ? torch::empty({0, 0}) : torch::cat(all);
  return r;
}

void StreamedImages::for_each_features(VisionTransformer backbone, const CacheTaps& taps, int64_t batch_size,
                                       torch::Device device, bool progress, const std::string& label,
                                       const FeatureFn& fn) const {
  for_each_batch(batch_size, device, progress, label,
                 [&](const torch::Tensor& x, const torch::Tensor& y) { fn(backbone_features(backbone, x, taps), y); });
}

CachedFeatureSource::CachedFeatureSource(const std::string& path, const io::AttributeMap& identity,
                                         const CacheTaps& taps, bool resident)
    : path_(path), identity_(identity), taps_(taps) {
  if (resident) {
    resident_ = std::make_unique<CachedSplit>(path, identity, taps);
    labels_ = resident_->labels();
    list_sha256_ = resident_->attributes().at("list_sha256");
  } else {
    io::FeatureStoreReader r(path, identity);
    labels_ = torch::empty({r.n_rows()}, torch::kInt64);
    r.read_labels(0, r.n_rows(), labels_.data_ptr<int64_t>());
    list_sha256_ = r.attributes().at("list_sha256");
  }
}

CachedFeatureSource::CachedFeatureSource(const std::string& path, const io::AttributeMap& identity,
                                         const CacheTaps& taps, const std::vector<int64_t>& rows,
                                         std::string list_sha256)
    : path_(path), list_sha256_(std::move(list_sha256)), identity_(identity), taps_(taps) {
  resident_ = std::make_unique<CachedSplit>(path, identity, taps, rows);
  labels_ = resident_->labels();
}

torch::Tensor CachedFeatureSource::logits(Method& method, const torch::Tensor& index, torch::Device device) const {
  TORCH_INTERNAL_ASSERT(resident_, "batches by index need a resident cache");
  return method.forward_cached(resident_->batch(index, device));
}

EvalResult CachedFeatureSource::evaluate(Method& method, int64_t batch_size, torch::Device device, bool,
                                         const std::string&, torch::Tensor* logits_out) const {
  return evaluate_cached(method, path_, identity_, taps_, batch_size, device, logits_out);
}

void CachedFeatureSource::for_each_features(VisionTransformer, const CacheTaps& taps, int64_t batch_size,
                                            torch::Device device, bool, const std::string&, const FeatureFn& fn) const {
  PETL_CHECK((!taps.cls || taps_.cls) && (!taps.kv || taps_.kv), "feature cache ", path_, " holds ", taps_.str(),
             ", not the taps ", taps.str(), " asked of it");
  for_each_cached_batch(path_, identity_, taps, batch_size, device, fn);
}

int job_num_classes(const ResolvedJob& job) {
  int n = job.task.num_classes;
  if (n > 0) return n;  // declared: read_split checks every label of every split against it
  int64_t limit = job.spec.feature_cache.empty() ? job.spec.limit_train : -1;
  int64_t i = 0;
  std::string train_file;
  for (auto& s : data::read_split(job.task, job.recipe().train_split)) {  // an empty list is an error there
    if (limit >= 0 && i++ >= limit) break;
    n = std::max<int>(n, int(s.label) + 1);
    train_file = s.list_file;
  }
  // Undeclared: the train list defines the classes, and the test list must stay inside them.
  const int64_t test_limit = job.spec.feature_cache.empty() ? job.spec.limit_test : -1;
  int64_t k = 0;
  for (auto& s : data::read_split(job.task, job.recipe().test_split)) {
    if (test_limit >= 0 && k++ >= test_limit) break;
    PETL_CHECK(s.label < n, s.list_file, ":", s.line, ": label ", s.label, " is outside the ", n, " classes [0, ", n,
               ") of the train list ", train_file, " (task '", job.task.name,
               "' declares no class count: add <task>/petl_task.json {\"num_classes\": C})");
  }
  return n;
}

std::vector<int> check_train_classes(const ResolvedJob& job, int num_classes) {
  const int64_t limit = job.spec.feature_cache.empty() ? job.spec.limit_train : -1;
  const std::string& split = job.recipe().train_split;
  std::vector<data::Sample> samples = data::read_split(job.task, split);  // not empty: an error there
  if (limit >= 0 && size_t(limit) < samples.size()) samples.resize(size_t(limit));
  std::vector<int> missing = data::missing_classes(samples, num_classes);
  if (missing.empty()) return missing;

  std::string source;  // where the class count comes from
  if (job.task.num_classes > 0) {
    source = data::known_num_classes(job.task.name) > 0 ? "VTAB-1k's class count of the task"
                                                        : "declared in " + job.task.dir + "/petl_task.json";
  } else {
    const auto top = std::max_element(samples.begin(), samples.end(),
                                      [](const data::Sample& a, const data::Sample& b) { return a.label < b.label; });
    source = str_cat("taken from the highest label, ", top->label, " at ", data::sample_location(*top),
                     "; the task declares no class count: <task>/petl_task.json {\"num_classes\": C} does");
  }
  const std::string what =
      str_cat("task '", job.task.name, "': ", missing.size(), " of the ", num_classes,
              " classes have no training image in ", samples.front().list_file, " (the ", split, " split): classes ",
              data::class_list_text(missing), " (the class count ", num_classes, " is ", source, ")");
  const bool vtab_gap = data::vtab_train_split_lacks_classes(job.task.name);
  PETL_CHECK(job.spec.allow_missing_classes || vtab_gap, what,
             ". A head would be trained for classes it never sees: check the data with `petl data check ",
             job.spec.data_root,
             "`, fix the list or the class count, or train anyway with --allow-missing-classes "
             "(the record's data.missing_train_classes then names them)");
  std::fprintf(stderr, "[petl] warning: %s; training anyway (%s), recorded in data.missing_train_classes\n",
               what.c_str(),
               job.spec.allow_missing_classes ? "--allow-missing-classes"
                                              : "VTAB-1k's own split of this task lacks classes: task_adaptation "
                                                "issue #21");
  return missing;
}

namespace {

// stream_test: the test split is read once (one pass for every snapshot), so it is streamed.
FeatureSources live_sources(const ResolvedJob& job, const JobBackbone& bb, bool stream_test) {
  data::LoadOptions lo;
  lo.image_size = bb.model->cfg_.img_size;
  lo.norm = data::parse_normalisation(job.recipe().normalisation);
  lo.threads = job.threads;
  lo.skip_bad = job.spec.skip_bad;
  lo.progress = job.spec.progress;
  FeatureSources s;
  lo.limit = job.spec.limit_train;
  s.train = std::make_unique<LiveImages>(load_split_tensors(job.task, job.recipe().train_split, lo));
  lo.limit = job.spec.limit_test;
  if (stream_test && !lo.skip_bad)
    s.test = std::make_unique<StreamedImages>(job.task, job.recipe().test_split, lo);
  else
    s.test = std::make_unique<LiveImages>(load_split_tensors(job.task, job.recipe().test_split, lo));
  return s;
}

FeatureSources cached_sources(const ResolvedJob& job, const JobBackbone& bb, const BackboneNeeds& needs) {
  const auto& spec = job.spec;
  PETL_CHECK(spec.limit_train < 0 && spec.limit_test < 0 && !spec.skip_bad,
             "--feature-cache caches whole splits: it cannot be combined with sample limits or --skip-bad");
  CacheTaps taps = cache_taps_for(needs);
  PETL_CHECK(taps.any(), "--feature-cache: method ", spec.method, " cannot train from cached features (",
             needs.grad_through_backbone ? "gradients flow through the backbone"
             : needs.backbone_stochastic ? "its backbone path is stochastic (e.g. synqt: --set backbone_drop_path=off)"
                                         : "it needs tensors no cache holds",
             ")");
  // Resident train features: n × (cls D + kv L·2·N·D) elements in the stored dtype.
  const auto& cfg0 = bb.model->cfg_;
  const int64_t row =
      (taps.cls ? cfg0.embed_dim : 0) + (taps.kv ? int64_t(cfg0.depth) * 2 * cfg0.num_tokens() * cfg0.embed_dim : 0);
  const double need = double(data::count_samples(job.task, job.recipe().train_split)) * double(row) *
                      double(bytes_per_value(spec.cache_dtype));
  const double budget =
      spec.feature_memory_budget > 0 ? double(spec.feature_memory_budget) : 0.5 * double(available_memory_bytes());
  if (budget > 0 && need > budget) {
    const std::string why =
        "the train split's " + taps.str() + " features (" + format_bytes(need) + ", " + to_string(spec.cache_dtype) +
        ") exceed the feature memory budget (" + format_bytes(budget) +
        (spec.feature_memory_budget > 0 ? ", --feature-memory-budget" : ", half the available memory") +
        "): trained live";
    std::fprintf(stderr, "[petl] %s/%s: %s\n", spec.method.c_str(), job.task.name.c_str(), why.c_str());
    FeatureSources s = live_sources(job, bb, eval_taps_for(needs).any());
    s.cache_info = {{"fallback", why},        {"root", fs::absolute(spec.feature_cache).string()},
                    {"taps", taps.str()},     {"dtype", to_string(spec.cache_dtype)},
                    {"resident_bytes", need}, {"budget_bytes", budget}};
    return s;
  }
  CacheBuildOptions co;
  co.root = spec.feature_cache;
  co.dtype = spec.cache_dtype;
  co.taps = taps;
  co.load.image_size = bb.model->cfg_.img_size;
  co.load.norm = data::parse_normalisation(job.recipe().normalisation);
  co.load.threads = job.threads;
  co.load.progress = spec.progress;
  co.backbone_file = bb.info.value("path", json()).is_string() ? bb.info["path"].get<std::string>() : "";
  const std::string sha = bb.info["sha256"];
  const auto& cfg = bb.model->cfg_;
  const auto norm = data::to_string(co.load.norm);
  const auto& r = job.recipe();
  // A few-shot list trains on its rows of the dataset's train-pool cache: one cache for every list.
  const bool pooled = job.task.format == data::kFewshotFormat;
  const std::string cached_split = pooled ? data::kFewshotPoolSplit : r.train_split;
  auto train_path = ensure_feature_cache(co, bb.model, sha, job.task, cached_split);
  const auto train_id = cache_identity(sha, cfg, job.task, cached_split, norm, taps, co.dtype);
  FeatureSources s;
  if (pooled)
    s.train = std::make_unique<CachedFeatureSource>(train_path, train_id, taps,
                                                    data::fewshot_pool_rows(job.task, r.train_split),
                                                    data::split_list_sha256(job.task, r.train_split));
  else
    s.train = std::make_unique<CachedFeatureSource>(train_path, train_id, taps, /*resident=*/true);
  json test_info;
  if (taps.kv) {
    // Never store a test split's K/V: it is evaluated live (one pass serves every snapshot).
    s.test = std::make_unique<StreamedImages>(job.task, r.test_split, co.load);
    test_info = "live: the test split's K/V are never stored";
  } else {
    auto test_path = ensure_feature_cache(co, bb.model, sha, job.task, r.test_split);
    s.test = std::make_unique<CachedFeatureSource>(
        test_path, cache_identity(sha, cfg, job.task, r.test_split, norm, taps, co.dtype), taps, /*resident=*/false);
    test_info = test_path;
  }
  s.cache_info = {
      {"train", train_path}, {"train_split_cached", cached_split}, {"test", test_info},
      {"taps", taps.str()},  {"dtype", to_string(co.dtype)},       {"root", fs::absolute(spec.feature_cache).string()}};
  return s;
}

}  // namespace

FeatureSources make_feature_sources(const ResolvedJob& job, const JobBackbone& backbone, const BackboneNeeds& needs) {
  // A few-shot test list is read after training: an image missing on disk is reported now.
  if (job.task.format == data::kFewshotFormat && !job.spec.skip_bad)
    for (const auto& split : {job.recipe().train_split, job.recipe().test_split})
      data::check_split_images_exist(job.task, split);
  return job.spec.feature_cache.empty() ? live_sources(job, backbone, eval_taps_for(needs).any())
                                        : cached_sources(job, backbone, needs);
}

}  // namespace petl

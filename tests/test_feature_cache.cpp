// Feature cache (harness/train/feature_cache.h): the cached features are bit for bit what the live
// backbone computes for the same images in the same batch; training from them follows live
// training (deterministic backbone, same seed) to float round-off — the only possible difference
// is that the backbone's batched GEMM / conv kernels may sum in another order when the batch
// composition differs (cache chunks vs training batches; bit for bit on this machine); a damaged
// or truncated cache is detected and rebuilt; the taps follow the methods' declarations.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/system.h"
#include "datasets/suite_mini.h"
#include "harness/train/feature_cache.h"
#include "harness/train/job.h"
#include "harness/train/memory_meter.h"
#include "harness/train/task_data.h"
#include "models/backbone.h"
#include "models/checkpoint.h"
#include "test_util.h"

using namespace petl;
namespace fs = std::filesystem;

namespace {
const std::string& suite() {
  static std::string dir = [] {
    auto d = test::scratch_dir("cache_suite");
    data::SuiteOptions o;
    o.progress = false;
    data::build_mini_suite(d, o);
    return d;
  }();
  return dir;
}

nlohmann::json run(const std::string& method, const std::string& out, const std::string& cache,
                   std::vector<std::string> sets = {}, int64_t feature_budget = 0) {
  JobSpec s;
  s.feature_memory_budget = feature_budget;
  s.method = method;
  s.task = "sprites_loc";
  s.data_root = suite();
  s.recipe = "mini";
  s.epochs = 2;
  // A fixed count (not the cores free now): the runs compared here must round alike.
  s.threads = available_cores();
  s.out_dir = out;
  s.progress = false;
  s.feature_cache = cache;
  s.set = sets;
  s.set.push_back("eval_every=1");
  return to_json(run_job(s));
}

// Training from cached features against live training: the same job key, epoch losses within
// kLossRel relative, the same evaluations (accuracies within kAccuracyPoints), the trained tensors
// within kWeightRel of their largest element. Measured on this machine (printed): 0, bit for bit.
// The tolerances are README's claim ("the same training to float round-off"): OpenBLAS kernels that
// sum a GEMM in an order that depends on its row count (Haswell/Zen) put a 64-image training batch
// and a 128-image cache chunk 7.5e-6 apart in the losses after two epochs.
constexpr double kLossRel = 1e-5, kAccuracyPoints = 0.0, kWeightRel = 1e-4;
void expect_same_training(const nlohmann::json& live, const nlohmann::json& cached) {
  ASSERT_EQ(live["status"], "ok");
  ASSERT_EQ(cached["status"], "ok");
  auto ll = live["epoch_train_loss"], lc = cached["epoch_train_loss"];
  ASSERT_EQ(ll.size(), lc.size());
  double loss = 0, acc = 0, weight = 0;
  for (size_t i = 0; i < ll.size(); ++i)
    loss = std::max(loss, std::abs(ll[i].get<double>() - lc[i].get<double>()) / std::abs(ll[i].get<double>()));
  ASSERT_EQ(live["evals"].size(), cached["evals"].size());
  for (size_t i = 0; i < live["evals"].size(); ++i)
    acc = std::max(acc,
                   std::abs(live["evals"][i]["test_acc"].get<double>() - cached["evals"][i]["test_acc"].get<double>()));
  auto a = load_named_tensors(live["checkpoint"]);
  auto b = load_named_tensors(cached["checkpoint"]);
  ASSERT_EQ(a.size(), b.size());
  for (auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    weight = std::max(weight, (v - b.at(k)).abs().max().item<double>() / std::max(1e-12, v.abs().max().item<double>()));
  }
  std::printf("cached vs live: losses %.2e relative, accuracies %.2f points, trained tensors %.2e relative\n", loss,
              acc, weight);
  EXPECT_LE(loss, kLossRel);
  EXPECT_LE(acc, kAccuracyPoints);
  EXPECT_LE(weight, kWeightRel);
  EXPECT_EQ(live["job_key"], cached["job_key"]);
  EXPECT_TRUE(cached.contains("feature_cache"));
}
}  // namespace

TEST(FeatureCache, TapsFollowTheDeclaration) {
  BackboneNeeds n;
  n.final_cls = true;
  EXPECT_EQ(cache_taps_for(n).str(), "cls");
  n.block_kv = true;
  EXPECT_EQ(cache_taps_for(n).str(), "cls+kv");
  n.backbone_stochastic = true;
  EXPECT_FALSE(cache_taps_for(n).any());
  n.backbone_stochastic = false;
  n.grad_through_backbone = true;
  EXPECT_FALSE(cache_taps_for(n).any());
  EXPECT_THROW(CacheTaps::parse("tokens"), petl::Error);
}

TEST(FeatureCache, LinearFromCachedClsTrainsAsLiveToRoundOff) {
  auto dir = test::scratch_dir("cache_linear");
  auto live = run("linear", dir + "/live", "");
  auto cached = run("linear", dir + "/cached", dir + "/cache");
  expect_same_training(live, cached);
  EXPECT_EQ(cached["feature_cache"]["taps"], "cls");
}

TEST(FeatureCache, SynqtFromCachedKvTrainsAsLiveToRoundOff) {
  auto dir = test::scratch_dir("cache_synqt");
  auto live = run("synqt", dir + "/live", "", {"backbone_drop_path=off"});
  auto cached = run("synqt", dir + "/cached", dir + "/cache", {"backbone_drop_path=off"});
  expect_same_training(live, cached);
  EXPECT_EQ(cached["feature_cache"]["taps"], "kv");
  // The test split's K/V are never stored: only the train split's cache file exists.
  EXPECT_EQ(cached["feature_cache"]["test"].get<std::string>().rfind("live", 0), 0u) << cached["feature_cache"];
  int h5 = 0;
  for (auto& e : fs::directory_iterator(dir + "/cache")) h5 += e.path().extension() == ".h5";
  EXPECT_EQ(h5, 1);
  // Both runs evaluated their snapshots in one pass at the end.
  EXPECT_TRUE(live["settings"].contains("evaluation"));
  ASSERT_EQ(cached["evals"].size(), 2u);
  // With the reference's stochastic backbone path there is nothing to cache: a clear error.
  EXPECT_THROW(run("synqt", dir + "/bad", dir + "/cache"), petl::Error);
  EXPECT_THROW(run("full", dir + "/bad", dir + "/cache"), petl::Error);
}

// VQT reads the final cls token and every block's K/V: both from the cache for the train split, the
// test split's K/V live.
TEST(FeatureCache, VqtFromCachedClsAndKvTrainsAsLiveToRoundOff) {
  auto dir = test::scratch_dir("cache_vqt");
  auto live = run("vqt", dir + "/live", "");
  auto cached = run("vqt", dir + "/cached", dir + "/cache");
  expect_same_training(live, cached);
  EXPECT_EQ(cached["feature_cache"]["taps"], "cls+kv");
  EXPECT_EQ(cached["feature_cache"]["test"].get<std::string>().rfind("live", 0), 0u) << cached["feature_cache"];
}

// Train features above the memory budget: the job trains live (the same numbers as a live run)
// and its record says why; no cache file is written.
TEST(FeatureCache, OverTheMemoryBudgetTrainsLiveAndSaysWhy) {
  auto dir = test::scratch_dir("cache_budget");
  auto live = run("linear", dir + "/live", "");
  auto fallback = run("linear", dir + "/fallback", dir + "/cache", {}, /*feature_budget=*/1024);
  ASSERT_TRUE(fallback.contains("feature_cache"));
  const std::string why = fallback["feature_cache"].value("fallback", "");
  EXPECT_NE(why.find("exceed the feature memory budget"), std::string::npos) << fallback["feature_cache"];
  EXPECT_EQ(live["epoch_train_loss"], fallback["epoch_train_loss"]);
  EXPECT_EQ(live["evals"], fallback["evals"]);
  EXPECT_FALSE(fs::exists(dir + "/cache"));
}

// Logits from cached features against the live forward: bit for bit where the live backbone pass
// has the cache chunk's composition (backbone_micro_batch=0: the whole batch at once, as the cache
// builds it); at the default micro-batches of 4 images the GEMMs sum in another order on processors
// whose BLAS kernels depend on the row count (OpenBLAS's SkylakeX/Zen kernels), so there the logits
// agree to kDefaultLogitRel of their largest (README states both).
constexpr double kDefaultLogitRel = 1e-5;
TEST(FeatureCache, CachedLogitsEqualLiveLogitsBitForBitAtTheCacheChunkAndToRoundOffByDefault) {
  auto dir = test::scratch_dir("cache_logits");
  auto bb = make_job_backbone("", "", 0.1, false);
  auto task = data::find_task(suite(), "sprites_ori");
  for (const bool whole_batch : {true, false}) {
    for (auto [method, sets] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {"linear", {}}, {"synqt", {"backbone_drop_path=off"}}, {"vqt", {}}}) {
      if (whole_batch) sets.push_back("backbone_micro_batch=0");
      MethodContext ctx;
      ctx.backbone = bb.model;
      ctx.num_classes = 8;
      ctx.task = task.name;
      ctx.settings = Settings::parse(sets);
      ctx.backbone_drop_path = 0.1;
      auto m = build_method(method, ctx);
      CacheBuildOptions o;
      o.root = dir;
      o.taps = cache_taps_for(m->needs());
      ASSERT_TRUE(o.taps.any()) << method;
      o.chunk_images = 128;
      o.load.image_size = bb.model->cfg_.img_size;
      o.load.progress = false;
      auto path = ensure_feature_cache(o, bb.model, bb.info["sha256"], task, "train800val200");
      auto identity = cache_identity(bb.info["sha256"], bb.model->cfg_, task, "train800val200", "imagenet", o.taps,
                                     CacheDtype::kFloat32);
      data::LoadOptions lo = o.load;
      lo.offset = 128;  // the second chunk
      lo.limit = 128;
      auto imgs = load_split_tensors(task, "train800val200", lo);
      m->train(false);
      torch::NoGradGuard ng;
      auto live = m->forward(imgs.images);
      auto cached = m->forward_cached(CachedSplit(path, identity, o.taps).batch(torch::arange(128, 256), torch::kCPU));
      const double diff = (live - cached).abs().max().item<double>() / live.abs().max().item<double>();
      std::printf("cached vs live logits, %s, %s: %.2e relative\n", method.c_str(),
                  whole_batch ? "backbone_micro_batch=0" : "default micro-batches", diff);
      if (whole_batch)
        EXPECT_TRUE(torch::equal(live, cached)) << method << ": " << diff << " relative";
      else
        EXPECT_LE(diff, kDefaultLogitRel) << method;
    }
  }
}

TEST(FeatureCache, DamagedOrTruncatedCacheIsRebuiltNeverUsed) {
  auto dir = test::scratch_dir("cache_damage");
  auto bb = make_job_backbone("", "", 0.0, false);
  auto task = data::find_task(suite(), "objects_dist");
  CacheBuildOptions o;
  o.root = dir;
  o.taps = CacheTaps::parse("cls");
  o.load.image_size = bb.model->cfg_.img_size;
  o.load.progress = false;
  bool built = false;
  auto path = ensure_feature_cache(o, bb.model, bb.info["sha256"], task, "test", &built);
  EXPECT_TRUE(built);
  ensure_feature_cache(o, bb.model, bb.info["sha256"], task, "test", &built);
  EXPECT_FALSE(built) << "a valid cache is reused";
  auto identity =
      cache_identity(bb.info["sha256"], bb.model->cfg_, task, "test", "imagenet", o.taps, CacheDtype::kFloat32);
  auto good = CachedSplit(path, identity, o.taps).batch(torch::arange(5), torch::kCPU).cls.clone();
  {  // bit for bit the live backbone's features for the same batch (the first cache chunk)
    data::LoadOptions lo = o.load;
    lo.limit = o.chunk_images;
    auto imgs = load_split_tensors(task, "test", lo);
    torch::NoGradGuard ng;
    bb.model->eval();
    auto live = bb.model->forward_cls(imgs.images);
    auto cached = CachedSplit(path, identity, o.taps).batch(torch::arange(o.chunk_images), torch::kCPU).cls;
    EXPECT_TRUE(torch::equal(live, cached));
  }

  // Flip bytes in the middle of the file (inside the feature data): checksums catch it.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const auto size = int64_t(f.tellg());
    for (int64_t off = size / 3; off < size / 3 + 64; ++off) {
      f.seekg(off);
      char c;
      f.read(&c, 1);
      c ^= 0x5A;
      f.seekp(off);
      f.write(&c, 1);
    }
  }
  EXPECT_FALSE(io::verify(path).ok);
  ensure_feature_cache(o, bb.model, bb.info["sha256"], task, "test", &built);
  EXPECT_TRUE(built) << "a corrupt cache is rebuilt";
  EXPECT_TRUE(io::verify(path).ok);

  // Truncate it: detected, rebuilt.
  fs::resize_file(path, fs::file_size(path) / 2);
  ensure_feature_cache(o, bb.model, bb.info["sha256"], task, "test", &built);
  EXPECT_TRUE(built) << "a truncated cache is rebuilt";
  auto again = CachedSplit(path, identity, o.taps).batch(torch::arange(5), torch::kCPU).cls;
  EXPECT_TRUE(torch::equal(good, again));
}

// Training from resident float16 features read in place (CachedFeatures::rows: views of the store
// and the batch's row index, repeats allowed) equals training from the same rows gathered into a
// copy, bit for bit: logits and every trainable tensor's gradient, for vqt and for synqt with and
// without the recomputation of its query path (whose backward reads the rows again).
TEST(FeatureCache, ResidentRowsInPlaceEqualTheGatheredBatch) {
  auto bb = make_job_backbone("", "", 0.1, false);
  const auto& cfg = bb.model->cfg_;
  torch::manual_seed(11);
  const auto images = torch::randn({6, 3, cfg.img_size, cfg.img_size});
  const auto index = torch::tensor({4, 1, 1, 5, 0}, torch::kInt64);
  for (auto [method, sets] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"vqt", {}},
           {"synqt", {"backbone_drop_path=off", "token_nums=4", "query_recompute=off"}},
           {"synqt", {"backbone_drop_path=off", "token_nums=4", "query_recompute=on"}}}) {
    MethodContext ctx;
    ctx.backbone = bb.model;
    ctx.num_classes = 7;
    ctx.task = "sprites_loc";
    ctx.settings = Settings::parse(sets);
    auto m = build_method(method, ctx);
    const auto taps = cache_taps_for(m->needs());
    ASSERT_TRUE(taps.kv) << method;
    auto f = backbone_features(bb.model, images, taps);
    std::vector<torch::Tensor> layers;
    for (size_t l = 0; l < f.k.size(); ++l) layers.push_back(torch::stack({f.k[l], f.v[l]}, 1));
    const CachedSplit store(f.cls.defined() ? f.cls.to(torch::kHalf) : torch::Tensor(),
                            torch::stack(layers, 1).to(torch::kHalf), torch::zeros({6}, torch::kInt64));
    auto step = [&, &m = m](bool in_place) {
      auto feats = store.batch(index, torch::kCPU, in_place);
      EXPECT_EQ(feats.rows.defined(), in_place);
      torch::manual_seed(3);  // the same dropout and drop-path draws
      m->train(true);
      m->zero_grad();
      auto logits = m->forward_cached(feats);
      torch::nn::functional::cross_entropy(logits, torch::tensor({0, 1, 2, 3, 4}, torch::kInt64)).backward();
      std::vector<torch::Tensor> out{logits.detach()};
      for (auto& [name, p] : m->trainable_parameters())
        out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros({0}));
      return out;
    };
    const auto gathered = step(false), in_place = step(true);
    ASSERT_EQ(gathered.size(), in_place.size());
    for (size_t i = 0; i < gathered.size(); ++i)
      EXPECT_TRUE(torch::equal(gathered[i], in_place[i])) << method << " " << sets.back() << " tensor " << i;
  }
}

// query_recompute=live from resident features: a SynQT step keeps its query path's activations while
// they fit under a live step's fp32 K/V (T·(27·D + H·N) ≤ 2·N·D per image and layer) and recomputes
// above: the same training peak, byte for byte, as query_recompute=off below the threshold and as
// query_recompute=on above it (where recomputing holds less than keeping).
TEST(FeatureCache, ResidentSynqtRecomputesOnlyAboveTheKvThreshold) {
  MemoryMeter::install();
  auto bb = make_job_backbone("", "", 0.1, false);
  const auto& cfg = bb.model->cfg_;
  const int64_t D = cfg.embed_dim, H = cfg.num_heads, N = cfg.num_tokens();
  const int64_t below = 2 * N * D / (27 * D + H * N);  // the largest T that keeps its activations
  ASSERT_GE(below, 1);
  torch::manual_seed(5);
  const auto images = torch::randn({4, 3, cfg.img_size, cfg.img_size});
  auto peak_of = [&](int64_t T, const std::string& recompute) {
    MethodContext ctx;
    ctx.backbone = bb.model;
    ctx.num_classes = 3;
    ctx.task = "sprites_loc";
    ctx.settings =
        Settings::parse({"backbone_drop_path=off", "token_nums=" + std::to_string(T), "query_recompute=" + recompute});
    auto m = build_method("synqt", ctx);
    auto f = backbone_features(bb.model, images, cache_taps_for(m->needs()));
    std::vector<torch::Tensor> layers;
    for (size_t l = 0; l < f.k.size(); ++l) layers.push_back(torch::stack({f.k[l], f.v[l]}, 1));
    const CachedSplit store(torch::Tensor(), torch::stack(layers, 1).to(torch::kHalf),
                            torch::zeros({4}, torch::kInt64));
    auto feats = store.batch(torch::arange(4), torch::kCPU, true);
    torch::manual_seed(3);
    m->train(true);
    MemoryMeter::release_cache();
    PeakProbe probe;
    auto logits = m->forward_cached(feats);
    torch::nn::functional::cross_entropy(logits, torch::tensor({0, 1, 2, 0}, torch::kInt64)).backward();
    return probe.growth();
  };
  EXPECT_EQ(peak_of(below, "live"), peak_of(below, "off")) << "T = " << below << " keeps its activations";
  EXPECT_NE(peak_of(below, "live"), peak_of(below, "on"));
  const int64_t above = below + 2;
  const int64_t live = peak_of(above, "live"), on = peak_of(above, "on"), off = peak_of(above, "off");
  EXPECT_EQ(live, on) << "T = " << above << " recomputes";
  EXPECT_LT(on, off);
}

// Feature cache (harness/train/feature_cache.h): the cached features are bit for bit what the live
// backbone computes for the same images in the same batch; training from them follows live
// training (deterministic backbone, same seed) to float round-off — the only difference is that
// the backbone's batched GEMM / conv kernels sum in another order when the batch composition
// differs (cache chunks vs random training batches), ~1e-8 relative here; a damaged or truncated
// cache is detected and rebuilt; the taps follow the methods' declarations.
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

void expect_same_training(const nlohmann::json& live, const nlohmann::json& cached) {
  ASSERT_EQ(live["status"], "ok");
  ASSERT_EQ(cached["status"], "ok");
  auto ll = live["epoch_train_loss"], lc = cached["epoch_train_loss"];
  ASSERT_EQ(ll.size(), lc.size());
  double worst = 0;
  for (size_t i = 0; i < ll.size(); ++i)
    worst = std::max(worst, std::abs(ll[i].get<double>() - lc[i].get<double>()) / std::abs(ll[i].get<double>()));
  std::printf("cached vs live: max relative loss difference %.2e\n", worst);
  // Bit-exact (0.0) where the BLAS kernels' accumulation order does not depend on how many rows a
  // GEMM has (OpenBLAS Sandybridge kernels); the Haswell/Zen kernels sum a 64-row training batch
  // and a 256-row cache-building chunk in different orders: 7.5e-6 after two epochs of AdamW.
  EXPECT_LT(worst, 1e-4);
  ASSERT_EQ(live["evals"].size(), cached["evals"].size());
  for (size_t i = 0; i < live["evals"].size(); ++i)
    EXPECT_NEAR(live["evals"][i]["test_acc"].get<double>(), cached["evals"][i]["test_acc"].get<double>(), 0.2);
  EXPECT_EQ(live["job_key"], cached["job_key"]);
  EXPECT_TRUE(cached.contains("feature_cache"));
  auto a = load_named_tensors(live["checkpoint"]);
  auto b = load_named_tensors(cached["checkpoint"]);
  ASSERT_EQ(a.size(), b.size());
  // Adam turns round-off in near-zero gradients into full-size steps, so tensors agree to ~1e-4.
  for (auto& [k, v] : a) EXPECT_TRUE(torch::allclose(v, b.at(k), 0, 1e-3)) << k;
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

TEST(FeatureCache, LinearFromCachedClsIsExact) {
  auto dir = test::scratch_dir("cache_linear");
  auto live = run("linear", dir + "/live", "");
  auto cached = run("linear", dir + "/cached", dir + "/cache");
  expect_same_training(live, cached);
  EXPECT_EQ(cached["feature_cache"]["taps"], "cls");
}

TEST(FeatureCache, SynqtFromCachedKvIsExact) {
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

// Logits from cached features equal the live forward's bit for bit (same batch composition).
TEST(FeatureCache, CachedLogitsEqualLiveLogits) {
  auto dir = test::scratch_dir("cache_logits");
  auto bb = make_job_backbone("", "", 0.1, false);
  auto task = data::find_task(suite(), "sprites_ori");
  for (auto [method, sets] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           // The whole batch in one backbone pass, the composition of the cache chunk (the default
           // micro-batches of 4 images sum the GEMMs in another order on processors whose BLAS
           // kernels depend on the row count, e.g. OpenBLAS's SkylakeX/Zen kernels: ~1e-6 apart).
           {"linear", {"backbone_micro_batch=0"}},
           {"synqt", {"backbone_drop_path=off", "backbone_micro_batch=0"}},
           {"vqt", {"backbone_micro_batch=0"}}}) {
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
    EXPECT_TRUE(torch::equal(live, cached))
        << method << ": max abs diff " << (live - cached).abs().max().item<double>();
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

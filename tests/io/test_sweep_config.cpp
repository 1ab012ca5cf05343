// Tests for the sweep planner (harness/sweep/sweep_config) and the sweep journal (harness/sweep/sweep_journal):
// config errors that name file, line and key; expansion and child argv; key stability (the same
// config gives the same keys, changing one grid value changes only the affected keys); feature-
// cache jobs and dependencies; override precedence; shards; torn-journal handling.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iomanip>
#include <set>
#include <sstream>

#include "app/job_args.h"
#include "core/error.h"
#include "core/text.h"
#include "harness/sweep/sweep_config.h"
#include "harness/sweep/sweep_journal.h"

namespace petl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A planned job's child command line, as the farm runs it (app/job_args.h).
std::vector<std::string> args_of(const SweepJob& j) {
  return j.is_cache ? cli::cache_build_command(*j.build) : cli::run_command(*j.run);
}
const CacheTaps kCls = CacheTaps::parse("cls"), kKv = CacheTaps::parse("kv");

class SweepConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("petl_test_sweep_config_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data" / "t1");
    fs::create_directories(dir_ / "data" / "t2");
    // t1 has a 10-line train list (cost model), t2 none (fallback 1000).
    std::ofstream tl(dir_ / "data" / "t1" / "train800val200.txt");
    for (int i = 0; i < 10; ++i) tl << "images/" << i << ".png " << i % 2 << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string base_yaml(const std::string& extra = "") const {
    return "name: unit\nout: " + (dir_ / "out").string() + "\ndata_root: " + (dir_ / "data").string() +
           "\nmethods: [heavy, lin]\ntasks: [t1, t2]\nseeds: [1, 2]\n" + extra;
  }
  static PlanOptions opts() {
    PlanOptions o;
    o.cache_need = [](const std::string& m, const std::string&, const std::string&,
                      const std::map<std::string, std::string>&, Benchmark) -> std::optional<CacheNeed> {
      if (m.rfind("lin", 0) == 0) return CacheNeed{kCls, {"train800val200", "test"}, ""};
      return std::nullopt;
    };
    return o;
  }
  SweepPlan plan(const std::string& yaml, PlanOptions o = opts()) const {
    return plan_sweep(parse_sweep_config(yaml, "unit.yaml"), o);
  }
  static std::set<std::string> keys(const SweepPlan& p, bool caches = false) {
    std::set<std::string> k;
    for (auto& j : p.jobs)
      if (j.is_cache == caches) k.insert(j.key);
    return k;
  }
  static std::string error_of(const std::string& yaml) {
    try {
      parse_sweep_config(yaml, "bad.yaml");
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path dir_;
};

TEST_F(SweepConfigTest, ParsesEveryKey) {
  auto cfg = parse_sweep_config(base_yaml(R"(backbone: ""
arch: vit_tiny
protocol: final
recipe: mini
epochs: 3
batch_size: 16
grid: {lr: [0.1, 0.2], wd: [0]}
method_overrides:
  lin: {set: {lr: 0.5}, grid: {token_nums: [1, 2]}}
task_overrides:
  t2: {set: {warmup_epochs: 1}}
method_task_overrides:
  heavy/t1: {set: {lr: 0.9}}
feature_cache: false
cache_dtype: float32
threads_per_rank: 2
job_timeout_s: 3600
retry_failed: yes
)"),
                                "x.yaml");
  EXPECT_EQ(cfg.name, "unit");
  EXPECT_EQ(cfg.protocol, Protocol::kFinal);
  EXPECT_EQ(cfg.recipe, "mini");
  EXPECT_EQ(cfg.arch, "vit_tiny");
  EXPECT_EQ(cfg.epochs, 3);
  EXPECT_EQ(cfg.batch_size, 16);
  EXPECT_EQ(cfg.seeds, (std::vector<int>{1, 2}));
  EXPECT_EQ(cfg.grid.at("lr"), (std::vector<std::string>{"0.1", "0.2"}));
  EXPECT_EQ(cfg.method_overrides.at("lin").set.at("lr"), "0.5");
  EXPECT_EQ(cfg.method_overrides.at("lin").grid.at("token_nums").size(), 2u);
  EXPECT_EQ(cfg.task_overrides.at("t2").set.at("warmup_epochs"), "1");
  EXPECT_EQ(cfg.method_task_overrides.at("heavy/t1").set.at("lr"), "0.9");
  EXPECT_FALSE(cfg.feature_cache);
  EXPECT_EQ(cfg.cache_dtype, CacheDtype::kFloat32);
  EXPECT_EQ(cfg.threads_per_rank, 2);
  EXPECT_DOUBLE_EQ(cfg.job_timeout_s, 3600);
  EXPECT_TRUE(cfg.retry_failed);
}

TEST_F(SweepConfigTest, ErrorsNameFileLineAndKey) {
  auto e = error_of("name: x\ndata_root: d\nmetods: [a]\n");
  EXPECT_NE(e.find("bad.yaml:3"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'metods'"), std::string::npos) << e;

  e = error_of(base_yaml("epochs: ten\n"));
  EXPECT_NE(e.find("key 'epochs'"), std::string::npos) << e;
  EXPECT_NE(e.find("expected an integer, got 'ten'"), std::string::npos) << e;
  EXPECT_NE(e.find("bad.yaml:7"), std::string::npos) << e;

  e = error_of(base_yaml("protocol: best_of_5\n"));
  EXPECT_NE(e.find("key 'protocol': 'best_of_5': expected best_of_10, final or val_select"), std::string::npos) << e;
  e = error_of(base_yaml("cache_dtype: int8\n"));
  EXPECT_NE(e.find("cache_dtype"), std::string::npos) << e;
  e = error_of(base_yaml("grid: {lr: 0.1}\n"));
  EXPECT_NE(e.find("grid.lr"), std::string::npos) << e;
  EXPECT_NE(e.find("expected a list"), std::string::npos) << e;
  e = error_of(base_yaml("method_overrides: {lora: {set: {r: 4}}}\n"));
  EXPECT_NE(e.find("'lora' is not in methods"), std::string::npos) << e;
  e = error_of(base_yaml("method_overrides: {lin: {sett: {r: 4}}}\n"));
  EXPECT_NE(e.find("unknown key 'method_overrides.lin.sett'"), std::string::npos) << e;
  e = error_of(base_yaml("task_overrides: {t1: {grid: {r: [4]}}}\n"));
  EXPECT_NE(e.find("unknown key 'task_overrides.t1.grid'"), std::string::npos) << e;
  e = error_of(base_yaml("method_task_overrides: {lin-t1: {set: {r: 4}}}\n"));
  EXPECT_NE(e.find("'lin-t1' is not \"method/task\""), std::string::npos) << e;
  e = error_of(base_yaml("feature_cache: maybe\n"));
  EXPECT_NE(e.find("expected true or false"), std::string::npos) << e;
  e = error_of("name: x\ndata_root: d\nmethods: [a, a]\ntasks: [t]\nseeds: [1]\n");
  EXPECT_NE(e.find("'a' is listed twice"), std::string::npos) << e;
  e = error_of("name: x\nmethods: [a]\ntasks: [t]\nseeds: [1]\n");
  EXPECT_NE(e.find("missing key 'data_root'"), std::string::npos) << e;
  e = error_of("name: x\ndata_root: d\nmethods: [a]\ntasks: [t]\n");
  EXPECT_NE(e.find("missing key 'seeds'"), std::string::npos) << e;
  e = error_of("name: [x\n");
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
  e = error_of(base_yaml("grid: {\"lr=1\": [1]}\n"));
  EXPECT_NE(e.find("not a valid setting name"), std::string::npos) << e;
  // Text that is not UTF-8 (it would end up in JSON keys and records): refused with its line.
  e = error_of(base_yaml("grid: {lr: [\"0.1\xff\"]}\n"));
  EXPECT_NE(e.find("bad.yaml:7"), std::string::npos) << e;
  EXPECT_NE(e.find("key 'grid.lr': the value is not valid UTF-8 text"), std::string::npos) << e;

  // A file that does not exist; a data_root that does not exist (at planning).
  try {
    load_sweep_config((dir_ / "nope.yaml").string());
    ADD_FAILURE() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("nope.yaml"), std::string::npos);
  }
  try {
    plan_sweep(
        parse_sweep_config("data_root: /nonexistent/petl\nmethods: [a]\ntasks: [t]\nseeds: [1]\nout: o\n", "x.yaml"),
        opts());
    ADD_FAILURE() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("key 'data_root'"), std::string::npos) << err.what();
  }
}

TEST_F(SweepConfigTest, ExpandsMethodsTasksSeedsAndGridWithChildArgv) {
  auto p = plan(base_yaml("recipe: mini\nepochs: 3\nbatch_size: 16\ngrid: {lr: [0.1, 0.2], wd: [0, 1]}\n"));
  // 2 methods × 2 tasks × 2 seeds × 4 grid points; one cache per task for lin.
  EXPECT_EQ(keys(p).size(), 32u);
  EXPECT_EQ(keys(p, true).size(), 2u);
  ASSERT_TRUE(p.jobs[0].is_cache && p.jobs[1].is_cache);  // cache builds first
  const SweepJob& first = p.jobs[2];
  EXPECT_EQ(first.method, "heavy");
  EXPECT_EQ(first.task, "t1");
  EXPECT_EQ(first.seed, 1);
  EXPECT_EQ(first.sets, (std::map<std::string, std::string>{{"lr", "0.1"}, {"wd", "0"}}));
  const std::string out = fs::absolute(dir_ / "out").lexically_normal().string();
  const std::string data = fs::absolute(dir_ / "data").lexically_normal().string();
  // The spec, and its command line (flags at their default left out; threads come from the farm).
  ASSERT_TRUE(first.run && !first.build);
  EXPECT_EQ(first.run->recipe, "mini");
  EXPECT_EQ(first.run->epochs, 3);
  EXPECT_EQ(first.run->batch_size, 16);
  EXPECT_EQ(first.run->seed, 1);
  EXPECT_TRUE(first.run->reuse_done);
  EXPECT_FALSE(first.run->progress);
  EXPECT_EQ(first.run->threads, 0);
  std::vector<std::string> want = {"run",     "--method",
                                   "heavy",   "--task",
                                   "t1",      "--data-root",
                                   data,      "--recipe",
                                   "mini",    "--epochs",
                                   "3",       "--batch-size",
                                   "16",      "--seed",
                                   "1",       "--set",
                                   "lr=0.1",  "--set",
                                   "wd=0",    "--no-progress",
                                   "--out",   out + "/jobs/" + first.key,
                                   "--resume"};
  EXPECT_EQ(args_of(first), want);
  EXPECT_EQ(first.result_file, out + "/jobs/" + first.key + "/results.jsonl");
  EXPECT_EQ(first.log_file, out + "/logs/" + first.key + ".log");
  EXPECT_EQ(p.journal, out + "/results.jsonl");
  EXPECT_EQ(first.key.size(), 16u);

  // A lin job trains on its task's cache; the cache job's argv.
  const SweepJob* lin = nullptr;
  for (auto& j : p.jobs)
    if (j.method == "lin" && j.task == "t2") lin = &j;
  ASSERT_NE(lin, nullptr);
  const SweepJob* cache = nullptr;
  for (auto& j : p.jobs)
    if (j.key == lin->depends_on) cache = &j;
  ASSERT_NE(cache, nullptr);
  EXPECT_TRUE(cache->is_cache);
  EXPECT_EQ(cache->task, "t2");
  std::vector<std::string> cwant = {
      "cache",        "build",    "--data-root",         data,      "--task",  "t2",    "--taps",
      "cls",          "--splits", "test,train800val200", "--dtype", "float16", "--out", out + "/cache/" + cache->key,
      "--no-progress"};
  EXPECT_EQ(args_of(*cache), cwant);
  EXPECT_EQ(lin->run->feature_cache, out + "/cache/" + cache->key);
  EXPECT_EQ(lin->run->cache_dtype, CacheDtype::kFloat16);
  const auto la = args_of(*lin);
  auto it = std::find(la.begin(), la.end(), "--feature-cache");
  ASSERT_NE(it, la.end());
  EXPECT_EQ(*(it + 1), out + "/cache/" + cache->key);
  // Every lin job of t2 uses the same cache; heavy jobs none.
  for (auto& j : p.jobs) {
    if (j.method == "lin") {
      EXPECT_FALSE(j.depends_on.empty());
    }
    if (j.method == "lin" && j.task == "t2") {
      EXPECT_EQ(j.depends_on, cache->key);
    }
    if (j.method == "heavy") {
      EXPECT_TRUE(j.depends_on.empty());
    }
  }
}

TEST_F(SweepConfigTest, KeysAreStableAndOnlyChangedGridValuesChangeKeys) {
  const std::string a = base_yaml("grid: {lr: [0.1, 0.2]}\n");
  auto p1 = plan(a), p2 = plan(a);
  ASSERT_EQ(p1.jobs.size(), p2.jobs.size());
  for (size_t i = 0; i < p1.jobs.size(); ++i) {
    EXPECT_EQ(p1.jobs[i].key, p2.jobs[i].key);
    EXPECT_EQ(args_of(p1.jobs[i]), args_of(p2.jobs[i]));
  }
  // Change one grid value: lr 0.2 → 0.3. The lr=0.1 jobs keep their keys, the lr=0.2 ones go.
  auto p3 = plan(base_yaml("grid: {lr: [0.1, 0.3]}\n"));
  std::set<std::string> k01, k02, k03;
  for (auto& j : p1.jobs)
    if (!j.is_cache) (j.sets.at("lr") == "0.1" ? k01 : k02).insert(j.key);
  for (auto& j : p3.jobs)
    if (!j.is_cache && j.sets.at("lr") == "0.3") k03.insert(j.key);
  auto k3 = keys(p3);
  for (auto& k : k01) EXPECT_TRUE(k3.count(k)) << k;
  for (auto& k : k02) EXPECT_FALSE(k3.count(k)) << k;
  for (auto& k : k03) EXPECT_FALSE(keys(p1).count(k)) << k;
  EXPECT_EQ(keys(p1, true), keys(p3, true));  // caches do not depend on lr
  // Adding a value adds jobs and keeps every old key.
  auto p4 = plan(base_yaml("grid: {lr: [0.1, 0.2, 0.4]}\n"));
  EXPECT_EQ(keys(p4).size(), keys(p1).size() * 3 / 2);
  for (auto& k : keys(p1)) EXPECT_TRUE(keys(p4).count(k)) << k;
  // The output directory is not part of a key.
  PlanOptions o = opts();
  o.out = (dir_ / "elsewhere").string();
  EXPECT_EQ(keys(plan(a, o)), keys(p1));
  // Seeds, protocol and recipe are.
  EXPECT_NE(keys(plan(base_yaml("grid: {lr: [0.1, 0.2]}\nprotocol: final\n"))), keys(p1));
  EXPECT_NE(keys(plan(base_yaml("grid: {lr: [0.1, 0.2]}\nrecipe: mini\n"))), keys(p1));
}

// The cost and byte estimates count a task's samples through datasets/, as training reads them:
// a task in SynQT's json format and a task whose folder has an alias name are counted, not taken as
// the 1000-image fallback (they used to be: the planner read <root>/<task>/<split>.txt by hand).
TEST_F(SweepConfigTest, PlannerCountsJsonAndAliasedTasksThroughTheDatasetReaders) {
  // cifar (canonical) lives in a folder named cifar100 (an alias) with a 12-line txt list; t_json in
  // the json format with 7 samples in train800val200.json and 5 in test.json.
  fs::create_directories(dir_ / "data" / "cifar100");
  {
    std::ofstream tl(dir_ / "data" / "cifar100" / "train800val200.txt");
    for (int i = 0; i < 12; ++i) tl << "images/" << i << ".png " << i % 3 << "\n";
  }
  fs::create_directories(dir_ / "data" / "t_json" / "images");
  {
    json train = json::array(), test = json::array();
    for (int i = 0; i < 7; ++i) train.push_back({{std::to_string(i) + ".png", i % 2}});
    for (int i = 0; i < 5; ++i) test.push_back({{"t" + std::to_string(i) + ".png", i % 2}});
    std::ofstream(dir_ / "data" / "t_json" / "train800val200.json") << train.dump();
    std::ofstream(dir_ / "data" / "t_json" / "test.json") << test.dump();
  }
  const BackboneDims dims{2, 17, 32};
  PlanOptions o = opts();
  o.backbone_dims = [&](const std::string&, const std::string&) { return dims; };
  auto p = plan("name: unit\nout: " + (dir_ / "out").string() + "\ndata_root: " + (dir_ / "data").string() +
                    "\nmethods: [heavy, lin]\ntasks: [cifar, t_json]\nseeds: [1]\ncache_dtype: float32\n",
                o);
  auto job = [&](const std::string& m, const std::string& t) -> const SweepJob& {
    for (auto& j : p.jobs)
      if (!j.is_cache && j.method == m && j.task == t) return j;
    throw std::runtime_error("no job " + m + "/" + t);
  };
  // Seconds at 80 GFLOP/s: F = depth (24 N D² + 4 N² D) FLOPs per image; heavy: 100 epochs of 3 F per
  // train image, 10 evaluations of F per test image (cifar has no test list: 1000 assumed).
  const double F = 2 * (24.0 * 17 * 32 * 32 + 4.0 * 17 * 17 * 32);
  EXPECT_DOUBLE_EQ(job("heavy", "cifar").cost, (12 * 100 * 3.0 * F + 10 * 1000 * F) / 80e9);
  EXPECT_DOUBLE_EQ(job("heavy", "t_json").cost, (7 * 100 * 3.0 * F + 10 * 5 * F) / 80e9);
  EXPECT_EQ(job("lin", "t_json").ram_bytes, 7 * feature_bytes_per_image(kCls, dims, 4));
  for (auto& j : p.jobs)
    if (j.is_cache && j.task == "t_json") {
      EXPECT_DOUBLE_EQ(j.cost, (7 + 5) * F / 80e9);  // both splits counted from the json lists
      EXPECT_EQ(j.disk_bytes, 12 * feature_bytes_per_image(kCls, dims, 4));
    }
}

TEST_F(SweepConfigTest, BackboneContentIsPartOfTheKey) {
  const fs::path bb = dir_ / "bb.safetensors";
  std::ofstream(bb) << "weights v1";
  const std::string y = base_yaml("backbone: " + bb.string() + "\n");
  auto p1 = plan(y);
  const auto a1 = args_of(p1.jobs[0]);
  ASSERT_NE(std::find(a1.begin(), a1.end(), "--backbone"), a1.end());
  std::ofstream(bb) << "weights v2";
  auto p2 = plan(y);
  for (auto& k : keys(p1)) EXPECT_FALSE(keys(p2).count(k));
  for (auto& k : keys(p1, true)) EXPECT_FALSE(keys(p2, true).count(k));
  // The embedded backbone (no `backbone` key) is hashed through PlanOptions::embedded_backbone.
  PlanOptions o = opts();
  o.embedded_backbone = bb.string();
  auto e1 = plan(base_yaml(), o);
  std::ofstream(bb) << "weights v3";
  auto e2 = plan(base_yaml(), o);
  EXPECT_NE(keys(e1), keys(e2));
  for (auto& j : e1.jobs) {
    const auto a = args_of(j);
    EXPECT_EQ(std::count(a.begin(), a.end(), "--backbone"), 0);
  }
  // A backbone file that does not exist is an error naming the key.
  try {
    plan(base_yaml("backbone: " + (dir_ / "missing.npz").string() + "\n"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("key 'backbone'"), std::string::npos) << e.what();
  }
}

// precision: bf16 changes every training job's key and every cache's key, and passes the flag to
// the children; fp32 (the default) keeps the keys of configs that never named it.
TEST_F(SweepConfigTest, Bf16PrecisionIsOtherJobsAndOtherCaches) {
  auto fp32 = plan(base_yaml()), fp32_named = plan(base_yaml("precision: fp32\n"));
  auto bf16 = plan(base_yaml("precision: bf16\n"));
  EXPECT_EQ(keys(fp32, false), keys(fp32_named, false));
  EXPECT_EQ(keys(fp32, true), keys(fp32_named, true));
  ASSERT_FALSE(keys(bf16, true).empty());
  for (auto& k : keys(bf16, false)) EXPECT_FALSE(keys(fp32, false).count(k)) << k;
  for (auto& k : keys(bf16, true)) EXPECT_FALSE(keys(fp32, true).count(k)) << k;
  for (auto& j : bf16.jobs) {
    const auto a = args_of(j);
    auto it = std::find(a.begin(), a.end(), "--precision");
    ASSERT_NE(it, a.end()) << j.key;
    EXPECT_EQ(*(it + 1), "bf16");
  }
  for (auto& j : fp32.jobs) {
    const auto a = args_of(j);
    EXPECT_EQ(std::count(a.begin(), a.end(), "--precision"), 0);
  }
  const std::string e = error_of(base_yaml("precision: fp16\n"));
  EXPECT_NE(e.find("key 'precision': 'fp16': expected fp32 or bf16"), std::string::npos) << e;
  // The same names as petl run --precision (one parser): float32 / bfloat16 are accepted too.
  EXPECT_EQ(keys(plan(base_yaml("precision: bfloat16\n"))), keys(bf16));
  EXPECT_EQ(keys(plan(base_yaml("precision: float32\n"))), keys(fp32));
}

TEST_F(SweepConfigTest, FeatureCacheSettingsChangeOnlyCachedJobs) {
  auto on = plan(base_yaml());
  auto f32 = plan(base_yaml("cache_dtype: float32\n"));
  auto off = plan(base_yaml("feature_cache: false\n"));
  EXPECT_EQ(keys(off, true).size(), 0u);
  std::set<std::string> heavy_on, lin_on, heavy_f32, lin_f32, lin_off;
  for (auto& j : on.jobs)
    if (!j.is_cache) (j.method == "heavy" ? heavy_on : lin_on).insert(j.key);
  for (auto& j : f32.jobs)
    if (!j.is_cache) (j.method == "heavy" ? heavy_f32 : lin_f32).insert(j.key);
  for (auto& j : off.jobs) {
    if (j.method == "lin") {
      lin_off.insert(j.key);
      EXPECT_TRUE(j.depends_on.empty());
      EXPECT_TRUE(j.run->feature_cache.empty());
    }
  }
  EXPECT_EQ(heavy_on, heavy_f32);
  for (auto& k : lin_on) {
    EXPECT_FALSE(lin_f32.count(k));
    EXPECT_FALSE(lin_off.count(k));
  }
  EXPECT_NE(keys(on, true), keys(f32, true));
  // Cost model, in seconds at 80 GFLOP/s with ViT-B/16's 34.9 GFLOP per image (no dimensions given):
  // per train image and epoch heavy 3 F, cacheable without a cache 1.1 F, from a cached cls token
  // 0.001 F; 10 evaluations of the test split (1000 assumed: no test lists), none from a cls cache;
  // t1 has 10 train lines, t2 falls back to 1000.
  auto cost = [](const SweepPlan& p, const std::string& m, const std::string& t) {
    for (auto& j : p.jobs)
      if (j.method == m && j.task == t) return j.cost;
    return -1.0;
  };
  const double F = 34.9e9, rate = 80e9;
  EXPECT_DOUBLE_EQ(cost(on, "heavy", "t1"), (10 * 100 * 3.0 * F + 10 * 1000 * F) / rate);
  EXPECT_DOUBLE_EQ(cost(on, "heavy", "t2"), (1000 * 100 * 3.0 * F + 10 * 1000 * F) / rate);
  EXPECT_DOUBLE_EQ(cost(off, "lin", "t2"), (1000 * 100 * 1.1 * F + 10 * 1000 * F) / rate);
  EXPECT_DOUBLE_EQ(cost(on, "lin", "t2"), 1000 * 100 * 0.001 * F / rate);
  for (auto& j : on.jobs)
    if (j.is_cache && j.task == "t2") {
      EXPECT_DOUBLE_EQ(j.cost, 2000 * F / rate);
    }  // two splits × 1000 (fallback)
}

TEST_F(SweepConfigTest, OverridePrecedenceAndDeduplication) {
  auto p = plan(base_yaml(R"(grid: {lr: [0.1, 0.2]}
method_overrides:
  lin: {set: {lr: 0.5}, grid: {r: [1, 2]}}
task_overrides:
  t2: {set: {wd: 7}}
method_task_overrides:
  heavy/t1: {set: {lr: 0.9}}
)"));
  int heavy_t1 = 0, heavy_t2 = 0, lin_all = 0;
  for (auto& j : p.jobs) {
    if (j.is_cache) continue;
    if (j.method == "heavy" && j.task == "t1") {
      ++heavy_t1;
      EXPECT_EQ(j.sets.at("lr"), "0.9");  // the method/task set wins over the grid: 2 points → 1 job per seed
    }
    if (j.method == "heavy" && j.task == "t2") {
      ++heavy_t2;
      EXPECT_EQ(j.sets.at("wd"), "7");
    }
    if (j.method == "lin") {
      ++lin_all;
      EXPECT_EQ(j.sets.at("lr"), "0.5");  // pinned: the global lr grid is not crossed
      EXPECT_TRUE(j.sets.count("r"));
    }
  }
  EXPECT_EQ(heavy_t1, 2);  // 2 seeds, lr grid collapsed by the pin
  EXPECT_EQ(heavy_t2, 4);  // 2 seeds × 2 lr
  EXPECT_EQ(lin_all, 8);   // 2 tasks × 2 seeds × r ∈ {1, 2}
}

TEST_F(SweepConfigTest, ShardsPartitionTrainingJobsAndKeepCachesWithTheirUsers) {
  std::string y = base_yaml("grid: {lr: [1, 2, 3, 4, 5]}\n");
  y.replace(y.find("methods: [heavy, lin]"), 21, "methods: [heavy, lin, lin2]");
  auto p = plan(y);
  const int n = 3;
  std::multiset<std::string> seen;
  std::set<std::string> caches_seen;
  for (int i = 0; i < n; ++i) {
    auto s = shard_jobs(p.jobs, Shard{i, n});
    std::set<std::string> cache_here;
    for (auto& j : s)
      if (j.is_cache) cache_here.insert(j.key);
    for (auto& j : s) {
      if (j.is_cache) {
        EXPECT_TRUE(caches_seen.insert(j.key).second) << "cache " << j.key << " in two shards";
        continue;
      }
      seen.insert(j.key);
      if (!j.depends_on.empty()) {
        EXPECT_TRUE(cache_here.count(j.depends_on)) << "cache missing in shard " << i;
      }
    }
    // Cache jobs first, in the plan's order.
    bool training = false;
    for (auto& j : s) {
      if (!j.is_cache) training = true;
      if (training) {
        EXPECT_FALSE(j.is_cache);
      }
    }
  }
  auto all = keys(p);
  EXPECT_EQ(seen.size(), all.size());
  for (auto& k : all) EXPECT_EQ(seen.count(k), 1u) << k;
  EXPECT_EQ(shard_jobs(p.jobs, Shard{0, 1}).size(), p.jobs.size());

  EXPECT_EQ(parse_shard("2/5").index, 2);
  EXPECT_EQ(parse_shard("2/5").count, 5);
  for (std::string bad : {"5/5", "-1/3", "1", "a/b", "1/0", "1/2x", "/2"}) {
    try {
      parse_shard(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--shard"), std::string::npos);
    }
  }
}

TEST_F(SweepConfigTest, DryRunTableShowsCachesFirstTotalsAndJournalStatus) {
  auto p = plan(base_yaml());
  std::map<std::string, PlannedJobStatus> done;
  std::string ok_key, failed_key;
  for (auto& j : p.jobs)
    if (!j.is_cache) {
      if (ok_key.empty())
        ok_key = j.key;
      else if (failed_key.empty())
        failed_key = j.key;
    }
  done[ok_key].journal = RecordStatus::kOk;
  done[failed_key].journal = RecordStatus::kFailed;
  done[failed_key].state = "2/10 epochs trained, saved 2026-01-01T00:00:00Z";
  std::ostringstream os;
  print_plan(os, p, p.jobs, done);
  const std::string s = os.str();
  EXPECT_NE(s.find("[cache cls]"), std::string::npos) << s;
  EXPECT_LT(s.find("[cache cls]"), s.find(" heavy "));
  EXPECT_NE(s.find("8 training job(s), 2 cache build(s); journal: 1 ok, 1 failed, 8 not run, 1 with a mid-job state"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("failed; state: 2/10 epochs trained"), std::string::npos) << s;
  EXPECT_NE(s.find(ok_key), std::string::npos);
  EXPECT_NE(s.find("depends_on"), std::string::npos);
}

TEST_F(SweepConfigTest, DryRunShowsDiskAndResidentBytesAndNoTestSplitKv) {
  // ViT-B/16 sizes: one image's K/V is 2 * 12 * 197 * 768 values (7.26 MB at float16), its cls 768.
  const BackboneDims b16{12, 197, 768};
  EXPECT_EQ(feature_bytes_per_image(kKv, b16, 2), int64_t(2) * 12 * 197 * 768 * 2);
  EXPECT_EQ(feature_bytes_per_image(kCls, b16, 4), 768 * 4);
  EXPECT_EQ(feature_bytes_per_image(CacheTaps::parse("cls+kv"), b16, 2), (int64_t(2) * 12 * 197 * 768 + 768) * 2);
  PlanOptions o = opts();
  o.backbone_dims = [&](const std::string&, const std::string&) { return b16; };
  o.cache_need = [](const std::string& m, const std::string&, const std::string&,
                    const std::map<std::string, std::string>&, Benchmark) -> std::optional<CacheNeed> {
    if (m == "lin") return CacheNeed{kCls, {"train800val200", "test"}, ""};
    if (m == "kvm") return CacheNeed{kKv, {"train800val200"}, ""};  // K/V of the train split only
    return std::nullopt;
  };
  std::string yaml = base_yaml("cache_dtype: float16\n");
  yaml.replace(yaml.find("[heavy, lin]"), 12, "[heavy, lin, kvm]");
  auto p = plan(yaml, o);
  int64_t disk = 0;
  for (auto& j : p.jobs) {
    if (j.is_cache && j.task == "t1" && j.cache.taps == kKv)
      EXPECT_EQ(j.disk_bytes, 10 * feature_bytes_per_image(kKv, b16, 2));
    if (j.is_cache && j.task == "t1" && j.cache.taps == kCls)  // t1: 10 train lines; no test list: 1000 assumed
      EXPECT_EQ(j.disk_bytes, (10 + 1000) * 768 * 2);
    if (!j.is_cache && j.method == "kvm" && j.task == "t2")
      EXPECT_EQ(j.ram_bytes, 1000 * feature_bytes_per_image(kKv, b16, 2));
    if (!j.is_cache && j.method == "heavy") EXPECT_EQ(j.ram_bytes, 0);
    disk += j.disk_bytes;
  }
  std::ostringstream os;
  print_plan(os, p, p.jobs, {});
  const std::string s = os.str();
  EXPECT_NE(s.find("disk / RAM"), std::string::npos) << s;
  EXPECT_NE(s.find("RAM 6.8 GiB"), std::string::npos) << s;  // t2's 1000 train images of K/V
  EXPECT_NE(s.find("feature caches: " + format_bytes(double(disk)) + " on disk"), std::string::npos) << s;
  EXPECT_NE(s.find("a test split's K/V is never stored"), std::string::npos) << s;
}

// The dry run states its cost in time (per job and rank-hours in total) from the job's profile
// (epochs, evaluations, gradient through the backbone), says which dtype a cache gets and whether
// it is the default, and why each method trains from a cache or live.
TEST_F(SweepConfigTest, DryRunStatesTimeDtypeAndWhyEachMethodIsCachedOrLive) {
  const BackboneDims b16{12, 197, 768};
  PlanOptions o = opts();
  o.backbone_dims = [&](const std::string&, const std::string&) { return b16; };
  o.cache_need = [](const std::string& m, const std::string&, const std::string&,
                    const std::map<std::string, std::string>&, Benchmark) -> std::optional<CacheNeed> {
    if (m == "kvm") return CacheNeed{kKv, {"train800val200"}, ""};
    return std::nullopt;
  };
  o.job_profile = [](const std::string& m, const std::string&, const std::string&, Protocol p,
                     const std::map<std::string, std::string>&, Benchmark) {
    if (m == "kvm") return JobProfile{20, p == Protocol::kFinal ? 1 : 4, false, ""};
    return JobProfile{30, p == Protocol::kFinal ? 1 : 3, true, "it back-propagates through the backbone"};
  };
  std::string yaml = base_yaml("est_gflops_per_rank: 100\n");
  yaml.replace(yaml.find("[heavy, lin]"), 12, "[heavy, kvm]");
  auto p = plan(yaml, o);
  // 2 FLOPs a multiply-add: 34.9 GFLOP, the 17.4 G multiply-adds papers call ViT-B/16's "17.6 GFLOPs"
  const double F = 12 * (24.0 * 197 * 768 * 768 + 4.0 * 197 * 197 * 768);
  EXPECT_NEAR(F / 1e9, 34.9, 0.05);
  double total = 0;
  for (auto& j : p.jobs) {
    const double n_train = j.task == "t1" ? 10 : 1000, n_test = 1000;  // t1: 10 train lines; else 1000 assumed
    if (!j.is_cache && j.method == "heavy") {
      EXPECT_DOUBLE_EQ(j.cost, (n_train * 30 * 3.0 * F + 3 * n_test * F) / 100e9) << j.task;
      EXPECT_EQ(j.cache_note, "it back-propagates through the backbone");
    }
    if (!j.is_cache && j.method == "kvm")  // from cached K/V: 0.06 F a step; one live test pass
      EXPECT_DOUBLE_EQ(j.cost, (n_train * 20 * 0.06 * F + 4 * n_test * F / 4) / 100e9) << j.task;
    if (j.is_cache) {
      EXPECT_DOUBLE_EQ(j.cost, n_train * F / 100e9) << j.task;
      EXPECT_EQ(j.cache_note, "kvm");
    }
    total += j.cost;
  }
  std::ostringstream os;
  print_plan(os, p, p.jobs, {});
  const std::string s = os.str();
  EXPECT_NE(s.find("est. time"), std::string::npos) << s;
  std::ostringstream hours;
  hours << std::fixed << std::setprecision(1) << total / 3600.0 << " rank-hours still to run of " << total / 3600.0;
  EXPECT_NE(s.find(hours.str()), std::string::npos) << hours.str() << "\n" << s;
  EXPECT_NE(s.find("at 100 GFLOP/s per rank"), std::string::npos) << s;
  EXPECT_NE(s.find("cache_dtype float16 (the default"), std::string::npos) << s;
  EXPECT_NE(s.find("live: it back-propagates through the backbone"), std::string::npos) << s;
  EXPECT_NE(s.find("cache kv (float16)"), std::string::npos) << s;
  // a dtype the config names is not called the default; no cache at all is said so
  std::ostringstream named, off;
  auto p32 = plan(base_yaml("cache_dtype: float32\n"), o);
  print_plan(named, p32, p32.jobs, {});
  EXPECT_NE(named.str().find("cache_dtype float32,"), std::string::npos) << named.str();
  EXPECT_EQ(named.str().find("the default"), std::string::npos) << named.str();
  yaml.replace(yaml.find("est_gflops_per_rank: 100"), 24, "feature_cache: false");
  auto poff = plan(yaml, o);
  print_plan(off, poff, poff.jobs, {});
  EXPECT_NE(off.str().find("live: feature_cache: false in the config"), std::string::npos) << off.str();
  EXPECT_NE(error_of(base_yaml("est_gflops_per_rank: 0\n")).find("key 'est_gflops_per_rank'"), std::string::npos);
  // a duration reads as people write it
  EXPECT_EQ(format_seconds(0.04), "0.0 s");
  EXPECT_EQ(format_seconds(42), "42 s");
  EXPECT_EQ(format_seconds(210), "3.5 min");
  EXPECT_EQ(format_seconds(7200), "2.0 h");
  EXPECT_EQ(format_seconds(3 * 86400), "3.0 d");
}

TEST_F(SweepConfigTest, MemoryBudgetReachesEveryTrainingJobAndItsKey) {
  auto plain = plan(base_yaml());
  auto budget = plan(base_yaml("memory_budget: 4G\n"));
  EXPECT_EQ(keys(plain, true), keys(budget, true)) << "cache builds do not depend on the budget";
  for (auto& k : keys(budget)) EXPECT_FALSE(keys(plain).count(k)) << "a budget is another training job";
  for (auto& j : budget.jobs) {
    if (j.is_cache) continue;
    EXPECT_EQ(j.run->memory_budget, int64_t(4) << 30);
    const auto a = args_of(j);
    auto it = std::find(a.begin(), a.end(), "--memory-budget");
    ASSERT_NE(it, a.end());
    EXPECT_EQ(*(it + 1), std::to_string(int64_t(4) << 30));
  }
  EXPECT_NE(error_of(base_yaml("memory_budget: lots\n")).find("key 'memory_budget'"), std::string::npos)
      << error_of(base_yaml("memory_budget: lots\n"));
  EXPECT_NE(error_of(base_yaml("memory_budget: 0\n")).find("expected a size > 0"), std::string::npos);
}

// ------------------------------------------------------------------ journal

TEST_F(SweepConfigTest, JournalReadsStatusesAndCutsATornLastLine) {
  const std::string path = (dir_ / "out" / "results.jsonl").string();
  EXPECT_TRUE(read_journal(path).status.empty());  // missing file = empty journal
  append_journal_line(path, {{"sweep_key", "a"}, {"status", "failed"}, {"error", "x"}});
  append_journal_line(path, {{"sweep_key", "a"}, {"status", "ok"}});
  append_journal_line(path, {{"sweep_key", "b"}, {"status", "failed"}, {"error", "first"}});
  append_journal_line(path, {{"sweep_key", "b"}, {"status", "failed"}, {"error", "second"}});
  append_journal_line(path, {{"schema", "petl.result"}, {"status", "ok"}});  // not a sweep line
  const auto good = fs::file_size(path);
  { std::ofstream(path, std::ios::app) << "{\"sweep_key\": \"c\", \"status\": \"o"; }
  Journal j = read_journal(path);
  EXPECT_TRUE(j.torn);
  EXPECT_EQ(j.good_bytes, int64_t(good));
  EXPECT_EQ(j.lines, 5);
  EXPECT_EQ(j.status.at("a"), RecordStatus::kOk);
  EXPECT_EQ(j.status.at("b"), RecordStatus::kFailed);
  EXPECT_EQ(j.record.at("b")["error"], "second");
  EXPECT_FALSE(j.status.count("c"));
  EXPECT_EQ(j.count.at("a"), 2);
  ASSERT_EQ(j.warnings.size(), 1u);
  EXPECT_NE(j.warnings[0].find("torn last line"), std::string::npos);
  EXPECT_TRUE(repair_journal(path, j));
  EXPECT_EQ(fs::file_size(path), good);
  Journal j2 = read_journal(path);
  EXPECT_FALSE(j2.torn);
  EXPECT_FALSE(repair_journal(path, j2));
  append_journal_line(path, {{"sweep_key", "c"}, {"status", "ok"}});
  EXPECT_EQ(read_journal(path).status.at("c"), RecordStatus::kOk);
  // A corrupt complete line in the middle is skipped with a warning, not fatal.
  { std::ofstream(path, std::ios::app) << "garbage\n"; }
  append_journal_line(path, {{"sweep_key", "d"}, {"status", "ok"}});
  Journal j3 = read_journal(path);
  EXPECT_EQ(j3.status.at("d"), RecordStatus::kOk);
  EXPECT_EQ(j3.warnings.size(), 1u);
  EXPECT_FALSE(j3.torn);
}

TEST_F(SweepConfigTest, ShardJournalsAndMergedStatus) {
  const std::string out = (dir_ / "out").string();
  EXPECT_EQ(journal_path(out), out + "/results.jsonl");
  EXPECT_EQ(journal_path(out, 1, 4), out + "/results.shard-1-of-4.jsonl");
  append_journal_line(journal_path(out, 0, 2), {{"sweep_key", "a"}, {"status", "failed"}});
  append_journal_line(journal_path(out, 1, 2), {{"sweep_key", "a"}, {"status", "ok"}});
  append_journal_line(journal_path(out), {{"sweep_key", "b"}, {"status", "failed"}});
  auto sib = sibling_journals(out, journal_path(out, 0, 2));
  ASSERT_EQ(sib.size(), 2u);
  EXPECT_EQ(fs::path(sib[0]).filename(), "results.jsonl");
  EXPECT_EQ(fs::path(sib[1]).filename(), "results.shard-1-of-2.jsonl");
  sib.push_back(journal_path(out, 0, 2));
  auto st = merged_status(sib);
  EXPECT_EQ(st.at("a"), RecordStatus::kOk);
  EXPECT_EQ(st.at("b"), RecordStatus::kFailed);
}

TEST_F(SweepConfigTest, FailedAndCacheRecordsHaveTheSchemaFields) {
  json id = {{"method", "m"}, {"task", "t"}, {"seed", 3}, {"protocol", "final"}};
  Provenance prov;
  prov.host = "h";
  prov.argv = {"petl", "run"};
  json f = to_json(failed_job_record(id, "boom", prov));
  for (auto* k : {"schema", "schema_version", "status", "error", "method", "task", "seed", "protocol", "provenance"})
    EXPECT_TRUE(f.contains(k)) << k;
  EXPECT_EQ(f["schema"], "petl.result");
  EXPECT_EQ(f["schema_version"], 1);
  EXPECT_EQ(f["status"], "failed");
  EXPECT_EQ(f["seed"], 3);
  EXPECT_EQ(f["protocol"], "final");
  EXPECT_EQ(f["error"], "boom");
  EXPECT_EQ(f["provenance"]["host"], "h");
  EXPECT_EQ(record_from_json(f, "failed_job_record").method, "m");  // reads back
  json c = sweep_cache_record({{"task", "t"}, {"taps", "cls"}, {"splits", {"test"}}, {"dtype", "float16"}}, false, "x",
                              to_json(prov));
  EXPECT_EQ(c["schema"], "petl.sweep_cache");  // `petl report` skips other schemas
  EXPECT_EQ(c["kind"], "cache");
  EXPECT_EQ(c["status"], "failed");
  EXPECT_FALSE(c.contains("method"));
}

// protocol val_select plans two stages per (method, task, seed): a search per grid point (the
// config's grid, else the method's default), a final run after all of them that chooses from their
// result files, and the ordinary best_of_10 run; a changed grid keeps the old searches' keys and
// gives the final a new one.
TEST_F(SweepConfigTest, ValSelectPlansSearchesThenAFinalAfterThem) {
  PlanOptions o = opts();
  o.default_grid = [](const std::string& m) -> std::map<std::string, std::vector<std::string>> {
    if (m == "lin") return {{"lr", {"1e-3", "1e-2"}}};
    return {};
  };
  auto p = plan(base_yaml("protocol: val_select\n"), o);
  std::vector<const SweepJob*> search, fin, ordinary;
  for (auto& j : p.jobs) {
    if (j.is_cache) continue;
    (j.stage == "search" ? search : j.stage == "final" ? fin : ordinary).push_back(&j);
  }
  EXPECT_EQ(search.size(), (2u + 1u) * 2 * 2);  // lin: 2 points, heavy: 1, × 2 tasks × 2 seeds
  EXPECT_EQ(fin.size(), 8u);
  EXPECT_EQ(ordinary.size(), 8u);
  for (const SweepJob* f : fin) {
    std::vector<std::string> mine, files;
    for (const SweepJob* s : search)
      if (s->method == f->method && s->task == f->task && s->seed == f->seed) {
        mine.push_back(s->key);
        files.push_back(s->result_file);
        EXPECT_EQ(s->run->stage, "search");
        EXPECT_EQ(s->run->protocol, Protocol::kValSelect);
      }
    EXPECT_EQ(f->after, mine) << "a final runs after exactly its own searches, in grid order";
    EXPECT_EQ(f->run->select_from, files);
    EXPECT_EQ(f->run->protocol, Protocol::kValSelect);
    EXPECT_TRUE(f->run->stage.empty());
    EXPECT_EQ(f->run->set.size(), 0u) << "the final's settings come from the choice, at run time";
  }
  for (const SweepJob* s : search)
    if (s->method == "lin") {
      auto cache =
          std::find_if(p.jobs.begin(), p.jobs.end(), [&](const SweepJob& c) { return c.key == s->depends_on; });
      ASSERT_NE(cache, p.jobs.end());
      EXPECT_EQ(cache->cache.splits, (std::vector<std::string>{"train800", "val200"}));
    }
  // The ordinary runs are the best_of_10 sweep's own jobs (same keys).
  auto plain = plan(base_yaml(), o);
  const std::set<std::string> plain_keys = keys(plain);
  for (const SweepJob* j : ordinary) EXPECT_TRUE(plain_keys.count(j->key)) << j->method << " " << j->task;
  // A changed grid: the old searches keep their keys, every lin final gets a new key.
  o.default_grid = [](const std::string& m) -> std::map<std::string, std::vector<std::string>> {
    if (m == "lin") return {{"lr", {"1e-3", "1e-2", "3e-2"}}};
    return {};
  };
  auto p2 = plan(base_yaml("protocol: val_select\n"), o);
  const std::set<std::string> k2 = keys(p2);
  for (const SweepJob* s : search) EXPECT_TRUE(k2.count(s->key));
  for (const SweepJob* f : fin) EXPECT_EQ(k2.count(f->key), f->method == "lin" ? 0u : 1u) << f->method;
  std::ostringstream os;
  print_plan(os, p, p.jobs, {});
  EXPECT_NE(os.str().find("val_select, two stages"), std::string::npos) << os.str();
  EXPECT_NE(os.str().find("after 2 searches"), std::string::npos) << os.str();
}

}  // namespace
}  // namespace petl

// Sweep config parsing (yaml-cpp) and expansion into keyed jobs; see sweep_config.h for the
// config keys, the key definition and the cost model.
#include "harness/sweep/sweep_config.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/hashing.h"
#include "core/text.h"
#include "datasets/fewshot.h"
#include "datasets/vtab.h"
#include "harness/sweep/sweep_journal.h"
#include "io/tensor_file.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
// The keys of a sweep config's top level (sweep_config.h documents each).
const std::vector<std::string> kConfigKeys = {"name",
                                              "out",
                                              "data_root",
                                              "backbone",
                                              "arch",
                                              "pos_resample",
                                              "protocol",
                                              "recipe",
                                              "methods",
                                              "tasks",
                                              "seeds",
                                              "benchmark",
                                              "shots",
                                              "split_seeds",
                                              "epochs",
                                              "batch_size",
                                              "grid",
                                              "method_overrides",
                                              "task_overrides",
                                              "method_task_overrides",
                                              "feature_cache",
                                              "cache_dtype",
                                              "precision",
                                              "threads_per_rank",
                                              "job_timeout_s",
                                              "retry_failed",
                                              "memory_budget",
                                              "bundle_jobs",
                                              "est_gflops_per_rank"};

// ------------------------------------------------------------------ YAML helpers

struct Ctx {
  std::string label;  // the file name
  std::string at(const YAML::Node& n) const {
    YAML::Mark m = n.Mark();
    return m.line >= 0 ? label + ":" + std::to_string(m.line + 1) : label;
  }
};

const char* type_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "an undefined node";
  }
}

// Every string of a config goes through here: its keys, names and values end up in JSON job keys,
// records and argv, so text that is not UTF-8 is refused here, with its line.
std::string scalar(const Ctx& c, const YAML::Node& n, const std::string& key, bool allow_null = false) {
  if (allow_null && n.IsNull()) return "";
  PETL_CHECK(n.IsScalar(), c.at(n), ": key '", key, "': expected a scalar value, got ", type_name(n));
  PETL_CHECK(is_valid_utf8(n.Scalar()), c.at(n), ": key '", is_valid_utf8(key) ? key : "?",
             "': the value is not valid UTF-8 text");
  return n.Scalar();
}

int as_int(const Ctx& c, const YAML::Node& n, const std::string& key) {
  std::string s = scalar(c, n, key);
  try {
    size_t pos = 0;
    long long v = std::stoll(s, &pos);
    if (pos == s.size() && v >= INT32_MIN && v <= INT32_MAX) return int(v);
  } catch (const std::exception&) {
  }
  PETL_FAIL(c.at(n), ": key '", key, "': expected an integer, got '", s, "'");
}

double as_double(const Ctx& c, const YAML::Node& n, const std::string& key) {
  std::string s = scalar(c, n, key);
  try {
    size_t pos = 0;
    double v = std::stod(s, &pos);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  PETL_FAIL(c.at(n), ": key '", key, "': expected a number, got '", s, "'");
}

bool as_bool(const Ctx& c, const YAML::Node& n, const std::string& key) {
  std::string s = scalar(c, n, key);
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  if (l == "true" || l == "yes" || l == "on") return true;
  if (l == "false" || l == "no" || l == "off") return false;
  PETL_FAIL(c.at(n), ": key '", key, "': expected true or false, got '", s, "'");
}

// A value of the closed set E (core/enums.h), its error naming file:line and key.
template <typename E>
E choice(const Ctx& c, const YAML::Node& n, const std::string& key) {
  return parse_enum<E>(scalar(c, n, key), c.at(n) + ": key '" + key + "':");
}

std::vector<std::string> string_list(const Ctx& c, const YAML::Node& n, const std::string& key) {
  PETL_CHECK(n.IsSequence(), c.at(n), ": key '", key, "': expected a list, got ", type_name(n));
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& e : n) {
    std::string v = scalar(c, e, key);
    PETL_CHECK(!v.empty(), c.at(e), ": key '", key, "': empty entry");
    PETL_CHECK(seen.insert(v).second, c.at(e), ": key '", key, "': '", v, "' is listed twice");
    out.push_back(v);
  }
  PETL_CHECK(!out.empty(), c.at(n), ": key '", key, "': the list is empty");
  return out;
}

// A non-empty list of distinct integers ≥ lo.
void cfg_int_list(const Ctx& c, const YAML::Node& v, const std::string& k, int lo, std::vector<int>& out) {
  PETL_CHECK(v.IsSequence() && v.size() > 0, c.at(v), ": key '", k, "': expected a non-empty list of integers");
  std::set<int> seen;
  for (const auto& e : v) {
    const int x = as_int(c, e, k);
    PETL_CHECK(x >= lo, c.at(e), ": key '", k, "': ", x, " is below ", lo);
    PETL_CHECK(seen.insert(x).second, c.at(e), ": key '", k, "': ", x, " is listed twice");
    out.push_back(x);
  }
}

void check_set_key(const Ctx& c, const YAML::Node& n, const std::string& where, const std::string& k) {
  PETL_CHECK(!k.empty() && k.find('=') == std::string::npos && k.find_first_of(" \t\n") == std::string::npos, c.at(n),
             ": ", where, ": '", k, "' is not a valid setting name");
}

std::map<std::string, std::string> set_map(const Ctx& c, const YAML::Node& n, const std::string& where) {
  PETL_CHECK(n.IsMap(), c.at(n), ": ", where, ": expected a map key → value, got ", type_name(n));
  std::map<std::string, std::string> out;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string k = scalar(c, it->first, where);
    check_set_key(c, it->first, where, k);
    PETL_CHECK(!out.count(k), c.at(it->first), ": ", where, ": key '", k, "' given twice");
    out[k] = scalar(c, it->second, where + "." + k);
  }
  return out;
}

std::map<std::string, std::vector<std::string>> grid_map(const Ctx& c, const YAML::Node& n, const std::string& where) {
  PETL_CHECK(n.IsMap(), c.at(n), ": ", where, ": expected a map key → list of values, got ", type_name(n));
  std::map<std::string, std::vector<std::string>> out;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string k = scalar(c, it->first, where);
    check_set_key(c, it->first, where, k);
    PETL_CHECK(!out.count(k), c.at(it->first), ": ", where, ": key '", k, "' given twice");
    out[k] = string_list(c, it->second, where + "." + k);
  }
  return out;
}

SweepOverride override_entry(const Ctx& c, const YAML::Node& n, const std::string& where, bool allow_grid) {
  PETL_CHECK(n.IsMap(), c.at(n), ": ", where, ": expected a map with ", allow_grid ? "'set' and/or 'grid'" : "'set'",
             ", got ", type_name(n));
  SweepOverride o;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string k = scalar(c, it->first, where);
    if (k == "set")
      o.set = set_map(c, it->second, where + ".set");
    else if (k == "grid" && allow_grid)
      o.grid = grid_map(c, it->second, where + ".grid");
    else
      PETL_FAIL(c.at(it->first), ": unknown key '", where, ".", k, "'",
                did_you_mean(k, allow_grid ? std::vector<std::string>{"set", "grid"} : std::vector<std::string>{"set"}),
                " (expected ", allow_grid ? "set or grid" : "set", ")");
  }
  return o;
}

std::map<std::string, SweepOverride> override_map(const Ctx& c, const YAML::Node& n, const std::string& key,
                                                  bool allow_grid) {
  PETL_CHECK(n.IsMap(), c.at(n), ": key '", key, "': expected a map, got ", type_name(n));
  std::map<std::string, SweepOverride> out;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string name = scalar(c, it->first, key);
    PETL_CHECK(!out.count(name), c.at(it->first), ": ", key, ": '", name, "' given twice");
    out[name] = override_entry(c, it->second, key + "." + name, allow_grid);
  }
  return out;
}

// ------------------------------------------------------------------ planning helpers

std::string abs_path(const std::string& p) {
  return p.empty() ? std::string() : fs::absolute(fs::path(p)).lexically_normal().string();
}

// Cartesian product of a grid (keys sorted, values in listed order, last key fastest).

}  // namespace

int64_t feature_bytes_per_image(const CacheTaps& taps, const BackboneDims& d, int dtype_bytes) {
  int64_t values = 0;
  if (taps.cls) values += d.width;
  if (taps.kv) values += int64_t(2) * d.depth * d.tokens * d.width;
  return values * dtype_bytes;
}

// ------------------------------------------------------------------ config

SweepConfig parse_sweep_config(const std::string& yaml_text, const std::string& label) {
  Ctx c{label};
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    PETL_FAIL(label, ":", e.mark.line + 1, ": invalid YAML: ", e.msg);
  }
  PETL_CHECK(root.IsMap(), label, ": a sweep config must be a map of keys (name, out, data_root, methods, ...), got ",
             type_name(root));
  SweepConfig cfg;
  cfg.file = label;
  std::set<std::string> seen;
  try {
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string k = scalar(c, it->first, "(top level)");
      const YAML::Node v = it->second;
      PETL_CHECK(seen.insert(k).second, c.at(it->first), ": key '", k, "' given twice");
      if (k == "name")
        cfg.name = scalar(c, v, k);
      else if (k == "out")
        cfg.out = scalar(c, v, k, true);
      else if (k == "data_root")
        cfg.data_root = scalar(c, v, k);
      else if (k == "backbone")
        cfg.backbone = scalar(c, v, k, true);
      else if (k == "arch")
        cfg.arch = scalar(c, v, k, true);
      else if (k == "pos_resample")
        cfg.pos_resample = choice<PosResample>(c, v, k);
      else if (k == "protocol")
        cfg.protocol = choice<Protocol>(c, v, k);
      else if (k == "recipe")
        cfg.recipe = scalar(c, v, k, true);
      else if (k == "methods")
        cfg.methods = string_list(c, v, k);
      else if (k == "tasks")
        cfg.tasks = string_list(c, v, k);
      else if (k == "seeds") {
        PETL_CHECK(v.IsSequence() && v.size() > 0, c.at(v), ": key 'seeds': expected a non-empty list of integers");
        std::set<int> s;
        for (const auto& e : v) {
          int seed = as_int(c, e, "seeds");
          PETL_CHECK(seed >= 0, c.at(e), ": key 'seeds': seed ", seed, " is negative");
          PETL_CHECK(s.insert(seed).second, c.at(e), ": key 'seeds': seed ", seed, " is listed twice");
          cfg.seeds.push_back(seed);
        }
      } else if (k == "benchmark")
        cfg.benchmark = choice<Benchmark>(c, v, k);
      else if (k == "shots" || k == "split_seeds") {
        cfg_int_list(c, v, k, k == "shots" ? 1 : 0, k == "shots" ? cfg.shots : cfg.split_seeds);
      } else if (k == "epochs" || k == "batch_size") {
        int n = as_int(c, v, k);
        PETL_CHECK(n > 0, c.at(v), ": key '", k, "': expected a positive integer, got ", n);
        (k == "epochs" ? cfg.epochs : cfg.batch_size) = n;
      } else if (k == "grid")
        cfg.grid = grid_map(c, v, "grid");
      else if (k == "method_overrides")
        cfg.method_overrides = override_map(c, v, k, true);
      else if (k == "task_overrides")
        cfg.task_overrides = override_map(c, v, k, false);
      else if (k == "method_task_overrides")
        cfg.method_task_overrides = override_map(c, v, k, false);
      else if (k == "feature_cache")
        cfg.feature_cache = as_bool(c, v, k);
      else if (k == "cache_dtype") {
        cfg.cache_dtype = choice<CacheDtype>(c, v, k);
        cfg.cache_dtype_set = true;
      } else if (k == "est_gflops_per_rank") {
        cfg.est_gflops_per_rank = as_double(c, v, k);
        PETL_CHECK(cfg.est_gflops_per_rank > 0, c.at(v), ": key 'est_gflops_per_rank': expected a number > 0");
      } else if (k == "precision")
        cfg.precision = choice<Precision>(c, v, k);
      else if (k == "threads_per_rank") {
        cfg.threads_per_rank = as_int(c, v, k);
        PETL_CHECK(cfg.threads_per_rank >= 0, c.at(v), ": key 'threads_per_rank': expected ≥ 0 (0 = auto)");
      } else if (k == "job_timeout_s") {
        cfg.job_timeout_s = as_double(c, v, k);
        PETL_CHECK(cfg.job_timeout_s >= 0, c.at(v), ": key 'job_timeout_s': expected ≥ 0 (0 = no limit)");
      } else if (k == "retry_failed")
        cfg.retry_failed = as_bool(c, v, k);
      else if (k == "bundle_jobs") {
        cfg.bundle_jobs = as_int(c, v, k);
        PETL_CHECK(cfg.bundle_jobs >= 1, c.at(v), ": key 'bundle_jobs': expected an integer ≥ 1 (1 = no bundles)");
      } else if (k == "memory_budget") {
        const std::string text = scalar(c, v, k);
        try {
          cfg.memory_budget = parse_size(text, "memory_budget");
        } catch (const Error& e) {
          PETL_FAIL(c.at(v), ": key 'memory_budget': ", e.what());
        }
        PETL_CHECK(cfg.memory_budget > 0, c.at(v), ": key 'memory_budget': expected a size > 0 (e.g. 4G)");
      } else
        PETL_FAIL(c.at(it->first), ": unknown key '", k, "'", did_you_mean(k, kConfigKeys),
                  " (expected one of: ", join(kConfigKeys, ", "), ")");
    }
  } catch (const YAML::Exception& e) {
    PETL_FAIL(label, ":", e.mark.line + 1, ": ", e.msg);
  }
  if (cfg.name.empty()) cfg.name = fs::path(label).stem().string();
  PETL_CHECK(!cfg.data_root.empty(), label, ": missing key 'data_root'");
  PETL_CHECK(!cfg.methods.empty(), label, ": missing key 'methods' (a list of method names)");
  PETL_CHECK(!cfg.tasks.empty(), label, ": missing key 'tasks' (a list of task names)");
  PETL_CHECK(!cfg.seeds.empty(), label, ": missing key 'seeds' (a list of integers)");
  if (cfg.benchmark == Benchmark::kFewshot) {
    PETL_CHECK(!cfg.shots.empty(), label, ": benchmark fewshot needs key 'shots' (e.g. [1, 2, 4, 8, 16])");
    PETL_CHECK(!cfg.split_seeds.empty(), label, ": benchmark fewshot needs key 'split_seeds' (e.g. [0, 1, 2])");
  } else {
    PETL_CHECK(cfg.shots.empty() && cfg.split_seeds.empty(), label,
               ": keys 'shots' and 'split_seeds' belong to 'benchmark: fewshot' (this sweep is VTAB-1k's)");
  }
  const std::set<std::string> methods(cfg.methods.begin(), cfg.methods.end());
  const std::set<std::string> tasks(cfg.tasks.begin(), cfg.tasks.end());
  for (auto& [m, o] : cfg.method_overrides)
    PETL_CHECK(methods.count(m), label, ": method_overrides: '", m, "' is not in methods (", join(cfg.methods, ", "),
               ")");
  for (auto& [t, o] : cfg.task_overrides)
    PETL_CHECK(tasks.count(t), label, ": task_overrides: '", t, "' is not in tasks (", join(cfg.tasks, ", "), ")");
  for (auto& [mt, o] : cfg.method_task_overrides) {
    auto slash = mt.find('/');
    PETL_CHECK(slash != std::string::npos && methods.count(mt.substr(0, slash)) && tasks.count(mt.substr(slash + 1)),
               label, ": method_task_overrides: '", mt, "' is not \"method/task\" with a listed method and task");
  }
  return cfg;
}

SweepConfig load_sweep_config(const std::string& file) {
  std::ifstream is(file);
  PETL_CHECK(is, "cannot read sweep config '", file, "'");
  std::stringstream ss;
  ss << is.rdbuf();
  return parse_sweep_config(ss.str(), file);
}

// ------------------------------------------------------------------ plan

namespace {
// The jobs that train on one feature cache, in plan order, split into ceil(n / max_jobs) bundles
// of near-equal size; a job alone on its cache is not bundled.
void assign_bundles(std::vector<SweepJob>& trains, int max_jobs) {
  if (max_jobs <= 1) return;
  std::map<std::string, std::vector<size_t>> by_cache;
  for (size_t i = 0; i < trains.size(); ++i)
    if (!trains[i].depends_on.empty()) by_cache[trains[i].depends_on].push_back(i);
  for (auto& [cache, idx] : by_cache) {
    if (idx.size() < 2) continue;
    const size_t n = idx.size(), parts = (n + size_t(max_jobs) - 1) / size_t(max_jobs);
    for (size_t p = 0; p < n; ++p) trains[idx[p]].bundle = cache + "-" + std::to_string(p * parts / n);
  }
}
}  // namespace

namespace {

// What every job of a plan shares: the resolved paths, the backbone's identity and dimensions.
struct PlanContext {
  const SweepConfig& cfg;
  const PlanOptions& opts;
  std::string out, data_root, backbone, backbone_sha;
  BackboneDims dims;
  // The samples of a task's split, read through datasets/ (txt or json lists, folder aliases);
  // `fallback` when the task or the list cannot be read (the job itself then fails, recorded).
  int64_t samples(const std::string& task, const std::string& split, int64_t fallback = 1000) const {
    auto it = tasks_.find(task);
    if (it == tasks_.end()) {
      std::optional<data::TaskInfo> info;
      try {
        info = cfg.benchmark == Benchmark::kFewshot ? data::find_fewshot_dataset(data_root, task)
                                                    : data::find_task(data_root, task);
      } catch (const Error&) {
      }
      it = tasks_.emplace(task, info).first;
    }
    if (!it->second) return fallback;
    try {
      const int64_t n = data::count_samples(*it->second, split);
      return n > 0 ? n : fallback;
    } catch (const Error&) {
      return fallback;
    }
  }

  // The backbone's forward FLOPs per image (the cost model in sweep_config.h); ViT-B/16's when
  // the dimensions are unknown.
  double flops_per_image() const {
    if (dims.depth <= 0 || dims.tokens <= 0 || dims.width <= 0) return 34.9e9;
    const double n = dims.tokens, d = dims.width;
    return dims.depth * (24.0 * n * d * d + 4.0 * n * n * d);
  }
  double seconds(double flops) const { return flops / (cfg.est_gflops_per_rank * 1e9); }

  mutable std::map<std::string, std::optional<data::TaskInfo>> tasks_ = {};  // found once per task
};

// A few-shot training job's train list (shots 0: a VTAB-1k job).
struct FewshotList {
  int shots = 0, split_seed = -1;
};
// The train lists every (method, task, seed) runs on: one VTAB-1k job, or shots × split_seeds.
std::vector<FewshotList> train_lists(const SweepConfig& cfg) {
  if (cfg.benchmark != Benchmark::kFewshot) return {FewshotList{}};
  std::vector<FewshotList> out;
  for (int k : cfg.shots)
    for (int s : cfg.split_seeds) out.push_back({k, s});
  return out;
}

// What kind of training job: its few-shot list, its protocol and val_select stage, and for a final
// job the search jobs it chooses from (in grid order).
struct JobShape {
  FewshotList fs;
  Protocol protocol = Protocol::kBestOf10;
  std::string stage;
  std::vector<std::pair<std::string, std::string>> searches;  // (key, result file)
};

// The identity of one task's feature cache (cn: splits sorted and unique); its key names the cache.
json cache_canonical(const PlanContext& c, const std::string& t, const CacheNeed& cn) {
  const SweepConfig& cfg = c.cfg;
  json ccanon = {{"v", 1},
                 {"kind", "cache"},
                 {"backbone", c.backbone},
                 {"backbone_sha256", c.backbone_sha},
                 {"arch", cfg.arch},
                 {"data_root", c.data_root},
                 {"task", t},
                 {"splits", cn.splits},
                 {"taps", cn.taps.str()},
                 {"dtype", to_string(cfg.cache_dtype)},
                 {"normalisation", cn.normalisation}};
  if (cfg.precision != Precision::kFp32) ccanon["precision"] = to_string(cfg.precision);  // fp32 keys as before
  if (cfg.pos_resample != PosResample::kTimm) ccanon["pos_resample"] = to_string(cfg.pos_resample);
  if (cfg.benchmark != Benchmark::kVtab) ccanon["benchmark"] = to_string(cfg.benchmark);
  return ccanon;
}

// The job that builds that cache.
SweepJob cache_job(const PlanContext& c, const std::string& t, const CacheNeed& cn, const json& ccanon) {
  const SweepConfig& cfg = c.cfg;
  SweepJob cj;
  cj.key = key_of_text(ccanon.dump());
  cj.is_cache = true;
  cj.task = t;
  cj.cache = cn;
  cj.cache_dtype = cfg.cache_dtype;
  cj.canonical = ccanon.dump();
  cj.out_dir = (fs::path(c.out) / "cache" / cj.key).string();
  cj.log_file = (fs::path(c.out) / "logs" / (cj.key + ".log")).string();
  CacheBuildSpec b;
  b.data_root = c.data_root;
  b.task = t;
  b.benchmark = cfg.benchmark;
  b.backbone_file = c.backbone;
  b.arch = cfg.arch;
  b.pos_resample = cfg.pos_resample;
  b.taps = cn.taps;
  b.splits = cn.splits;
  b.dtype = cfg.cache_dtype;
  if (!cn.normalisation.empty()) b.normalisation = cn.normalisation;
  b.precision = cfg.precision;
  b.out_dir = cj.out_dir;
  b.progress = false;
  cj.build = b;  // threads: the rank's, through OMP_NUM_THREADS (harness/sweep/farm.h)
  double images = 0;
  for (auto& s : cn.splits) images += double(c.samples(t, s));
  cj.cost = c.seconds(images * c.flops_per_image());
  cj.disk_bytes = int64_t(images) * feature_bytes_per_image(cn.taps, c.dims, bytes_per_value(cfg.cache_dtype));
  return cj;
}

// The training job of one (method, task, seed, settings); `cache` is its feature cache's job
// (nullptr: none), `need` the method's cache need (none: a heavy method).
SweepJob train_job(const PlanContext& c, const std::string& m, const std::string& t, int seed, const JobShape& shape,
                   const std::map<std::string, std::string>& sets, const std::optional<CacheNeed>& need,
                   const SweepJob* cache, const JobProfile& profile) {
  const SweepConfig& cfg = c.cfg;
  const FewshotList& fs = shape.fs;
  const std::string cache_key = cache ? cache->key : std::string();
  json canon = {{"v", 1},
                {"kind", "train"},
                {"method", m},
                {"task", t},
                {"seed", seed},
                {"sets", sets},
                {"recipe", cfg.recipe},
                {"epochs", cfg.epochs},
                {"batch_size", cfg.batch_size},
                {"protocol", to_string(shape.protocol)},
                {"data_root", c.data_root},
                {"backbone", c.backbone},
                {"backbone_sha256", c.backbone_sha},
                {"arch", cfg.arch},
                {"feature_cache", cache_key}};
  std::vector<std::string> search_keys, search_files;
  for (const auto& [key, file] : shape.searches) {
    search_keys.push_back(key);
    search_files.push_back(file);
  }
  if (!shape.stage.empty()) canon["stage"] = shape.stage;
  if (!search_keys.empty()) canon["searches"] = search_keys;  // new searches: a new final job
  if (cfg.memory_budget > 0) canon["memory_budget"] = cfg.memory_budget;
  if (cfg.precision != Precision::kFp32) canon["precision"] = to_string(cfg.precision);
  if (cfg.pos_resample != PosResample::kTimm) canon["pos_resample"] = to_string(cfg.pos_resample);
  if (fs.shots > 0) canon["fewshot"] = {{"shots", fs.shots}, {"split_seed", fs.split_seed}};
  SweepJob j;
  j.key = key_of_text(canon.dump());
  j.method = m;
  j.task = t;
  j.seed = seed;
  j.shots = fs.shots;
  j.split_seed = fs.split_seed;
  j.sets = sets;
  j.depends_on = cache_key;
  j.stage = shape.stage;
  j.after = search_keys;
  j.canonical = canon.dump();
  j.out_dir = (fs::path(c.out) / "jobs" / j.key).string();
  j.result_file = (fs::path(j.out_dir) / "results.jsonl").string();
  j.log_file = (fs::path(c.out) / "logs" / (j.key + ".log")).string();
  JobSpec r;
  r.method = m;
  r.task = t;
  if (fs.shots > 0) {
    r.benchmark = Benchmark::kFewshot;
    r.shots = fs.shots;
    r.split_seed = fs.split_seed;
  }
  r.data_root = c.data_root;
  r.backbone_file = c.backbone;
  r.arch = cfg.arch;
  r.pos_resample = cfg.pos_resample;
  r.recipe = cfg.recipe;
  if (cfg.epochs > 0) r.epochs = cfg.epochs;
  if (cfg.batch_size > 0) r.batch_size = cfg.batch_size;
  r.seed = seed;
  r.protocol = shape.protocol;
  if (shape.stage == "search") r.stage = "search";
  r.select_from = search_files;
  for (auto& [k, v] : sets) r.set.push_back(k + "=" + v);
  r.out_dir = j.out_dir;
  r.reuse_done = true;
  r.progress = false;
  if (c.opts.state_every_min) r.state_every_min = *c.opts.state_every_min;
  r.memory_budget = cfg.memory_budget;
  r.precision = cfg.precision;
  if (cache) {
    r.feature_cache = cache->out_dir;
    r.cache_dtype = cfg.cache_dtype;
  }
  j.run = r;  // threads: the rank's, through OMP_NUM_THREADS (harness/sweep/farm.h)
  // Cost (sweep_config.h): training passes, then test passes.
  const double epochs = cfg.epochs > 0 ? cfg.epochs : std::max(1, profile.epochs);
  const double evals = std::max(1, profile.evals);
  const bool cls_only = cache && !cache->cache.taps.kv;
  const double f = profile.backbone_grad ? 3.0 : !cache ? 1.1 : cls_only ? 0.001 : 0.06;
  const double e = !cache ? 1.0 : cls_only ? 0.0 : 1.0 / evals;
  const double F = c.flops_per_image();
  const bool search = shape.stage == "search";
  const std::string train_split = fs.shots > 0 ? data::fewshot_train_split(fs.shots, fs.split_seed)
                                  : search     ? "train800"
                                               : "train800val200";
  j.cost = c.seconds(double(c.samples(t, train_split)) * epochs * F * f +
                     evals * double(c.samples(t, search ? "val200" : "test")) * F * e);
  if (!cache) j.cache_note = need && !cfg.feature_cache ? "feature_cache: false in the config" : profile.no_cache_why;
  if (cache)  // the train split's features, resident in their stored dtype
    j.ram_bytes = c.samples(t, fs.shots > 0 ? train_split : need->splits.front()) *
                  feature_bytes_per_image(need->taps, c.dims, bytes_per_value(cfg.cache_dtype));
  return j;
}

// The settings of one grid point of method m on task t, overrides applied (method, task,
// method/task, in that order).
std::map<std::string, std::string> point_settings(const SweepConfig& cfg, const SweepOverride* mo, const std::string& m,
                                                  const std::string& t, const std::map<std::string, std::string>& pt) {
  std::map<std::string, std::string> sets = pt;
  if (mo)
    for (auto& [k, v] : mo->set) sets[k] = v;
  if (auto it = cfg.task_overrides.find(t); it != cfg.task_overrides.end())
    for (auto& [k, v] : it->second.set) sets[k] = v;
  if (auto it = cfg.method_task_overrides.find(m + "/" + t); it != cfg.method_task_overrides.end())
    for (auto& [k, v] : it->second.set) sets[k] = v;
  return sets;
}

PlanContext plan_context(const SweepConfig& cfg, const PlanOptions& opts, const std::string& out) {
  PlanContext c{cfg, opts, out, abs_path(cfg.data_root), abs_path(cfg.backbone), "", {}};
  PETL_CHECK(fs::is_directory(c.data_root), cfg.file, ": key 'data_root': directory '", cfg.data_root,
             "' does not exist");
  if (!c.backbone.empty()) {
    PETL_CHECK(fs::is_regular_file(c.backbone), cfg.file, ": key 'backbone': file '", cfg.backbone, "' does not exist");
    c.backbone_sha = sha256_file(c.backbone);
  } else if (!opts.embedded_backbone.empty() && fs::is_regular_file(opts.embedded_backbone)) {
    c.backbone_sha = sha256_file(opts.embedded_backbone);
  }
  if (opts.backbone_dims) c.dims = opts.backbone_dims(c.backbone, cfg.arch);
  return c;
}

}  // namespace

SweepPlan plan_sweep(const SweepConfig& cfg, const PlanOptions& opts) {
  SweepPlan plan;
  plan.config = cfg;
  const std::string out_in = opts.out.empty() ? cfg.out : opts.out;
  PETL_CHECK(!out_in.empty(), cfg.file, ": no output directory: set key 'out' or pass --out");
  plan.out = abs_path(out_in);
  plan.journal = (fs::path(plan.out) / "results.jsonl").string();
  const PlanContext ctx = plan_context(cfg, opts, plan.out);

  std::vector<SweepJob> caches, trains;
  std::map<std::string, size_t> cache_index;
  std::map<std::string, size_t> train_index;  // key → index in trains
  // One training job (and the cache it trains on); identical jobs after overrides are planned once.
  auto add = [&](const std::string& m, const std::string& t, int seed, const JobShape& shape,
                 const std::map<std::string, std::string>& sets) -> const SweepJob& {
    std::optional<CacheNeed> need;
    // The recipe decides splits, normalisation and stochastic depth.
    if (opts.cache_need) need = opts.cache_need(m, t, cfg.recipe, sets, cfg.benchmark);
    if (need && shape.stage == "search")  // a search reads train800 and val200 (one cache for every point)
      for (auto& split : need->splits)
        split = split == "train800val200" ? "train800" : split == "test" ? "val200" : split;
    const SweepJob* cache = nullptr;
    if (need && cfg.feature_cache) {
      CacheNeed cn = *need;
      PETL_CHECK(cn.taps.any() && !cn.splits.empty(), "method ", m,
                 ": its feature-cache need has no taps or no splits (internal: the method's declaration)");
      std::sort(cn.splits.begin(), cn.splits.end());
      cn.splits.erase(std::unique(cn.splits.begin(), cn.splits.end()), cn.splits.end());
      const json ccanon = cache_canonical(ctx, t, cn);
      const std::string key = key_of_text(ccanon.dump());
      if (!cache_index.count(key)) {
        cache_index[key] = caches.size();
        caches.push_back(cache_job(ctx, t, cn, ccanon));
      }
      cache = &caches[cache_index.at(key)];
    }
    JobProfile profile{100, 10, !need, ""};
    if (opts.job_profile) profile = opts.job_profile(m, t, cfg.recipe, shape.protocol, sets, cfg.benchmark);
    SweepJob j = train_job(ctx, m, t, seed, shape, sets, need, cache, profile);
    auto [it, fresh] = train_index.emplace(j.key, trains.size());
    if (fresh) trains.push_back(std::move(j));
    return trains[it->second];
  };
  for (const auto& m : cfg.methods) {
    auto grid = cfg.grid;
    const SweepOverride* mo = cfg.method_overrides.count(m) ? &cfg.method_overrides.at(m) : nullptr;
    if (mo)
      for (auto& [k, v] : mo->grid) grid[k] = v;
    const bool val_select = cfg.protocol == Protocol::kValSelect;
    if (val_select && grid.empty() && opts.default_grid) grid = opts.default_grid(m);  // the method's own
    if (mo)
      for (auto& [k, v] : mo->set) grid.erase(k);
    const auto points = grid_points(grid);
    for (const auto& t : cfg.tasks)
      for (int seed : cfg.seeds) {
        if (!val_select) {
          for (const auto& pt : points)
            for (const auto& fs : train_lists(cfg))
              add(m, t, seed, {fs, cfg.protocol, "", {}}, point_settings(cfg, mo, m, t, pt));
          continue;
        }
        // val_select: the searches, the final run after them, and the ordinary run beside them.
        JobShape final_shape{{}, Protocol::kValSelect, "final", {}};
        for (const auto& pt : points) {
          const SweepJob& sj =
              add(m, t, seed, {{}, Protocol::kValSelect, "search", {}}, point_settings(cfg, mo, m, t, pt));
          final_shape.searches.emplace_back(sj.key, sj.result_file);
        }
        add(m, t, seed, final_shape, point_settings(cfg, mo, m, t, {}));
        add(m, t, seed, {{}, Protocol::kBestOf10, "", {}}, point_settings(cfg, mo, m, t, {}));
      }
  }
  assign_bundles(trains, cfg.bundle_jobs);
  std::map<std::string, std::set<std::string>> served;  // cache key → the methods training on it
  for (const auto& j : trains)
    if (!j.depends_on.empty()) served[j.depends_on].insert(j.method);
  for (auto& cj : caches)
    cj.cache_note = join(std::vector<std::string>(served[cj.key].begin(), served[cj.key].end()), ", ");
  plan.jobs = std::move(caches);
  for (auto& j : trains) plan.jobs.push_back(std::move(j));
  return plan;
}

// ------------------------------------------------------------------ shards

Shard parse_shard(const std::string& text) {
  Shard s;
  auto slash = text.find('/');
  bool ok = slash != std::string::npos && slash > 0 && slash + 1 < text.size();
  if (ok) {
    try {
      size_t p1 = 0, p2 = 0;
      s.index = std::stoi(text.substr(0, slash), &p1);
      s.count = std::stoi(text.substr(slash + 1), &p2);
      ok = p1 == slash && p2 == text.size() - slash - 1 && s.count >= 1 && s.index >= 0 && s.index < s.count;
    } catch (const std::exception&) {
      ok = false;
    }
  }
  PETL_CHECK(ok, "--shard '", text, "': expected I/N with 0 <= I < N (e.g. 0/4, or $SLURM_ARRAY_TASK_ID/$N)");
  return s;
}

std::vector<SweepJob> shard_jobs(const std::vector<SweepJob>& jobs, const Shard& shard) {
  if (shard.count <= 1) return jobs;
  std::set<std::string> keep, caches_needed;
  for (const auto& j : jobs) {
    if (j.is_cache) continue;
    const std::string& sk = j.depends_on.empty() ? j.key : j.depends_on;
    uint64_t h = std::stoull(sk.substr(0, kKeyHexDigits), nullptr, 16);
    if (h % uint64_t(shard.count) == uint64_t(shard.index)) {
      keep.insert(j.key);
      if (!j.depends_on.empty()) caches_needed.insert(j.depends_on);
    }
  }
  std::vector<SweepJob> out;
  for (const auto& j : jobs)
    if (keep.count(j.key) || (j.is_cache && caches_needed.count(j.key))) out.push_back(j);
  return out;
}

}  // namespace petl

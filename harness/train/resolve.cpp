// Job resolution (see job.h): the effective recipe, the task, threads and device, the backbone,
// the method and the job key — each worked out here and nowhere else.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>

#include "core/error.h"
#include "core/hashing.h"
#include "core/system.h"
#include "core/text.h"
#include "datasets/fewshot.h"
#include "harness/train/job.h"
#include "harness/train/memory_meter.h"
#include "harness/train/precision.h"
#include "harness/train/selection.h"
#include "models/arch_registry.h"
#include "models/checkpoint.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

EffectiveRecipe resolve_recipe(const std::string& method, const std::string& recipe_name, const std::string& task,
                               const std::vector<std::string>& sets, int epochs, int batch_size, int seed) {
  const auto& info = MethodRegistry::instance().get(method);
  EffectiveRecipe e;
  e.requested = Settings::parse(sets);
  e.settings = Settings(e.requested.items());
  e.recipe = load_recipe(recipe_name.empty() ? info.default_recipe : recipe_name, "", method);
  // Per-task recipe values of the method's reference configs, below the user's --set overrides.
  if (info.task_recipe && !task.empty()) {
    for (auto& [k, v] : info.task_recipe(task))
      if (!e.requested.has(k)) e.task_overrides[k] = v;
    Settings ts(e.task_overrides);
    apply_overrides(e.recipe, ts);
    for (auto& k : ts.unused())
      PETL_FAIL("per-task config of ", method, " for ", task, ": '", k, "' is not a recipe key");
  }
  e.recipe_epochs = e.recipe.epochs;
  auto flag = [&](int v, const char* name, const char* key, int lo) {
    if (v == JobSpec::kRecipeValue) return;
    PETL_CHECK(v >= lo, "--", name, " ", v, ": expected an integer >= ", lo);
    e.settings.set(key, std::to_string(v));
  };
  flag(epochs, "epochs", "epochs", 1);
  flag(batch_size, "batch-size", "batch_size", 1);
  flag(seed, "seed", "seed", 0);
  // Shortening or lengthening a recipe keeps its warmup (and cooldown) proportion unless given.
  if (e.settings.has("epochs")) {
    const Recipe& r = e.recipe;
    int n = e.settings.get_int("epochs", r.epochs);
    PETL_CHECK(n > 0, "epochs must be positive, got ", n);
    auto scaled = [&](int v) { return std::to_string(int(std::lround(double(v) * n / r.epochs))); };
    if (!e.settings.has("warmup_epochs")) e.settings.set("warmup_epochs", scaled(r.warmup_epochs));
    if (!e.settings.has("cooldown_epochs") && r.cooldown_epochs > 0)
      e.settings.set("cooldown_epochs", scaled(r.cooldown_epochs));
  }
  apply_overrides(e.recipe, e.settings);
  return e;
}

namespace {
// --stage and --select-from belong to protocol val_select, which is VTAB-1k's (train800, val200).
void check_protocol_args(const JobSpec& spec) {
  if (spec.protocol != Protocol::kValSelect) {
    PETL_CHECK(spec.stage.empty() && spec.select_from.empty(),
               "--stage and --select-from belong to --protocol val_select (this job's protocol is ",
               to_string(spec.protocol), ")");
    return;
  }
  PETL_CHECK(spec.stage.empty() || spec.stage == "search", "--stage '", spec.stage,
             "': expected search (a final run is the one given --select-from)");
  PETL_CHECK(spec.stage.empty() || spec.select_from.empty(), "--stage search and --select-from exclude each other");
  PETL_CHECK(spec.benchmark == Benchmark::kVtab,
             "--protocol val_select searches on VTAB-1k's train800 -> val200 lists; --benchmark fewshot has none");
}

// --benchmark fewshot needs --shots and --split-seed; VTAB-1k takes neither.
void check_benchmark_args(const JobSpec& spec) {
  if (spec.benchmark == Benchmark::kFewshot) {
    PETL_CHECK(spec.shots >= 1,
               "--benchmark fewshot needs --shots K (images per class of the train list: 1, 2, 4, 8 "
               "or 16 in NOAH's lists), got ",
               spec.shots);
    PETL_CHECK(spec.split_seed >= 0,
               "--benchmark fewshot needs --split-seed S (which of the dataset's K-shot lists: "
               "0, 1 or 2 in NOAH's), got ",
               spec.split_seed);
  } else {
    PETL_CHECK(spec.shots == 0 && spec.split_seed < 0,
               "--shots and --split-seed belong to --benchmark fewshot (this job is VTAB-1k's)");
  }
}

// The registry name of a backbone file's architecture (inferred as petl loads it: metadata, a layout's
// marker, shapes); "" for a file that is not there (loading reports it). Read once per path.
std::string file_arch(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::string> known;  // path → arch, read once per process
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(path);
  if (it != known.end()) return it->second;
  std::string arch;
  if (fs::exists(path)) arch = infer_vit_config(path).arch;  // a missing file is reported when it is loaded
  return known[path] = arch;
}
}  // namespace

ResolvedJob resolve_job(const JobSpec& spec_in) {
  check_protocol_args(spec_in);
  // val_select's final run: the point and epoch count the searches' val200 evaluations choose.
  std::optional<Selection> selection;
  if (spec_in.protocol == Protocol::kValSelect && !spec_in.select_from.empty()) selection = select_on_val(spec_in);
  const JobSpec spec = selection ? final_run_spec(spec_in, *selection) : spec_in;
  PETL_CHECK(spec.threads >= 0, "--threads ", spec.threads, ": expected an integer >= 0 (0 = the cores available)");
  PETL_CHECK(spec.dp >= 1, "--dp ", spec.dp, ": expected an integer >= 1");
  set_precision(spec.precision);  // this process's forward passes
  ResolvedJob j;
  j.spec = spec;
  j.info = &MethodRegistry::instance().get(spec.method);
  const bool fewshot = spec.benchmark == Benchmark::kFewshot;
  check_benchmark_args(spec);
  if (!spec.data_root.empty()) {
    j.task =
        fewshot ? data::find_fewshot_dataset(spec.data_root, spec.task) : data::find_task(spec.data_root, spec.task);
  } else {
    j.task.name = fewshot ? data::canonical_fewshot_name(spec.task) : spec.task;
  }
  // No --recipe: the method's reference recipe, or on the embedded backbone (no --backbone, no
  // --arch) the recipe made for it, `mini` (10 epochs, lr per method): a reference recipe's 50-100
  // epochs and its per-task values are the papers' ViT-B/16 settings, not a 6-block 32-px model's.
  // A few-shot job's default is the few-shot recipe of that recipe, "<recipe>_fewshot"
  // (config/recipes.yaml), and VTAB-1k's per-task values do not apply to it.
  std::string recipe = !spec.recipe.empty()                              ? spec.recipe
                       : spec.backbone_file.empty() && spec.arch.empty() ? "mini"
                                                                         : "";
  if (fewshot && spec.recipe.empty()) recipe = (recipe.empty() ? j.info->default_recipe : recipe) + "_fewshot";
  j.eff = resolve_recipe(spec.method, recipe, fewshot ? "" : j.task.name, spec.set, spec.epochs, spec.batch_size,
                         spec.seed);
  if (selection) j.selection = selection->to_json();
  if (spec.stage == "search") {  // a val_select grid point: train800, evaluated on val200
    if (!j.eff.requested.has("train_split")) j.eff.recipe.train_split = "train800";
    if (!j.eff.requested.has("test_split")) j.eff.recipe.test_split = "val200";
  }
  if (fewshot) {  // the K-shot list of the split seed, tested on the dataset's test list
    if (!j.eff.requested.has("train_split"))
      j.eff.recipe.train_split = data::fewshot_train_split(spec.shots, spec.split_seed);
    if (!j.eff.requested.has("test_split")) j.eff.recipe.test_split = "test";
  }
  // A backbone family with its authors' mean/std (MAE, MoCo v3): that normalisation unless the user set
  // one; supervised ViTs keep their recipes' (the record's recipe settings say which was used).
  // The architecture: --arch, else the backbone file's (a layout's marker or petl's metadata names it).
  const std::string arch = !spec.arch.empty() || spec.backbone_file.empty() ? spec.arch : file_arch(spec.backbone_file);
  if (const ArchEntry* a = arch.empty() ? nullptr : find_arch(arch))
    if (a->preprocessing.family_sets_normalisation && !j.eff.requested.has("normalisation"))
      j.eff.recipe.normalisation = a->preprocessing.profile;
  j.threading = threads::choose_threads(spec.threads);
  j.threads = j.threading.threads;
  at::set_num_threads(j.threads);
  try {
    j.device = torch::Device(spec.device);
  } catch (const c10::Error&) {
    PETL_FAIL("--device '", spec.device, "': expected cpu, cuda or cuda:N");
  }
  if (j.device.is_cuda())
    PETL_CHECK(torch::cuda::is_available() && cuda_memory_available(), "--device ", spec.device,
               ": no GPU found (this LibTorch has no CUDA, or no device is visible)");
  return j;
}

JobBackbone load_job_backbone(const ResolvedJob& job) {
  return make_job_backbone(job.spec.backbone_file, job.spec.arch, job.recipe().drop_path_rate, job.spec.dry_run,
                           job.spec.pos_resample);
}

std::shared_ptr<Method> build_job_method(const ResolvedJob& job, VisionTransformer backbone, int num_classes,
                                         const std::set<std::string>& may_be_unused) {
  MethodContext ctx;
  ctx.backbone = backbone;
  ctx.num_classes = num_classes;
  // A few-shot dataset shares no per-task row with VTAB-1k's task of the same name (oxford_iiit_pet).
  ctx.task = job.spec.benchmark == Benchmark::kFewshot ? "fewshot/" + job.task.name : job.task.name;
  ctx.settings = job.eff.settings;
  ctx.backbone_drop_path = job.recipe().drop_path_rate;
  torch::manual_seed(job.recipe().seed);
  std::shared_ptr<Method> method;
  try {
    method = build_method(job.spec.method, ctx);
  } catch (const ArgumentError&) {
    throw;
  } catch (const Error& e) {  // an option's value out of its range, a width it cannot divide
    throw ArgumentError(e.what());
  }
  // Recipe keys were read from the same Settings (shared "used" marks), so what is left is unknown.
  std::vector<std::string> unknown;
  for (auto& k : job.eff.settings.unused())
    if (!may_be_unused.count(k)) unknown.push_back(k);
  if (!unknown.empty()) {
    // The keys these settings understand: the method's options (with their meanings) and the recipe's.
    std::vector<std::string> method_keys, meanings, recipe_keys;
    for (const auto& o : job.info->options) {
      method_keys.push_back(o.key);
      meanings.push_back(o.meaning);
    }
    for (const auto& k : job.eff.settings.asked())
      if (std::find(method_keys.begin(), method_keys.end(), k) == method_keys.end()) recipe_keys.push_back(k);
    std::vector<std::string> all = method_keys, texts = meanings;
    all.insert(all.end(), recipe_keys.begin(), recipe_keys.end());
    std::string hints;
    for (const auto& k : unknown) hints += "\n  '" + k + "'" + did_you_mean(k, all, texts);
    throw ArgumentError(
        str_cat("unknown --set key", unknown.size() > 1 ? "s" : "", " for method ", job.spec.method, " / recipe ",
                job.recipe().name, ":", hints,
                "\n  the method's keys: ", method_keys.empty() ? "none" : join(method_keys, ", "),
                " (petl list shows their defaults and meanings)\n  the recipe's keys: ", join(recipe_keys, ", ")));
  }
  return method;
}

std::string job_key(const ResolvedJob& job, const std::map<std::string, std::string>& method_settings,
                    const std::string& backbone_sha256) {
  const auto& spec = job.spec;
  auto list_hash = [&](const std::string& split) {
    if (job.task.dir.empty()) return std::string();
    try {
      return data::split_list_sha256(job.task, split);
    } catch (const Error&) {  // a missing list is reported where the job reads it
      return std::string();
    }
  };
  json src = {{"method", spec.method},
              {"task", job.task.name},
              {"recipe", job.recipe().to_map()},
              {"method_settings", method_settings},
              {"backbone_sha256", backbone_sha256},
              {"data_root", spec.data_root.empty() ? std::string() : fs::absolute(spec.data_root).string()},
              {"train_list_sha256", list_hash(job.recipe().train_split)},
              {"test_list_sha256", list_hash(job.recipe().test_split)},
              {"skip_bad", spec.skip_bad},
              {"limits", {spec.limit_train, spec.limit_test}},
              {"device", spec.device}};
  // Cached float32 features give the live run's exact losses and logits; float16 ones do not.
  if (!spec.feature_cache.empty() && spec.cache_dtype != CacheDtype::kFloat32)
    src["feature_cache_dtype"] = to_string(spec.cache_dtype);
  if (spec.dp > 1) src["data_parallel_ranks"] = spec.dp;                  // same maths, another summation order
  if (spec.micro_batch > 0) src["micro_batch"] = spec.micro_batch;        // likewise (and per-chunk BatchNorm)
  if (spec.memory_budget > 0) src["memory_budget"] = spec.memory_budget;  // may not fit: another result
  if (spec.precision != Precision::kFp32) src["precision"] = to_string(spec.precision);
  if (spec.pos_resample != PosResample::kTimm) src["pos_resample"] = to_string(spec.pos_resample);
  if (spec.benchmark == Benchmark::kFewshot) src["fewshot"] = {{"shots", spec.shots}, {"split_seed", spec.split_seed}};
  // val_select: a search is its own job; a final run is keyed by the searches it chose from.
  if (spec.protocol == Protocol::kValSelect) {
    src["protocol"] = to_string(spec.protocol);
    src["stage"] = spec.stage.empty() ? "final" : spec.stage;
    if (job.selection.is_object())
      src["selection"] = {{"search_job_keys", job.selection["search_job_keys"]}, {"chosen", job.selection["chosen"]}};
  }
  return key_of_text(src.dump());
}

}  // namespace petl

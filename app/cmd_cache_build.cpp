// `petl cache build` (frozen-backbone features of a task's splits into a cache directory) and the
// sweep planner's view of the method registry (petl::method_cache_need): which methods can train
// from cached features with given settings, and which taps / splits / normalisation they need.
#include <cstdio>
#include <filesystem>

#include "app/cache_build.h"
#include "app/cli_util.h"
#include "app/job_args.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/system.h"
#include "core/text.h"
#include "core/threads.h"
#include "datasets/fewshot.h"
#include "datasets/image.h"
#include "datasets/vtab.h"
#include "harness/train/feature_cache.h"
#include "harness/train/job.h"
#include "harness/train/precision.h"
#include "harness/train/selection.h"
#include "models/backbone.h"
#include "models/checkpoint.h"

namespace fs = std::filesystem;

namespace petl {

BackboneDims backbone_dims(const std::string& backbone, const std::string& arch) {
  try {
    const VitConfig c = !arch.empty() ? vit_config_by_name(arch)
                                      : infer_vit_config(backbone.empty() ? embedded_backbone_path() : backbone);
    return {c.depth, c.num_tokens(), c.embed_dim};
  } catch (const Error& e) {
    std::fprintf(stderr, "[petl] sweep plan: no byte estimates (%s)\n", e.what());
    return {};
  }
}

namespace {
// The job as `petl run` would resolve it, with its method built on a small stand-in backbone (enough
// to ask what it needs); nullopt for settings the job itself would reject.
struct PlannedMethod {
  ResolvedJob job;
  BackboneNeeds needs;
};
std::optional<PlannedMethod> plan_method_uncached(const std::string& method, const std::string& task,
                                                  const std::string& recipe,
                                                  const std::map<std::string, std::string>& sets, Benchmark benchmark) {
  JobSpec spec;
  spec.method = method;
  spec.task = task;
  spec.recipe = recipe;
  spec.benchmark = benchmark;
  if (benchmark == Benchmark::kFewshot) {  // any list: the recipe and the needs do not depend on it
    spec.shots = 1;
    spec.split_seed = 0;
  }
  for (auto& [k, v] : sets) spec.set.push_back(k + "=" + v);
  spec.arch = "petl_vit_mini_p8_32";
  spec.dry_run = true;
  spec.threads = 1;  // no free-core measurement (a sampling window per call) for a question of needs
  PlannedMethod p{resolve_job(spec), {}};  // a bad recipe or recipe value fails the plan
  try {
    JobBackbone bb = load_job_backbone(p.job);
    p.needs = build_job_method(p.job, bb.model, 2)->needs();
    return p;
  } catch (const Error&) {
    return std::nullopt;  // invalid settings: the job itself fails and is recorded as failed
  }
}
// The planner asks twice per job (its cache need, its profile): the answer is kept per question.
const std::optional<PlannedMethod>& plan_method(const std::string& method, const std::string& task,
                                                const std::string& recipe,
                                                const std::map<std::string, std::string>& sets, Benchmark benchmark) {
  static std::map<std::string, std::optional<PlannedMethod>> memo;
  std::string key = method + '\n' + task + '\n' + recipe + '\n' + to_string(benchmark);
  for (const auto& [k, v] : sets) key += '\n' + k + '=' + v;
  auto it = memo.find(key);
  if (it == memo.end()) it = memo.emplace(key, plan_method_uncached(method, task, recipe, sets, benchmark)).first;
  return it->second;
}
}  // namespace

std::optional<CacheNeed> method_cache_need(const std::string& method, const std::string& task,
                                           const std::string& recipe, const std::map<std::string, std::string>& sets,
                                           Benchmark benchmark) {
  const auto& p = plan_method(method, task, recipe, sets, benchmark);
  if (!p) return std::nullopt;
  auto taps = cache_taps_for(p->needs);
  if (!taps.any()) return std::nullopt;
  CacheNeed need;
  need.taps = taps;
  // A test split's K/V are never stored (evaluated live, one pass for every snapshot).
  // A few-shot dataset's train lists share one cache of their merged images (datasets/fewshot.h).
  need.splits = {benchmark == Benchmark::kFewshot ? data::kFewshotPoolSplit : p->job.recipe().train_split};
  if (!taps.kv) need.splits.push_back(p->job.recipe().test_split);
  need.normalisation = p->job.recipe().normalisation;
  return need;
}

JobProfile method_job_profile(const std::string& method, const std::string& task, const std::string& recipe,
                              Protocol protocol, const std::map<std::string, std::string>& sets, Benchmark benchmark) {
  JobProfile prof{100, 10, true, "its settings are rejected (the job will fail and be recorded as failed)"};
  const auto& p = plan_method(method, task, recipe, sets, benchmark);
  if (!p) return prof;
  const Recipe& r = p->job.recipe();
  const int total = r.total_epochs(), every = std::max(1, r.eval_every);
  prof.epochs = total;
  prof.evals = protocol == Protocol::kFinal ? 1 : total / every + (total % every != 0);
  const BackboneNeeds& n = p->needs;
  prof.backbone_grad = n.grad_through_backbone;
  if (n.grad_through_backbone)
    prof.no_cache_why = "it back-propagates through the backbone (its token path changes with training)";
  else if (n.backbone_stochastic) {
    bool has_switch = false;
    for (const auto& o : p->job.info->options) has_switch |= o.key == "backbone_drop_path";
    prof.no_cache_why = str_cat("stochastic depth (drop path ", r.drop_path_rate,
                                ") is on in the frozen backbone while training, so its features differ every step",
                                has_switch ? " (--set backbone_drop_path=off makes it cacheable)" : "");
  } else if (n.block_tokens)
    prof.no_cache_why = "it reads every block's output tokens, which no feature cache holds";
  else if (!cache_taps_for(n).any())
    prof.no_cache_why = "it reads nothing a feature cache holds";
  return prof;
}

std::map<std::string, std::vector<std::string>> method_default_grid(const std::string& method) {
  return default_val_grid(method);
}

namespace cli {

int cmd_cache_build(const std::vector<std::string>& args) {
  const std::optional<CacheBuildSpec> parsed = parse_cache_build_args(args);
  if (!parsed) return 0;
  const CacheBuildSpec& spec = *parsed;
  const int th = threads::choose_threads(spec.threads).threads;
  at::set_num_threads(th);
  set_precision(spec.precision);
  auto task = spec.benchmark == Benchmark::kFewshot ? data::find_fewshot_dataset(spec.data_root, spec.task)
                                                    : data::find_task(spec.data_root, spec.task);
  auto bb = make_job_backbone(spec.backbone_file, spec.arch, 0.0, false, spec.pos_resample);
  CacheBuildOptions o;
  o.root = spec.out_dir;
  o.dtype = spec.dtype;
  o.taps = spec.taps;
  o.chunk_images = spec.chunk_images;
  o.load.image_size = bb.model->cfg_.img_size;
  o.load.norm = data::parse_normalisation(spec.normalisation);
  o.load.threads = th;
  o.load.progress = spec.progress;
  o.backbone_file = bb.info.value("path", nlohmann::json()).is_string() ? bb.info["path"].get<std::string>() : "";
  for (const auto& split : spec.splits) {
    bool built = false;
    auto path = ensure_feature_cache(o, bb.model, bb.info["sha256"], task, split, &built);
    std::printf("%s %s/%s (%s, %s): %s\n", built ? "built" : "valid, kept", task.name.c_str(), split.c_str(),
                o.taps.str().c_str(), to_string(spec.dtype), path.c_str());
  }
  return 0;
}

}  // namespace cli
}  // namespace petl

// `petl cache build` (frozen-backbone features of a task's splits into a cache directory) and the
// sweep planner's view of the method registry (petl::method_cache_need): which methods can train
// from cached features with given settings, and which taps / splits / normalisation they need.
#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "app/cache_build.h"
#include "app/cli_util.h"
#include "core/system.h"
#include "core/threads.h"
#include "datasets/image.h"
#include "datasets/vtab.h"
#include "core/error.h"
#include "harness/train/feature_cache.h"
#include "harness/train/job.h"
#include "harness/train/precision.h"
#include "core/paths.h"
#include "models/backbone.h"
#include "models/checkpoint.h"

namespace po = boost::program_options;
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

std::optional<CacheNeed> method_cache_need(const std::string& method, const std::string& task,
                                           const std::string& recipe, const std::map<std::string, std::string>& sets) {
  JobSpec spec;
  spec.method = method;
  spec.task = task;
  spec.recipe = recipe;
  for (auto& [k, v] : sets) spec.set.push_back(k + "=" + v);
  spec.arch = "petl_vit_mini_p8_32";  // a small stand-in is enough to ask the method what it needs
  spec.dry_run = true;
  const ResolvedJob job = resolve_job(spec);  // a bad recipe or recipe value fails the plan
  std::shared_ptr<Method> m;
  try {
    JobBackbone bb = load_job_backbone(job);
    m = build_job_method(job, bb.model, 2);
    auto taps = cache_taps_for(m->needs());
    if (!taps.any()) return std::nullopt;
    CacheNeed need;
    need.taps = taps.str();
    // A test split's K/V are never stored (evaluated live, one pass for every snapshot).
    need.splits = {job.recipe().train_split};
    if (!taps.kv) need.splits.push_back(job.recipe().test_split);
    need.normalisation = job.recipe().normalisation;
    return need;
  } catch (const Error&) {
    return std::nullopt;  // invalid settings: the job itself fails and is recorded as failed
  }
}

namespace cli {

int cmd_cache_build(const std::vector<std::string>& args) {
  std::string data_root, task_name, backbone, arch, taps_s, splits_s = "train800val200,test", dtype = "float32",
                                                                 normalisation = "imagenet", out, precision = "fp32";
  int threads = 0;
  int64_t chunk = 256;
  po::options_description d("petl cache build options");
  d.add_options()("data-root", po::value(&data_root)->required(), "root holding <task>/ folders (VTAB-1k txt or json layout)")
      ("task", po::value(&task_name)->required(), "task folder name under --data-root")
      ("backbone", po::value(&backbone), "pretrained backbone file (.npz or .safetensors; default: the embedded one)")
      ("arch", po::value(&arch), "architecture, when the backbone file does not say")
      ("taps", po::value(&taps_s)->required(), "what to store: cls (final-norm cls token), kv (every block's K and V) or cls+kv")
      ("splits", po::value(&splits_s)->default_value(splits_s), "comma-separated splits, one cache file each")
      ("dtype", po::value(&dtype)->default_value(dtype), "stored precision: float32 (exact) or float16 (half the disk and RAM)")
      ("normalisation", po::value(&normalisation)->default_value(normalisation), "image normalisation: imagenet, inception or none (must match the training recipe's)")
      ("out", po::value(&out)->required(), "cache directory: one <key>.h5 per split (key = hash of the identity)")
      ("chunk", po::value(&chunk)->default_value(chunk), "images decoded and passed through the backbone at a time")
      ("precision", po::value(&precision)->default_value(precision), "fp32 or bf16: the backbone pass under bfloat16 autocast (as `petl run --precision bf16`, whose jobs use only bf16 caches); part of the cache's identity when bf16")
      ("threads", po::value(&threads)->default_value(0), "intra-op and decoding threads (0 = OMP_NUM_THREADS when set, else the cores free now)")
      ("no-progress", "no progress bars");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl cache build --data-root DIR --task T --taps cls|kv|cls+kv --out DIR [options]\n"
                  "Passes every image of the task's splits through the frozen backbone (eval mode) once and stores\n"
                  "the tapped tensors in HDF5 (layout: io/feature_store.h). An existing valid cache is kept."))
    return 0;
  const int th = threads::choose_threads(threads).threads;
  at::set_num_threads(th);
  set_precision(parse_precision(precision, "--precision"));
  auto task = data::find_task(data_root, task_name);
  auto bb = make_job_backbone(backbone, arch, 0.0, false);
  CacheBuildOptions o;
  o.root = out;
  o.dtype = dtype;
  o.taps = CacheTaps::parse(taps_s);
  o.chunk_images = chunk;
  o.load.image_size = bb.model->cfg_.img_size;
  o.load.norm = data::parse_normalisation(normalisation);
  o.load.threads = th;
  o.load.progress = !vm.count("no-progress");
  o.backbone_file = bb.info.value("path", nlohmann::json()).is_string() ? bb.info["path"].get<std::string>() : "";
  std::stringstream ss(splits_s);
  std::string split;
  while (std::getline(ss, split, ',')) {
    if (split.empty()) continue;
    bool built = false;
    auto path = ensure_feature_cache(o, bb.model, bb.info["sha256"], task, split, &built);
    std::printf("%s %s/%s (%s, %s): %s\n", built ? "built" : "valid, kept", task.name.c_str(), split.c_str(),
                o.taps.str().c_str(), dtype.c_str(), path.c_str());
  }
  return 0;
}

}  // namespace cli
}  // namespace petl

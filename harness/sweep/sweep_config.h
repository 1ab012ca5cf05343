// `petl sweep` planning: a YAML sweep config → a deterministic list of jobs (training runs and
// the feature-cache builds they depend on), each with a content-derived key, the typed spec of the
// `petl` child that runs it (harness/spec/job_spec.h; its command line comes from app/job_args.h),
// and an estimated cost in seconds. Pure functions: no MPI, no torch.
//
// Config keys (anything else is an error naming the file, line and key):
//   name              sweep name (default: the config file's stem); written into every record
//   out               output directory (the --out flag overrides it)
//   data_root         root holding <task>/ folders (required)
//   backbone          backbone file; empty or absent = the embedded backbone
//   arch              architecture name (optional, passed as --arch)
//   pos_resample      timm | dinov2 (as petl run --pos-resample; default timm): how a checkpoint's
//                     position embeddings on another grid (DINOv2's 518 px) are resampled
//   protocol          best_of_10 | final | val_select (default best_of_10). val_select plans two
//                     stages per (method, task, seed): a search job per grid point (the config's
//                     grid for the method, else its default grid, config/val_grids.yaml) trained on
//                     train800 and evaluated on val200, then a final job that runs after all of
//                     them (chosen on val200, trained on train800val200; its key covers the search
//                     keys), plus the ordinary best_of_10 job at the method's default settings so
//                     the report can put test-selected and val-selected numbers side by side
//   recipe            recipe name (optional; default: each method's own)
//   methods, tasks    non-empty lists of names; seeds: non-empty list of integers
//   benchmark         vtab | fewshot (default vtab). fewshot: tasks are few-shot datasets in NOAH's
//                     layout (datasets/fewshot.h) and every (method, task, seed) runs once per
//   shots             list of images per class (e.g. [1, 2, 4, 8, 16]) and per
//   split_seeds       list of NOAH split seeds (e.g. [0, 1, 2]); both required with fewshot and
//                     refused without it. Shots and split seed are part of the training jobs' keys;
//                     a dataset's cacheable methods share one cache of its merged train lists
//                     (split train_pool) and, for cls, one of its test list
//   epochs, batch_size  optional positive integers
//   grid              map key → list of values; the cartesian product is applied to every method
//                     as `--set key=value`
//   method_overrides  map method → {set: {k: v}, grid: {k: [..]}}: a method's grid keys replace
//                     the global grid's keys of the same name; its `set` keys are pinned (they
//                     also remove the global grid dimension of that key for this method)
//   task_overrides    map task → {set: {k: v}}
//   method_task_overrides  map "method/task" → {set: {k: v}}
//                     precedence, later wins: grid < method set < task set < method/task set;
//                     jobs that become identical after that are planned once
//   feature_cache     bool (default true): methods that declare a cacheable need train on cached
//                     frozen-backbone features built once per (backbone, data, task, splits, taps,
//                     dtype, normalisation)
//   cache_dtype       float16 | float32 (default float16)
//   precision         fp32 | bf16 (also float32 | bfloat16, as petl run --precision; default fp32):
//                     every job's and cache build's forward passes; part of the keys when bf16
//   threads_per_rank  0 = auto (cores of the node shared among the ranks of the node)
//   job_timeout_s     0 = no limit; a job running longer is stopped and recorded failed
//   retry_failed      bool (default false): re-run jobs whose journal record is failed
//   bundle_jobs       integer ≥ 1 (default 16): the training jobs that share a feature cache (query-only
//                     methods on one backbone × task × preprocessing: seeds, grid points, methods) run
//                     in bundles of at most this many, one child process per bundle (`petl bundle`):
//                     train features loaded once, one test pass for every snapshot of every job; each
//                     job keeps its key, record, checkpoint and state. 1 = every job alone.
//   est_gflops_per_rank  the dry run's time estimate: one rank's effective GFLOP/s (default 80)
//   memory_budget     a size (e.g. 4G): every training job keeps its training peak under it
//                     (petl run --memory-budget: micro-batches, or a does_not_fit record); part
//                     of the training jobs' keys
// Values in set/grid are taken as the YAML scalar text (1e-3 and 0.001 are different values).
// Relative paths (out, data_root, backbone) are relative to the current directory, as for
// `petl run`; children get absolute paths, and keys use the absolute data_root and backbone.
//
// Sweep keys (a planned job's identity in the sweep journal, field "sweep_key"; not the record's
// "job_key", which `petl run` hashes from the effective settings after resolving them): the first
// 16 hex characters of SHA-256 over a canonical JSON (sorted keys) of everything that determines
// the result as the config requests it — training: method, task, seed, sorted sets, recipe,
// epochs, batch_size, protocol, absolute data_root, absolute backbone path + the file's SHA-256
// (the embedded backbone's file when `backbone` is empty), arch, and the key of the feature cache
// it trains on (which carries the dtype); cache: backbone (+SHA-256), arch, data_root, task,
// sorted splits, taps, dtype, normalisation. The out directory, threads and devices are not part
// of any key, so a key identifies the same computation wherever it runs.
//
// Cost model (estimated seconds on one rank; the farm dispatches longest-first by it; --dry-run shows
// it per job and in hours in total). F = the backbone's forward FLOPs per image,
// depth × (24·N·D² + 4·N²·D) (N tokens, width D; 34.9 GFLOP at ViT-B/16, i.e. the 17.4 G
// multiply-adds papers quote as "17.6 GFLOPs" with the patch embedding), at est_gflops_per_rank:
//   training job  = n_train × epochs × F × f + evals × n_test × F × e, where
//                   n_train, n_test = samples of the task's train800val200 and test lists, read through
//                              datasets/ (1000 when the task or list is absent),
//                   epochs, evals = the job's profile (JobProfileFn: the recipe, the protocol, a
//                              `--set epochs`; the config's `epochs` wins), else 100 and 10,
//                   f = 3 when it back-propagates through the backbone, 1.1 live without it,
//                       0.06 from cached K/V, 0.001 from a cached cls token,
//                   e = 1 when the test split is evaluated live every time, 1/evals from K/V caches
//                       (one test pass for every snapshot), 0 from a cached cls token;
//   cache job     = Σ over its splits of the split's samples × F (one forward pass per image).
// The estimate is a model, not a measurement: the ratio f and the default rate come from `petl
// bench` on ViT-B/16 (README "Benchmarks"); set est_gflops_per_rank for another machine.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "core/cache_taps.h"
#include "core/enums.h"
#include "harness/spec/job_spec.h"

namespace petl {

// What a method needs from a frozen-backbone feature cache.
struct CacheNeed {
  CacheTaps taps;                   // e.g. cls or kv (what `cache build --taps` stores)
  std::vector<std::string> splits;  // e.g. {"train800val200", "test"}
  std::string normalisation;        // "" = the cache builder's default; else part of the key
};

// Returns the cache need of `method` on `task` under `recipe` ("" = the method's default recipe)
// with the job's `--set` values, or nullopt when the method cannot train on cached features (it changes the
// backbone's forward or needs its gradients). The app supplies it from the method registry, so this
// torch-free layer never sees a method.
using CacheNeedFn = std::function<std::optional<CacheNeed>(
    const std::string& method, const std::string& task, const std::string& recipe,
    const std::map<std::string, std::string>& sets, Benchmark benchmark)>;

// What the plan's time estimate and its cache column need to know of one training job, resolved as
// `petl run` resolves it (the app supplies it from the recipe and the method registry).
struct JobProfile {
  int epochs = 0;              // epochs trained (the recipe's, a `--set epochs`, cooldown included)
  int evals = 0;               // test-split evaluations (the protocol and the recipe's eval_every)
  bool backbone_grad = false;  // back-propagates through the backbone (a step costs ~3 forward passes)
  std::string no_cache_why;    // why the method cannot train from a feature cache; "" when it can
};
using JobProfileFn =
    std::function<JobProfile(const std::string& method, const std::string& task, const std::string& recipe,
                             Protocol protocol, const std::map<std::string, std::string>& sets, Benchmark benchmark)>;

struct SweepOverride {
  std::map<std::string, std::string> set;
  std::map<std::string, std::vector<std::string>> grid;  // method_overrides only
};

struct SweepConfig {
  std::string file;  // where it was read from (messages)
  std::string name, out, data_root, backbone, arch, recipe;
  Protocol protocol = Protocol::kBestOf10;
  std::vector<std::string> methods, tasks;
  std::vector<int> seeds;
  Benchmark benchmark = Benchmark::kVtab;
  std::vector<int> shots, split_seeds;  // fewshot only
  int epochs = -1, batch_size = -1;
  std::map<std::string, std::vector<std::string>> grid;
  std::map<std::string, SweepOverride> method_overrides, task_overrides, method_task_overrides;
  bool feature_cache = true;
  CacheDtype cache_dtype = CacheDtype::kFloat16;
  bool cache_dtype_set = false;  // whether the config named cache_dtype (the dry run says which applies)
  Precision precision = Precision::kFp32;
  PosResample pos_resample = PosResample::kTimm;
  int threads_per_rank = 0;
  double job_timeout_s = 0;
  bool retry_failed = false;
  int64_t memory_budget = 0;  // bytes (the config's size, e.g. 4G); 0 = none
  int bundle_jobs = 16;       // most jobs per bundle (1 = no bundles)
  // The dry run's time estimate: effective GFLOP/s of one rank (est_gflops_per_rank). The default
  // is what ViT-B/16 training reaches with 2 threads on the machine petl is developed on (`petl
  // bench`: full 0.68 img/s = 71 GFLOP/s, linear 2.49 img/s = 87 GFLOP/s).
  double est_gflops_per_rank = 80;
};

// Reads and validates a sweep config; throws petl::Error naming file, line and key.
SweepConfig load_sweep_config(const std::string& file);
// The same from YAML text; `label` stands for the file name in messages.
SweepConfig parse_sweep_config(const std::string& yaml_text, const std::string& label);

// One planned job.
struct SweepJob {
  std::string key;  // 16 hex chars
  bool is_cache = false;
  std::string method;  // empty for cache jobs
  std::string task;
  int seed = -1;                            // -1 for cache jobs
  int shots = 0, split_seed = -1;           // few-shot training jobs
  std::map<std::string, std::string> sets;  // the job's --set values (sorted by key)
  std::optional<JobSpec> run;               // training jobs: the `petl run` child
  std::optional<CacheBuildSpec> build;      // cache jobs: the `petl cache build` child
  // Estimated seconds on one rank (also the farm's priority): the backbone's forward FLOPs per
  // image times the images passed (job_seconds in sweep_config.cpp), at est_gflops_per_rank.
  double cost = 0;
  // Training jobs: why it trains without a feature cache ("" when it has one); cache jobs: which
  // jobs it serves (the dry run prints both).
  std::string cache_note;
  std::string depends_on;  // key of the cache job it trains on, or ""
  // Protocol val_select: "search" (a grid point, train800 -> val200), "final" (the run chosen from
  // its searches, which it runs after), "" otherwise.
  std::string stage;
  std::vector<std::string> after;  // a final job's search jobs
  std::string out_dir;             // <out>/jobs/<key> or <out>/cache/<key>
  std::string result_file;         // <out>/jobs/<key>/results.jsonl ("" for cache jobs)
  std::string log_file;            // <out>/logs/<key>.log
  CacheNeed cache;                 // cache jobs: what is built
  // Estimates (0 = unknown): a cache job's bytes on disk (every split it stores); a training job's
  // bytes of resident train-split features in memory (from its cache).
  int64_t disk_bytes = 0, ram_bytes = 0;
  CacheDtype cache_dtype = CacheDtype::kFloat32;  // cache jobs
  // Bundle id ("" = none): the training jobs on one feature cache (query-only methods), at most
  // bundle_jobs per bundle, run in one `petl bundle` child (harness/sweep/farm.h).
  std::string bundle;
  std::string canonical;  // the canonical JSON hashed into the key
};

// The sizes of a backbone's features: blocks, tokens per image, width.
struct BackboneDims {
  int depth = 0, tokens = 0, width = 0;
};
// The dimensions of the sweep's backbone: from the file (`backbone`, "" = the embedded one) or the
// architecture name (`arch`). The app supplies it (models know architectures; this layer does not).
using BackboneDimsFn = std::function<BackboneDims(const std::string& backbone, const std::string& arch)>;

// Bytes one image's features take in a cache (and in memory, where a train split is resident):
// cls = width, kv = 2 * depth * tokens * width, at dtype_bytes per value (cls+kv: both).
int64_t feature_bytes_per_image(const CacheTaps& taps, const BackboneDims& dims, int dtype_bytes);

struct PlanOptions {
  std::string out;                        // non-empty: overrides the config's out
  std::string embedded_backbone;          // the embedded backbone file, hashed into keys when backbone is empty
  CacheNeedFn cache_need;                 // null: no job uses a feature cache
  std::optional<double> state_every_min;  // set: every training job's JobSpec::state_every_min
  BackboneDimsFn backbone_dims;           // null: no byte estimates in the plan
  // Protocol val_select: a method's default search grid (config/val_grids.yaml), used where the
  // config gives the method no grid; null: none (a single point).
  std::function<std::map<std::string, std::vector<std::string>>(const std::string& method)> default_grid;
  JobProfileFn job_profile;  // null: 100 epochs, 10 evaluations, no reasons given
};

struct SweepPlan {
  SweepConfig config;
  std::string out;             // effective output directory
  std::string journal;         // <out>/results.jsonl
  std::vector<SweepJob> jobs;  // cache jobs first (in order of first use), then training jobs in
                               // expansion order: method, task, seed, grid point
};

// Expands the config into jobs. Deterministic: the same config, files and options give the same
// keys, args and order.
SweepPlan plan_sweep(const SweepConfig& config, const PlanOptions& opts);

// `--shard I/N`: keeps the training jobs whose shard key (as a 64-bit number from its first 16
// hex characters) mod N == I, plus the cache jobs those depend on. The shard key is the job's own
// key, or the key of the feature cache it trains on: all users of one cache land in the same
// shard, so no two shards ever build the same cache.
struct Shard {
  int index = 0, count = 1;
};
Shard parse_shard(const std::string& text);  // "I/N" with 0 ≤ I < N; throws petl::Error otherwise
std::vector<SweepJob> shard_jobs(const std::vector<SweepJob>& jobs, const Shard& shard);

// How far a job stopped mid-way got: the summary and save time of the mid-job training state(s) in
// <job_out_dir>/state/ ("4/10 epochs trained, epoch 5 at iteration 3, saved 2026-...Z"), "" when
// there is none.
std::string mid_job_state_summary(const std::string& job_out_dir);

// What the journals (and a job's saved state) say of a planned job, for the --dry-run table.
struct PlannedJobStatus {
  std::optional<RecordStatus> journal;  // ok, does_not_fit or failed; nullopt: no line
  std::string state;                    // mid_job_state_summary(), "" when none
};
// The --dry-run table: cache builds first, then training jobs; key, kind/method, task, seed,
// sets, depends_on, cost, journal status (from `status`); then totals.
void print_plan(std::ostream& os, const SweepPlan& plan, const std::vector<SweepJob>& jobs,
                const std::map<std::string, PlannedJobStatus>& status);

}  // namespace petl

// What a job is, typed and torch-free: a training job (`petl run`: JobSpec) and a feature-cache
// build (`petl cache build`: CacheBuildSpec). Every run is a pure function of its spec → one result
// record (harness/train/job.h). The command line of a spec is written and read in one place
// (app/job_args.h: parse_run_args / run_args, round-trip tested), so the sweep, the farm, bundles
// and the demo build their children from specs and never spell a flag by hand.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/cache_taps.h"
#include "core/enums.h"

namespace petl {

struct JobSpec {
  std::string method;
  std::string task;
  // kFewshot: the task is a few-shot dataset in NOAH's layout (datasets/fewshot.h), trained on the
  // list of `shots` images per class drawn with `split_seed` and tested on its test list. The three
  // are part of the job key and of the record.
  Benchmark benchmark = Benchmark::kVtab;
  int shots = 0, split_seed = -1;  // few-shot only (0 / -1: not given)
  std::string data_root;           // empty: no data (bench, sweep planning); the task is then a name only
  std::string backbone_file;       // empty: the embedded backbone (unless arch is given)
  std::string arch;                // timm name; with no backbone file → random weights (dry-run only)
  // How a checkpoint's pos_embed on another grid is resampled (DINOv2's 518 px); part of the job key
  // and of a cache's identity when not timm's.
  PosResample pos_resample = PosResample::kTimm;
  std::string recipe;  // empty: the method's default recipe
  Protocol protocol = Protocol::kBestOf10;
  // Protocol val_select (harness/train/selection.h): stage "search" trains on train800 and evaluates
  // on val200 (one grid point); select_from (the search jobs' result files, in grid order) makes the
  // final run, on train800val200 with the point and epoch count chosen on val200. Neither: `petl run`
  // runs the whole protocol (every point of the grid, then the final run).
  std::string stage;
  std::vector<std::string> select_from;
  std::string out_dir;      // records (results.jsonl), checkpoints/, state/
  std::string record_file;  // also write the job's record to this file as one JSON line ("": no)
  // kRecipeValue: the recipe's value; anything else given is validated (epochs, batch ≥ 1, seed ≥ 0).
  static constexpr int kRecipeValue = std::numeric_limits<int>::min();
  int epochs = kRecipeValue, batch_size = kRecipeValue, seed = kRecipeValue;
  int threads = 0;             // 0: OMP_NUM_THREADS when set, else the cores free now (core/threads.h)
  std::string device = "cpu";  // cpu | cuda | cuda:N (CUDA LibTorch builds only)
  // The forward passes (frozen and trainable) under bfloat16 autocast when kBf16
  // (harness/train/precision.h); part of the job key and of a feature cache's identity when bf16.
  Precision precision = Precision::kFp32;
  std::vector<std::string> set;  // key=value overrides (recipe keys and method keys), in order
  bool dry_run = false;
  bool skip_bad = false;  // skip undecodable / missing images (counted in the record)
  // Train although some class has no image in the train split (a warning naming them, recorded in
  // the record's data.missing_train_classes) instead of stopping with an error. Not part of the job
  // key: it changes no result, only whether such a job runs.
  bool allow_missing_classes = false;
  bool progress = true;
  bool save_checkpoint = true;
  bool reuse_done = false;                    // --resume: an ok record with the same job key in out_dir is returned
  int64_t limit_train = -1, limit_test = -1;  // tests and benchmarks only (no flag)
  // Train from frozen-backbone features cached in this directory (built when missing) instead of
  // live backbone passes; only for methods whose needs() are cacheable. Empty: live.
  std::string feature_cache;
  CacheDtype cache_dtype = CacheDtype::kFloat32;  // of a cache built by the job
  // The train split's features are held in memory in their stored dtype; when they would take
  // more than this many bytes the job trains live instead and its record says why. 0: half of
  // the memory available when the job starts.
  int64_t feature_memory_budget = 0;
  // Mid-job state (harness/train/job_state.h) in <out_dir>/state/: saved at the first epoch
  // boundary at least this many minutes after the last save (0: every epoch; kStateNever: never)
  // and when a stop signal arrives; with reuse_done a job resumes from it.
  static constexpr double kStateNever = -1;
  double state_every_min = 10;
  // Micro-batches of at most this many images per rank, gradients accumulated (0: whole batch), or
  // chosen from a memory budget in bytes (harness/train/memory_budget.h; 0: none). Both are part of
  // the job key when set (as dp is).
  int micro_batch = 0;
  int64_t memory_budget = 0;
  // Data parallelism over this many MPI ranks (the job runs under mpirun -np dp; rank 0 writes).
  int dp = 1;
  std::vector<std::string> argv;  // the command line it was read from, for provenance (not compared)

  bool operator==(const JobSpec& o) const;  // every field but argv
  bool operator!=(const JobSpec& o) const { return !(*this == o); }
};

// `petl cache build`: one task's splits through the frozen backbone into a feature cache.
struct CacheBuildSpec {
  std::string data_root, task;
  Benchmark benchmark = Benchmark::kVtab;  // kFewshot: splits are few-shot splits (train_pool, val, test)
  std::string backbone_file, arch;         // as JobSpec's
  PosResample pos_resample = PosResample::kTimm;
  CacheTaps taps;  // what to store (required)
  std::vector<std::string> splits = {"train800val200", "test"};
  CacheDtype dtype = CacheDtype::kFloat32;
  std::string normalisation = "imagenet";  // must match the training recipe's
  std::string out_dir;                     // the cache directory (required)
  int64_t chunk_images = 256;              // images decoded and passed through the backbone at a time
  Precision precision = Precision::kFp32;
  int threads = 0;
  bool progress = true;

  bool operator==(const CacheBuildSpec& o) const;
  bool operator!=(const CacheBuildSpec& o) const { return !(*this == o); }
};

// The points of a grid (key → values) in grid order: the cartesian product over the keys in sorted
// order, the last key varying fastest. One point (no settings) for an empty grid.
std::vector<std::map<std::string, std::string>> grid_points(
    const std::map<std::string, std::vector<std::string>>& grid);

}  // namespace petl

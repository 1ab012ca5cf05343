// The flag tables of `petl run` and `petl cache build` (see job_args.h): one row per flag, which
// both reads the flag into the spec and writes it back from the spec.
#include "app/job_args.h"

#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "app/cli_util.h"
#include "core/text.h"

namespace petl::cli {
namespace {

// One flag of a spec S. kValue: one value (default_text, when set, is what an absent flag reads as;
// a spec at the default does not write the flag); kSwitch: no value (write gives {""} when on, {}
// when off); kList: repeatable, one value per occurrence, in order.
template <typename S>
struct Flag {
  enum Kind { kValue, kSwitch, kList };
  std::string name;
  Kind kind = kValue;
  std::string default_text;
  bool required = false;
  std::string help;
  std::function<void(S&, const std::string&)> read;
  std::function<std::vector<std::string>(const S&)> write;
};

template <typename S>
Flag<S> value(std::string name, std::string default_text, std::string help,
              std::function<void(S&, const std::string&)> read, std::function<std::string(const S&)> write) {
  return {std::move(name),
          Flag<S>::kValue,
          std::move(default_text),
          false,
          std::move(help),
          std::move(read),
          [write](const S& s) { return std::vector<std::string>{write(s)}; }};
}
template <typename S>
Flag<S> required(std::string name, std::string help, std::string S::*member) {
  return {std::move(name),
          Flag<S>::kValue,
          "",
          true,
          std::move(help),
          [member](S& s, const std::string& v) { s.*member = v; },
          [member](const S& s) { return std::vector<std::string>{s.*member}; }};
}
// An optional text flag: written when not empty.
template <typename S>
Flag<S> text(std::string name, std::string help, std::string S::*member) {
  return {std::move(name),
          Flag<S>::kValue,
          "",
          false,
          std::move(help),
          [member](S& s, const std::string& v) { s.*member = v; },
          [member](const S& s) {
            return (s.*member).empty() ? std::vector<std::string>{} : std::vector<std::string>{s.*member};
          }};
}
template <typename S>
Flag<S> on_off(std::string name, std::string help, bool S::*member, bool when_given) {
  return {std::move(name),
          Flag<S>::kSwitch,
          "",
          false,
          std::move(help),
          [member, when_given](S& s, const std::string&) { s.*member = when_given; },
          [member, when_given](const S& s) {
            return s.*member == when_given ? std::vector<std::string>{""} : std::vector<std::string>{};
          }};
}
template <typename S, typename E>
Flag<S> choice(std::string name, std::string help, E S::*member, E def) {
  const std::string flag = "--" + name;
  return value<S>(
      std::move(name), to_string(def), std::move(help),
      [member, flag](S& s, const std::string& v) { s.*member = parse_enum<E>(v, flag); },
      [member](const S& s) { return std::string(to_string(s.*member)); });
}

int64_t to_int64(const std::string& text, const std::string& flag) {
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  PETL_FAIL(flag, " '", text, "': expected an integer");
}
int to_int(const std::string& text, const std::string& flag) {
  const int64_t v = to_int64(text, flag);
  PETL_CHECK(v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max(), flag, " '", text,
             "': expected an integer of at most 10 digits");
  return int(v);
}
// An int flag whose absence means `absent` (written only when the spec's value differs).
template <typename S>
Flag<S> integer(std::string name, std::string help, int S::*member, int absent, std::string default_text = "") {
  const std::string flag = "--" + name;
  return {std::move(name),
          Flag<S>::kValue,
          std::move(default_text),
          false,
          std::move(help),
          [member, flag](S& s, const std::string& v) { s.*member = to_int(v, flag); },
          [member, absent](const S& s) {
            return s.*member == absent ? std::vector<std::string>{}
                                       : std::vector<std::string>{std::to_string(s.*member)};
          }};
}

// `more_help`: text appended to the help of the named flags.
template <typename S>
po::options_description describe(const std::vector<Flag<S>>& flags, const std::string& title,
                                 const std::map<std::string, std::string>& more_help = {}) {
  po::options_description d(title);
  for (const auto& f0 : flags) {
    Flag<S> f = f0;
    if (auto it = more_help.find(f.name); it != more_help.end() && !it->second.empty()) f.help += it->second;
    if (f.kind == Flag<S>::kSwitch) {
      d.add_options()(f.name.c_str(), f.help.c_str());
    } else if (f.kind == Flag<S>::kList) {
      d.add_options()(f.name.c_str(), po::value<std::vector<std::string>>()->composing(), f.help.c_str());
    } else {
      auto* v = po::value<std::string>();
      if (!f.default_text.empty()) v->default_value(f.default_text);
      if (f.required) v->required();
      d.add_options()(f.name.c_str(), v, f.help.c_str());
    }
  }
  return d;
}

template <typename S>
std::optional<S> parse_with(const std::vector<Flag<S>>& flags, const Args& args, const std::string& title,
                            const std::string& usage, const std::map<std::string, std::string>& more_help = {}) {
  po::options_description d = describe(flags, title, more_help);
  po::variables_map vm;
  if (!parse_args(args, d, vm, usage)) return std::nullopt;
  S spec;
  for (const auto& f : flags) {
    if (!vm.count(f.name)) continue;
    if (f.kind == Flag<S>::kSwitch)
      f.read(spec, "");
    else if (f.kind == Flag<S>::kList)
      for (const auto& v : vm[f.name].template as<std::vector<std::string>>()) f.read(spec, v);
    else
      f.read(spec, vm[f.name].template as<std::string>());
  }
  return spec;
}

template <typename S>
Args write_with(const std::vector<Flag<S>>& flags, const S& spec) {
  Args out;
  for (const auto& f : flags) {
    const std::vector<std::string> values = f.write(spec);
    if (f.kind == Flag<S>::kSwitch) {
      if (!values.empty()) out.push_back("--" + f.name);
      continue;
    }
    if (f.kind == Flag<S>::kValue && values.size() == 1 && !f.default_text.empty() && values[0] == f.default_text)
      continue;  // the default: left out
    for (const auto& v : values) out.insert(out.end(), {"--" + f.name, v});
  }
  return out;
}

// ------------------------------------------------------------------ petl run

// What a job trains on: the method, the task and its benchmark, the data, the backbone.
std::vector<Flag<JobSpec>> job_input_flags() {
  return {
      required<JobSpec>("method", "method name (see `petl list`)", &JobSpec::method),
      required<JobSpec>("task",
                        "task folder name under --data-root (aliases like cifar100 accepted); with --benchmark "
                        "fewshot a few-shot dataset (fgvc_aircraft, food101, oxford_flowers102, oxford_iiit_pet, "
                        "stanford_cars, NOAH's folder names and aliases accepted)",
                        &JobSpec::task),
      choice<JobSpec>("benchmark",
                      "vtab (VTAB-1k: <task>/train800val200 + test lists) or fewshot (NOAH's few-shot FGVC: "
                      "<dataset>/annotations/train_meta.list.num_shot_K.seed_S, tested on test_meta.list; needs "
                      "--shots and --split-seed, default recipe <recipe>_fewshot)",
                      &JobSpec::benchmark, Benchmark::kVtab),
      integer<JobSpec>("shots",
                       "--benchmark fewshot: images per class of the train list (1, 2, 4, 8, 16); part of "
                       "the job key and the record",
                       &JobSpec::shots, 0),
      integer<JobSpec>("split-seed",
                       "--benchmark fewshot: which K-shot list (NOAH's seed_S: 0, 1, 2); part of the "
                       "job key and the record (--seed is the training seed)",
                       &JobSpec::split_seed, -1),
      required<JobSpec>("data-root",
                        "root holding <task>/ folders in the VTAB-1k txt or json format (--benchmark fewshot: "
                        "NOAH's dataset folders)",
                        &JobSpec::data_root),
      text<JobSpec>(
          "backbone",
          "pretrained backbone: Google ViT .npz or timm .safetensors (default: the embedded petl_vit_mini_p8_32)",
          &JobSpec::backbone_file),
      text<JobSpec>("arch",
                    "architecture (timm name, e.g. vit_base_patch16_224_in21k); without --backbone only for --dry-run",
                    &JobSpec::arch),
      choice<JobSpec>(
          "pos-resample",
          "how a checkpoint's position embeddings on another patch grid are resampled to the run's (DINOv2's "
          "518-px 37x37 grid at 224 px): timm (bicubic to the new size, antialias; timm's default) or "
          "dinov2 (DINOv2's interpolate_pos_encoding: scale factor (new + 0.1) / old, no antialias); "
          "recorded, and part of the job key when dinov2",
          &JobSpec::pos_resample, PosResample::kTimm),
  };
}

const std::vector<Flag<JobSpec>>& run_flags() {
  using F = Flag<JobSpec>;
  static const std::vector<F> flags = [] {
    std::vector<F> all = job_input_flags();
    const std::vector<F> rest = {
        text<JobSpec>("recipe", "training recipe from config/recipes.yaml (default: the method's)", &JobSpec::recipe),
        integer<JobSpec>("epochs", "override the recipe's epochs", &JobSpec::epochs, JobSpec::kRecipeValue),
        integer<JobSpec>("batch-size", "override the recipe's batch size", &JobSpec::batch_size, JobSpec::kRecipeValue),
        integer<JobSpec>("seed", "override the recipe's seed", &JobSpec::seed, JobSpec::kRecipeValue),
        choice<JobSpec>("protocol",
                        "headline accuracy: best_of_10 | final (both are recorded) | val_select (selection without "
                        "the test set: each grid point trains on train800 and is evaluated on val200, the best (point, "
                        "epoch count) on val200 trains once on train800val200, and its test accuracy after the last "
                        "epoch is the result; alone it runs the method's default grid (config/val_grids.yaml; a --set "
                        "of a grid key pins it), searches first, their records in <out>/search)",
                        &JobSpec::protocol, Protocol::kBestOf10),
        text<JobSpec>("stage",
                      "--protocol val_select: 'search' runs one grid point (train800 -> val200); the sweep plans these",
                      &JobSpec::stage),
        F{"select-from", F::kList, "", false,
          "--protocol val_select: a search job's results.jsonl (repeat, in grid order); the run trains on "
          "train800val200 with the point and epoch count the searches' val200 evaluations choose",
          [](JobSpec& s, const std::string& v) { s.select_from.push_back(v); },
          [](const JobSpec& s) { return s.select_from; }},
        integer<JobSpec>(
            "threads", "intra-op threads (0 = OMP_NUM_THREADS when set, else the cores free now, measured over 0.1 s)",
            &JobSpec::threads, 0, "0"),
        value<JobSpec>(
            "device", "cpu",
            "cpu, cuda or cuda:N (cuda needs a CUDA LibTorch build; memory is then the caching allocator's peak "
            "allocated/reserved)",
            [](JobSpec& s, const std::string& v) { s.device = v; }, [](const JobSpec& s) { return s.device; }),
        choice<JobSpec>("precision",
                        "fp32 (exact; the reference code's) or bf16: every forward pass (the frozen backbone's, the "
                        "trainable path's, evaluation, cache builds) under bfloat16 autocast, parameters and optimizer "
                        "state in float32; part of the job key and recorded in memory.precision",
                        &JobSpec::precision, Precision::kFp32),
        F{"set", F::kList, "", false,
          "key=value override of a recipe key (lr, weight_decay, warmup_epochs, eval_every, drop_path_rate, ...) or a "
          "method setting (`petl list` shows every method's keys, defaults and ranges); repeatable",
          [](JobSpec& s, const std::string& v) { s.set.push_back(v); }, [](const JobSpec& s) { return s.set; }},
        on_off<JobSpec>("skip-bad", "skip missing/undecodable images (counted in the record) instead of failing",
                        &JobSpec::skip_bad, true),
        on_off<JobSpec>("allow-missing-classes",
                        "train even when some class has no image in the train split (VTAB-1k's own sun397 split "
                        "always may): a warning names the classes and the record's data.missing_train_classes holds "
                        "them. Without it such a job stops with an error naming the list and the classes",
                        &JobSpec::allow_missing_classes, true),
        on_off<JobSpec>("no-progress", "no progress bars", &JobSpec::progress, false),
        value<JobSpec>(
            "out", "runs",
            "output directory: results.jsonl (one record per job, appended and fsync'd) and checkpoints/",
            [](JobSpec& s, const std::string& v) { s.out_dir = v; }, [](const JobSpec& s) { return s.out_dir; }),
        on_off<JobSpec>("dry-run", "build the model, print trainable parameters and effective settings, do not train",
                        &JobSpec::dry_run, true),
        text<JobSpec>("feature-cache",
                      "train from frozen-backbone features cached in this directory (built when missing; only methods "
                      "whose backbone path is frozen and deterministic: linear, mae_linprobe, vqt, synqt with --set "
                      "backbone_drop_path=off)",
                      &JobSpec::feature_cache),
        integer<JobSpec>(
            "dp",
            "data parallelism over N MPI ranks: run `mpirun -np N petl run --dp N ...`; each rank trains on "
            "its slice of every global batch, gradients are summed (MPI_Allreduce on CPU, NCCL on GPU); "
            "rank 0 writes the record",
            &JobSpec::dp, 1, "1"),
        value<JobSpec>(
            "feature-memory-budget", "auto",
            "with --feature-cache: the most memory the train split's features may hold (e.g. 8G); above it the job "
            "trains live and its record says why. auto = half the memory available at start",
            [](JobSpec& s, const std::string& v) {
              s.feature_memory_budget = v == "auto" ? 0 : parse_size(v, "--feature-memory-budget");
            },
            [](const JobSpec& s) {
              return s.feature_memory_budget == 0 ? std::string("auto") : std::to_string(s.feature_memory_budget);
            }),
        choice<JobSpec>("cache-dtype",
                        "precision of a cache built here: float32 (same losses and logits as live training) or float16",
                        &JobSpec::cache_dtype, CacheDtype::kFloat32),
        value<JobSpec>(
            "micro-batch", "0",
            "run each batch's forward and backward in chunks of at most M images, gradients accumulated before the one "
            "optimizer step (same step up to float summation order; BatchNorm statistics and dropout masks are per "
            "chunk). 0 = the whole batch",
            [](JobSpec& s, const std::string& v) {
              s.micro_batch = to_int(v, "--micro-batch");
              PETL_CHECK(s.micro_batch >= 0, "--micro-batch ", s.micro_batch,
                         ": expected an integer >= 0 (0 = the whole batch)");
            },
            [](const JobSpec& s) { return std::to_string(s.micro_batch); }),
        F{"memory-budget", F::kValue, "", false,
          "keep the training peak under SIZE (e.g. 4G, 512M): the largest micro-batch predicted to fit (a memory model "
          "of "
          "this job fitted on probe steps of doubling size, checked by the meter on the first two steps, the "
          "micro-batch halved if one peaks above SIZE) is used; the record's memory_budget section holds the budget, "
          "the model, the prediction and the measured peak. A job that cannot fit even one image per chunk is recorded "
          "as does_not_fit with its minimum peak, before training",
          [](JobSpec& s, const std::string& v) {
            s.memory_budget = parse_size(v, "--memory-budget");
            PETL_CHECK(s.memory_budget > 0, "--memory-budget '", v, "': expected a size > 0 (e.g. 4G)");
          },
          [](const JobSpec& s) {
            return s.memory_budget > 0 ? std::vector<std::string>{std::to_string(s.memory_budget)}
                                       : std::vector<std::string>{};
          }},
        on_off<JobSpec>("no-checkpoint", "do not save the trained tensors", &JobSpec::save_checkpoint, false),
        on_off<JobSpec>("resume",
                        "if --out already holds a finished record of this exact job (same job key: effective settings, "
                        "backbone and data-list hashes), print it instead of training again; else continue from the "
                        "job's saved training state (<out>/state/<job_key>.safetensors) when there is one",
                        &JobSpec::reuse_done, true),
        value<JobSpec>(
            "state-every", "10",
            "save the job's full training state (trained tensors, optimizer, random generators, evaluations so far) to "
            "<out>/state/ at the first epoch boundary at least this many minutes after the last save; 0 = every epoch, "
            "off = never. A SIGTERM, SIGUSR2 or SIGINT during training also saves it (at the next iteration) before "
            "the "
            "job ends by that signal; --resume continues from it, bit for bit on CPU. Removed once the record is "
            "written",
            [](JobSpec& s, const std::string& v) { s.state_every_min = parse_state_every(v, "--state-every"); },
            [](const JobSpec& s) {
              return s.state_every_min < 0 ? std::string("off") : format_double(s.state_every_min);
            }),
        text<JobSpec>("record-file",
                      "also write this job's record (the reused one with --resume, or the failed one) to FILE as one "
                      "JSON line, for a parent process (the job farm's result file)",
                      &JobSpec::record_file),
    };
    all.insert(all.end(), rest.begin(), rest.end());
    return all;
  }();
  return flags;
}

const char* kRunUsage =
    "usage: petl run --method M --task T --data-root DIR [--backbone FILE | --arch NAME] [--epochs N]\n"
    "                [--benchmark fewshot --shots K --split-seed S]\n"
    "                [--batch-size B] [--seed S] [--protocol best_of_10|final] [--threads N] [--out DIR]\n"
    "                [--set key=value ...] [--dry-run]\n"
    "Trains one method on one task (train split → test split of the recipe) and appends one result record.";

// ------------------------------------------------------------------ petl cache build

const std::vector<Flag<CacheBuildSpec>>& cache_build_flags() {
  using F = Flag<CacheBuildSpec>;
  using S = CacheBuildSpec;
  static const std::vector<F> flags = {
      required<S>("data-root", "root holding <task>/ folders (VTAB-1k txt or json layout)", &S::data_root),
      required<S>("task", "task folder name under --data-root", &S::task),
      choice<S>("benchmark",
                "vtab or fewshot (a few-shot dataset in NOAH's layout: splits train_pool, val, test and "
                "train_<K>shot_seed<S>)",
                &S::benchmark, Benchmark::kVtab),
      text<S>("backbone", "pretrained backbone file (.npz or .safetensors; default: the embedded one)",
              &S::backbone_file),
      text<S>("arch", "architecture, when the backbone file does not say", &S::arch),
      choice<S>("pos-resample", "as petl run --pos-resample (timm or dinov2)", &S::pos_resample, PosResample::kTimm),
      F{"taps", F::kValue, "", true, "what to store: cls (final-norm cls token), kv (every block's K and V) or cls+kv",
        [](S& s, const std::string& v) { s.taps = CacheTaps::parse(v); },
        [](const S& s) { return std::vector<std::string>{s.taps.str()}; }},
      value<S>(
          "splits", "train800val200,test", "comma-separated splits, one cache file each",
          [](S& s, const std::string& v) { s.splits = split_list(v); }, [](const S& s) { return join(s.splits, ","); }),
      choice<S>("dtype", "stored precision: float32 (exact) or float16 (half the disk and RAM)", &S::dtype,
                CacheDtype::kFloat32),
      value<S>(
          "normalisation", "imagenet",
          "image normalisation: imagenet, inception, clip or none (must match the training recipe's)",
          [](S& s, const std::string& v) { s.normalisation = v; }, [](const S& s) { return s.normalisation; }),
      required<S>("out", "cache directory: one <key>.h5 per split (key = hash of the identity)", &S::out_dir),
      value<S>(
          "chunk", "256", "images decoded and passed through the backbone at a time",
          [](S& s, const std::string& v) {
            s.chunk_images = to_int64(v, "--chunk");
            PETL_CHECK(s.chunk_images >= 1, "--chunk ", s.chunk_images, ": expected an integer >= 1");
          },
          [](const S& s) { return std::to_string(s.chunk_images); }),
      choice<S>("precision",
                "fp32 or bf16: the backbone pass under bfloat16 autocast (as `petl run --precision bf16`, whose jobs "
                "use only bf16 caches); part of the cache's identity when bf16",
                &S::precision, Precision::kFp32),
      integer<S>("threads", "intra-op and decoding threads (0 = OMP_NUM_THREADS when set, else the cores free now)",
                 &S::threads, 0, "0"),
      on_off<S>("no-progress", "no progress bars", &S::progress, false),
  };
  return flags;
}

const char* kCacheBuildUsage =
    "usage: petl cache build --data-root DIR --task T --taps cls|kv|cls+kv --out DIR [options]\n"
    "Passes every image of the task's splits through the frozen backbone (eval mode) once and stores\n"
    "the tapped tensors in HDF5 (layout: io/feature_store.h). An existing valid cache is kept.";

}  // namespace

std::optional<JobSpec> parse_run_args(const Args& args, const std::string& method_keys) {
  auto spec = parse_with(run_flags(), args, "petl run options", kRunUsage, {{"set", method_keys}});
  if (spec) spec->argv = args;
  return spec;
}
Args run_args(const JobSpec& spec) { return write_with(run_flags(), spec); }
Args run_command(const JobSpec& spec) {
  Args a = {"run"};
  for (auto& x : run_args(spec)) a.push_back(std::move(x));
  return a;
}
po::options_description run_options_description(const std::string& method_keys) {
  return describe(run_flags(), "petl run options", {{"set", method_keys}});
}

std::optional<CacheBuildSpec> parse_cache_build_args(const Args& args) {
  return parse_with(cache_build_flags(), args, "petl cache build options", kCacheBuildUsage);
}
Args cache_build_args(const CacheBuildSpec& spec) { return write_with(cache_build_flags(), spec); }
Args cache_build_command(const CacheBuildSpec& spec) {
  Args a = {"cache", "build"};
  for (auto& x : cache_build_args(spec)) a.push_back(std::move(x));
  return a;
}

Args bundle_command(const std::vector<Args>& run_commands) {
  Args a = {"bundle"};
  for (const auto& c : run_commands) {
    Args job(c.begin() + (!c.empty() && c.front() == "run" ? 1 : 0), c.end());
    a.insert(a.end(), {"--job", nlohmann::json(job).dump()});
  }
  return a;
}

std::vector<Args> bundle_members(const std::vector<std::string>& job_json) {
  std::vector<Args> out;
  for (size_t i = 0; i < job_json.size(); ++i) {
    Args a;
    try {
      a = nlohmann::json::parse(job_json[i]).get<Args>();
    } catch (const nlohmann::json::exception& e) {
      PETL_FAIL("petl bundle: --job ", i + 1, ": expected a JSON array of strings (petl run arguments): ", e.what());
    }
    if (!a.empty() && a.front() == "run") a.erase(a.begin());
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace petl::cli

// `petl list`, `petl run`, `petl eval`.
#include <H5Cpp.h>
#include <mpi.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "app/cli_util.h"
#include "core/paths.h"
#include "core/system.h"
#include "core/text.h"
#include "app/commands.h"
#include "datasets/vtab.h"
#include "harness/train/evaluate.h"
#include "harness/train/job.h"
#include "methods/method.h"
#include "harness/train/recipe.h"
#include "harness/train/task_data.h"
#include "io/journal.h"
#include "io/tensor_file.h"
#include "models/checkpoint.h"

namespace petl::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

int cmd_list(const Args& args) {
  po::options_description d("petl list options");
  std::string root;
  d.add_options()("data-root", po::value(&root), "also list the tasks found under this directory");
  po::variables_map vm;
  if (!parse_args(args, d, vm, "usage: petl list [--data-root DIR]")) return 0;
  std::printf("methods (grad through backbone = heavy memory; --set options: key = default  range  meaning):\n");
  for (auto& n : MethodRegistry::instance().names()) {
    auto& m = MethodRegistry::instance().get(n);
    std::printf("  %-14s grad-through-backbone=%-3s recipe=%-9s %s\n", n.c_str(),
                probe_needs(n).grad_through_backbone ? "yes" : "no", m.default_recipe.c_str(), m.description.c_str());
    for (auto& o : m.options) {
      const std::string range = o.type == "int" || o.type == "double" ? o.range.str() : o.type;
      std::printf("      %-22s = %-7s %-12s %s\n", o.key.c_str(), o.default_text.c_str(), range.c_str(),
                  o.meaning.c_str());
    }
  }
  std::printf("architectures:\n");
  for (auto& a : known_archs()) {
    auto c = vit_config_by_name(a);
    std::printf("  %-30s img %d patch %d dim %d depth %d heads %d\n", a.c_str(), c.img_size, c.patch_size,
                c.embed_dim, c.depth, c.num_heads);
  }
  std::printf("evaluation protocols:\n  best_of_10  max test accuracy over the evaluations every eval_every epochs\n"
              "  final       test accuracy after the last epoch\n");
  if (!root.empty()) {
    std::printf("tasks under %s:\n", root.c_str());
    for (auto& t : data::list_tasks(root))
      std::printf("  %-22s classes %-4d format %-4s %s\n", t.name.c_str(), t.num_classes, t.format.c_str(),
                  t.dir.c_str());
  }
  return 0;
}

namespace {
void add_job_options(po::options_description& d, JobSpec& s, std::vector<std::string>& sets) {
  d.add_options()
    ("method", po::value(&s.method)->required(), "method name (see `petl list`)")
    ("task", po::value(&s.task)->required(), "task folder name under --data-root (aliases like cifar100 accepted)")
    ("data-root", po::value(&s.data_root)->required(), "root holding <task>/ folders in the VTAB-1k txt or json format")
    ("backbone", po::value(&s.backbone_file), "pretrained backbone: Google ViT .npz or timm .safetensors (default: the embedded petl_vit_mini_p8_32)")
    ("arch", po::value(&s.arch), "architecture (timm name, e.g. vit_base_patch16_224_in21k); without --backbone only for --dry-run")
    ("recipe", po::value(&s.recipe), "training recipe from config/recipes.yaml (default: the method's)")
    ("epochs", po::value(&s.epochs), "override the recipe's epochs")
    ("batch-size", po::value(&s.batch_size), "override the recipe's batch size")
    ("seed", po::value(&s.seed), "override the recipe's seed")
    ("protocol", po::value(&s.protocol)->default_value("best_of_10"), "headline accuracy: best_of_10 | final (both are recorded)")
    ("threads", po::value(&s.threads)->default_value(0), "intra-op threads (0 = OMP_NUM_THREADS when set, else the cores free now, measured over 0.1 s)")
    ("device", po::value(&s.device)->default_value("cpu"), "cpu, cuda or cuda:N (cuda needs a CUDA LibTorch build; memory is then the caching allocator's peak allocated/reserved)")
    ("precision", po::value(&s.precision)->default_value("fp32"), "fp32 (exact; the reference code's) or bf16: every forward pass (the frozen backbone's, the trainable path's, evaluation, cache builds) under bfloat16 autocast, parameters and optimizer state in float32; part of the job key and recorded in memory.precision")
    ("set", po::value(&sets)->composing(), "key=value override of a recipe key (lr, weight_decay, warmup_epochs, eval_every, drop_path_rate, ...) or a method setting (synqt: token_nums, attn_scale, ffn_scale, feat_scale, backbone_drop_path, kem_drop_path); repeatable")
    ("skip-bad", po::bool_switch(&s.skip_bad), "skip missing/undecodable images (counted in the record) instead of failing")
    ("no-progress", "no progress bars");
}
}  // namespace

// `petl run`'s options (also each job of `petl bundle`); false when --help was printed.
bool parse_run_options(const Args& args, JobSpec& spec, std::string& record_file) {
  std::string feature_budget, state_every, memory_budget;
  std::vector<std::string> sets;
  po::options_description d("petl run options");
  add_job_options(d, spec, sets);
  d.add_options()("out", po::value(&spec.out_dir)->default_value("runs"),
                  "output directory: results.jsonl (one record per job, appended and fsync'd) and checkpoints/")
      ("dry-run", po::bool_switch(&spec.dry_run), "build the model, print trainable parameters and effective settings, do not train")
      ("feature-cache", po::value(&spec.feature_cache), "train from frozen-backbone features cached in this directory (built when missing; only methods whose backbone path is frozen and deterministic: linear, vqt, synqt with --set backbone_drop_path=off)")
      ("dp", po::value(&spec.dp)->default_value(1), "data parallelism over N MPI ranks: run `mpirun -np N petl run --dp N ...`; each rank trains on its slice of every global batch, gradients are summed (MPI_Allreduce on CPU, NCCL on GPU); rank 0 writes the record")
      ("feature-memory-budget", po::value(&feature_budget)->default_value("auto"), "with --feature-cache: the most memory the train split's features may hold (e.g. 8G); above it the job trains live and its record says why. auto = half the memory available at start")
      ("cache-dtype", po::value(&spec.cache_dtype)->default_value("float32"), "precision of a cache built here: float32 (same losses and logits as live training) or float16")
      ("micro-batch", po::value(&spec.micro_batch)->default_value(0), "run each batch's forward and backward in chunks of at most M images, gradients accumulated before the one optimizer step (same step up to float summation order; BatchNorm statistics and dropout masks are per chunk). 0 = the whole batch")
      ("memory-budget", po::value(&memory_budget), "keep the training peak under SIZE (e.g. 4G, 512M): the largest micro-batch predicted to fit (a memory model of this job fitted on probe steps of doubling size, checked by the meter on the first two steps, the micro-batch halved if one peaks above SIZE) is used; the record's memory_budget section holds the budget, the model, the prediction and the measured peak. A job that cannot fit even one image per chunk is recorded as does_not_fit with its minimum peak, before training")
      ("no-checkpoint", "do not save the trained tensors")
      ("resume", "if --out already holds a finished record of this exact job (same job key: effective settings, backbone and data-list hashes), print it instead of training again; else continue from the job's saved training state (<out>/state/<job_key>.safetensors) when there is one")
      ("state-every", po::value(&state_every)->default_value("10"), "save the job's full training state (trained tensors, optimizer, random generators, evaluations so far) to <out>/state/ at the first epoch boundary at least this many minutes after the last save; 0 = every epoch, off = never. A SIGTERM, SIGUSR2 or SIGINT during training also saves it (at the next iteration) before the job ends by that signal; --resume continues from it, bit for bit on CPU. Removed once the record is written")
      ("record-file", po::value(&record_file), "also write this job's record (the reused one with --resume, or the failed one) to FILE as one JSON line, for a parent process (petl demo's workers)");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl run --method M --task T --data-root DIR [--backbone FILE | --arch NAME] [--epochs N]\n"
                  "                [--batch-size B] [--seed S] [--protocol best_of_10|final] [--threads N] [--out DIR]\n"
                  "                [--set key=value ...] [--dry-run]\n"
                  "Trains one method on one task (train split → test split of the recipe) and appends one result record."))
    return false;
  spec.set = sets;
  if (feature_budget != "auto") spec.feature_memory_budget = parse_size(feature_budget, "--feature-memory-budget");
  spec.progress = !vm.count("no-progress");
  spec.save_checkpoint = !vm.count("no-checkpoint");
  spec.reuse_done = vm.count("resume") > 0;
  spec.state_every_min = parse_state_every(state_every, "--state-every");
  PETL_CHECK(spec.micro_batch >= 0, "--micro-batch ", spec.micro_batch, ": expected an integer >= 0 (0 = the whole batch)");
  if (!memory_budget.empty()) {
    spec.memory_budget = parse_size(memory_budget, "--memory-budget");
    PETL_CHECK(spec.memory_budget > 0, "--memory-budget '", memory_budget, "': expected a size > 0 (e.g. 4G)");
  }
  spec.argv = args;
  return true;
}

int cmd_run(const Args& args) {
  JobSpec spec;
  std::string record_file;
  if (!parse_run_options(args, spec, record_file)) return 0;
  // --dp N: one job over the N ranks of this MPI job (initialised here, finalised on return).
  struct MpiSession {
    bool mine = false;
    int rank = 0;
    explicit MpiSession(bool on) {
      int init = 0;
      MPI_Initialized(&init);
      if (on && !init) {
        MPI_Init(nullptr, nullptr);
        mine = true;
      }
      if (on) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    }
    ~MpiSession() {
      if (mine) MPI_Finalize();
    }
  } mpi(spec.dp > 1);
  auto write_record_file = [&](const Record& r) {
    if (!record_file.empty() && mpi.rank == 0) io::append_json_line(record_file, to_json(r), "record file");
  };
  Record rec;
  try {
    rec = run_job(spec);
  } catch (const std::exception& e) {
    if (!spec.dry_run && mpi.rank == 0) {
      const Record f = failed_record(spec, e.what());
      try {
        if (!spec.out_dir.empty()) append_record(spec.out_dir, f);
        write_record_file(f);
      } catch (const std::exception& w) {  // the job's own error is the one to report
        std::fprintf(stderr, "[petl] the failed record was not written: %s\n", w.what());
      }
    }
    throw;
  }
  if (mpi.rank != 0) return 0;
  write_record_file(rec);
  if (spec.dry_run) {
    std::printf("method %s on %s: %lld trainable parameters (backbone %lld)\n", spec.method.c_str(), rec.task.c_str(),
                (long long)rec.trainable_params.value_or(0), (long long)rec.backbone_params.value_or(0));
    std::printf("%s\n", rec.settings.dump(2).c_str());
    return 0;
  }
  if (rec.status == "does_not_fit") {
    std::printf("%s %s seed %d: does not fit the memory budget (%s); record appended to %s/results.jsonl\n",
                spec.method.c_str(), rec.task.c_str(), rec.seed, rec.extra.value("memory_budget", nlohmann::json()).dump().c_str(),
                spec.out_dir.c_str());
    return 0;
  }
  std::printf("%s %s seed %d: accuracy %.2f%% (%s), trainable %lld, peak train %.1f MiB, %.1f img/s\n",
              spec.method.c_str(), rec.task.c_str(), rec.seed, rec.accuracy.value_or(0), spec.protocol.c_str(),
              (long long)rec.trainable_params.value_or(0), rec.memory.value("peak_train_mib", 0.0),
              rec.timing ? rec.timing->train_images_per_s : 0.0);
  if (rec.reused)
    std::printf("reused the finished record %s in %s/results.jsonl (nothing trained)\n", rec.job_key.c_str(),
                spec.out_dir.c_str());
  else
    std::printf("record appended to %s/results.jsonl\n", spec.out_dir.c_str());
  return 0;
}

namespace {
void write_logits_h5(const std::string& path, const torch::Tensor& logits, const torch::Tensor& labels,
                     const std::vector<std::string>& paths, const std::string& method, const std::string& task) {
  auto l = logits.contiguous();
  H5::H5File f(path + ".tmp", H5F_ACC_TRUNC);
  hsize_t dims[2] = {hsize_t(l.size(0)), hsize_t(l.size(1))};
  H5::DataSpace sp(2, dims);
  auto ds = f.createDataSet("logits", H5::PredType::IEEE_F32LE, sp);
  ds.write(l.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
  hsize_t n[1] = {hsize_t(labels.size(0))};
  H5::DataSpace sp1(1, n);
  auto lab = labels.contiguous();
  f.createDataSet("labels", H5::PredType::STD_I64LE, sp1).write(lab.data_ptr<int64_t>(), H5::PredType::NATIVE_INT64);
  H5::StrType st(H5::PredType::C_S1, H5T_VARIABLE);
  std::vector<const char*> cp;
  for (auto& p : paths) cp.push_back(p.c_str());
  if (!cp.empty()) f.createDataSet("paths", st, sp1).write(cp.data(), st);
  H5::DataSpace scalar(H5S_SCALAR);
  f.createAttribute("method", st, scalar).write(st, std::string(method));
  f.createAttribute("task", st, scalar).write(st, std::string(task));
  f.close();
  fs::rename(path + ".tmp", path);
}
}  // namespace

int cmd_eval(const Args& args) {
  std::string method_name, task_name, root, backbone, ckpt, split, logits_path, arch, device = "cpu",
                                                                                     precision = "fp32";
  int threads = 0, batch = 512;
  std::vector<std::string> sets;
  po::options_description d("petl eval options");
  d.add_options()("method", po::value(&method_name)->required(), "method name")
      ("task", po::value(&task_name)->required(), "task under --data-root")
      ("data-root", po::value(&root)->required(), "data root (VTAB-1k txt or json layout)")
      ("backbone", po::value(&backbone), "backbone file the checkpoint was trained on (default: the embedded one)")
      ("arch", po::value(&arch), "architecture, when the backbone file does not say")
      ("checkpoint", po::value(&ckpt)->required(), "safetensors of the trained tensors (petl's or exported from the reference code, same names)")
      ("split", po::value(&split)->default_value("test"), "split to evaluate")
      ("logits", po::value(&logits_path), "write logits in file-list order: .h5 (datasets logits (N,C) f32, labels (N,) i64, paths (N,) str) or .npy (logits only)")
      ("batch-size", po::value(&batch)->default_value(512), "evaluation batch size")
      ("threads", po::value(&threads)->default_value(0), "intra-op threads (0 = OMP_NUM_THREADS when set, else the cores free now)")
      ("device", po::value(&device)->default_value(device), "cpu, cuda or cuda:N (CUDA LibTorch builds)")
      ("precision", po::value(&precision)->default_value(precision), "fp32 or bf16 (the forward passes under bfloat16 autocast)")
      ("set", po::value(&sets)->composing(), "method setting key=value (e.g. token_nums=4), when the checkpoint's metadata does not carry it")
      ("no-progress", "no progress bars");
  po::variables_map vm;
  if (!parse_args(args, d, vm, "usage: petl eval --method M --task T --data-root DIR --backbone FILE --checkpoint FILE [--split test] [--logits FILE]"))
    return 0;
  std::map<std::string, std::string> meta;
  auto tensors = load_named_tensors(ckpt, &meta);
  // Method settings the checkpoint was trained with, below the ones given here.
  std::set<std::string> given, from_checkpoint;
  for (auto& kv : sets) given.insert(kv.substr(0, kv.find('=')));
  if (meta.count("method_settings")) {
    json ms;
    try {
      ms = json::parse(meta["method_settings"]);
    } catch (const json::exception& e) {
      PETL_FAIL(ckpt, ": metadata 'method_settings' is not JSON: ", e.what());
    }
    for (auto& [k, v] : ms.items())
      if (!k.empty() && k[0] != '_' && !given.count(k)) {
        sets.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
        from_checkpoint.insert(k);
      }
  }
  JobSpec spec;
  spec.method = method_name;
  spec.task = task_name;
  spec.data_root = root;
  spec.backbone_file = backbone;
  spec.arch = arch;
  spec.threads = threads;
  spec.device = device;
  spec.precision = precision;
  spec.set = sets;
  const ResolvedJob job = resolve_job(spec);
  const auto& task = job.task;
  int num_classes = task.num_classes;
  const std::string head_name = tensors.count("head.1.weight") ? "head.1.weight" : "head.weight";  // BN heads: head.1
  if (tensors.count(head_name)) {
    int c = int(tensors[head_name].size(0));
    PETL_CHECK(num_classes <= 0 || c == num_classes, ckpt, ": ", head_name, " has ", c, " classes but task ", task.name,
               " has ", num_classes, " (class-count mismatch)");
    num_classes = c;
  }
  PETL_CHECK(num_classes > 0, "cannot tell the number of classes of task ", task.name);
  JobBackbone bb = load_job_backbone(job);
  const auto& cfg = bb.model->cfg_;
  auto method = build_job_method(job, bb.model, num_classes, from_checkpoint);
  // Strict load of the trainable tensors (and trained buffers) by name.
  {
    torch::NoGradGuard ng;
    std::set<std::string> seen;
    for (auto& [name, p] : method->checkpoint_tensors()) {
      auto it = tensors.find(name);
      PETL_CHECK(it != tensors.end(), ckpt, ": missing tensor '", name, "' of shape ", p.sizes());
      PETL_CHECK(it->second.sizes() == p.sizes(), ckpt, ": tensor '", name, "' has shape ", it->second.sizes(),
                 ", method ", method_name, " expects ", p.sizes());
      p.copy_(it->second);
      seen.insert(name);
    }
    for (auto& [k, v] : tensors)
      PETL_CHECK(seen.count(k), ckpt, ": unexpected tensor '", k, "' ", v.sizes(), " (not trainable in ", method_name, ")");
  }
  data::LoadOptions lo;
  lo.image_size = cfg.img_size;
  lo.threads = job.threads;
  lo.progress = !vm.count("no-progress");
  lo.norm = data::parse_normalisation(job.recipe().normalisation);
  auto st = load_split_tensors(task, split, lo);
  bb.model->to(job.device);
  method->to(job.device);
  torch::Tensor logits;
  auto r = evaluate(*method, st.images, st.labels, batch, logits_path.empty() ? nullptr : &logits, lo.progress,
                    "eval " + method_name + "/" + task.name, job.device);
  std::printf("%s %s/%s: accuracy %.2f%% on %lld images (backbone sha256 %s)\n", method_name.c_str(), task.name.c_str(),
              split.c_str(), r.accuracy, (long long)r.n, bb.info["sha256"].get<std::string>().substr(0, 12).c_str());
  if (!logits_path.empty()) {
    if (logits_path.size() > 4 && logits_path.substr(logits_path.size() - 4) == ".npy") {
      io::write_npy(logits_path, from_torch(logits.to(torch::kFloat32)));
    } else {
      write_logits_h5(logits_path, logits.to(torch::kFloat32), st.labels, st.meta.rel_paths, method_name, task.name);
    }
    std::printf("logits (%lld × %lld) written to %s\n", (long long)logits.size(0), (long long)logits.size(1),
                logits_path.c_str());
  }
  return 0;
}

}  // namespace petl::cli

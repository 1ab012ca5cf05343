// `petl list`, `petl run`, `petl eval`.
#include <mpi.h>

#include <H5Cpp.h>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "app/cli_util.h"
#include "app/commands.h"
#include "app/job_args.h"
#include "core/hashing.h"
#include "core/paths.h"
#include "core/system.h"
#include "core/text.h"
#include "datasets/fewshot.h"
#include "datasets/vtab.h"
#include "harness/train/evaluate.h"
#include "harness/train/job.h"
#include "harness/train/recipe.h"
#include "harness/train/selection.h"
#include "harness/train/task_data.h"
#include "io/journal.h"
#include "io/tensor_file.h"
#include "methods/method.h"
#include "models/arch_registry.h"
#include "models/checkpoint.h"

namespace petl::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
// `petl list --benchmark fewshot`: each dataset's train lists (shots × split seeds), list sizes, classes.
void print_fewshot_datasets(const std::string& root) {
  const auto found = data::list_fewshot_datasets(root);
  std::printf("few-shot datasets under %s (NOAH's layout; %zu found):\n", root.c_str(), found.size());
  for (const auto& d : found) {
    std::map<int, std::vector<std::string>> seeds;  // shots → split seeds
    for (const auto& [k, s] : d.train_lists) seeds[k].push_back(std::to_string(s));
    std::vector<std::string> lists;
    for (const auto& [k, s] : seeds) lists.push_back(std::to_string(k) + "-shot seeds " + join(s, ","));
    std::printf("  %-18s classes %-4d (%d in the test list)  val %s  test %s  %s\n      train lists: %s\n",
                d.task.name.c_str(), d.task.num_classes, d.test_classes,
                d.val_lines < 0 ? "-" : std::to_string(d.val_lines).c_str(),
                d.test_lines < 0 ? "-" : std::to_string(d.test_lines).c_str(), d.task.dir.c_str(),
                lists.empty() ? "none" : join(lists, "; ").c_str());
  }
  if (found.empty())
    std::printf(
        "  (none: a dataset folder holds annotations/test_meta.list and "
        "annotations/train_meta.list.num_shot_<K>.seed_<S>)\n");
}
}  // namespace

int cmd_list(const Args& args) {
  po::options_description d("petl list options");
  std::string root, benchmark = "vtab";
  d.add_options()("data-root", po::value(&root), "also list the tasks found under this directory")(
      "benchmark", po::value(&benchmark)->default_value(benchmark),
      "how to read --data-root: vtab (VTAB-1k task folders) or fewshot (NOAH's few-shot datasets: their shots, "
      "split seeds, list sizes and classes)");
  po::variables_map vm;
  if (!parse_args(args, d, vm, "usage: petl list [--data-root DIR [--benchmark vtab|fewshot]]")) return 0;
  const Benchmark bench = parse_enum<Benchmark>(benchmark, "--benchmark");
  std::printf("methods (grad through backbone = heavy memory; --set options: key = default  range  meaning):\n");
  for (auto& n : MethodRegistry::instance().names()) {
    auto& m = MethodRegistry::instance().get(n);
    std::printf(
        "  %-14s grad-through-backbone=%-3s recipe=%-9s %s\n", n.c_str(),
        probe_needs(n).grad_through_backbone ? "yes" : "no", m.default_recipe.c_str(),
        (m.description + (m.family.empty() ? "" : " [made for the " + m.family + " family; not in `petl demo`]"))
            .c_str());
    for (auto& o : m.options) {
      const std::string range = o.type == OptionType::kInt || o.type == OptionType::kDouble ? o.range.str()
                                : o.type == OptionType::kChoice                             ? join(o.choices, "|")
                                                                                            : to_string(o.type);
      std::printf("      %-22s = %-7s %-12s %s\n", o.key.c_str(), o.default_text.c_str(), range.c_str(),
                  o.meaning.c_str());
    }
  }
  std::printf("architectures:  (family, pooling, checkpoint layouts; README: Backbone families)\n");
  for (const auto& e : arch_registry()) {
    const VitConfig& c = e.config;
    std::vector<std::string> layouts;
    for (const auto& l : e.layouts) layouts.push_back(l.name);
    std::printf("  %-30s img %d patch %d dim %d depth %d heads %d  %s, %s, %s%s\n", e.name.c_str(), c.img_size,
                c.patch_size, c.embed_dim, c.depth, c.num_heads, to_string(e.family).c_str(), to_string(c.pool).c_str(),
                join(layouts, "|").c_str(), e.aliases.empty() ? "" : (" (also " + join(e.aliases, ", ") + ")").c_str());
  }
  std::printf(
      "evaluation protocols:\n  best_of_10  max test accuracy over the evaluations every eval_every epochs\n"
      "  final       test accuracy after the last epoch\n"
      "  val_select  settings and epoch count chosen on val200 (train800 searches over a grid, "
      "config/val_grids.yaml),\n"
      "              one final run on train800val200, its test accuracy after the last epoch\n");
  if (!root.empty() && bench == Benchmark::kFewshot) {
    print_fewshot_datasets(root);
  } else if (!root.empty()) {
    std::printf("tasks under %s:\n", root.c_str());
    for (auto& t : data::list_tasks(root))
      std::printf("  %-22s classes %-4d format %-4s %s\n", t.name.c_str(), t.num_classes, t.format.c_str(),
                  t.dir.c_str());
  }
  return 0;
}

std::string method_keys_help() {
  std::string out = "; the methods' keys (`petl list` shows defaults, ranges and meanings):";
  for (const auto& n : MethodRegistry::instance().names()) {
    const auto& m = MethodRegistry::instance().get(n);
    if (m.options.empty()) continue;
    std::vector<std::string> keys;
    for (const auto& o : m.options) keys.push_back(o.key);
    out += " " + n + ": " + join(keys, ", ") + ";";
  }
  out.back() = '.';
  return out;
}

namespace {
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
};

// One job: its record appended (a failed one too), a summary line printed.
int run_one(const JobSpec& spec, const MpiSession& mpi) {
  auto write_record_file = [&](const Record& r) {
    if (!spec.record_file.empty() && mpi.rank == 0) io::append_json_line(spec.record_file, to_json(r), "record file");
  };
  Record rec;
  try {
    rec = run_job(spec);
  } catch (const ArgumentError&) {  // no job to record: its arguments are wrong (the message says which)
    throw;
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
  if (rec.status == RecordStatus::kDoesNotFit) {
    std::printf("%s %s seed %d: does not fit the memory budget (%s); record appended to %s/results.jsonl\n",
                spec.method.c_str(), rec.task.c_str(), rec.seed, rec.memory_budget.dump().c_str(),
                spec.out_dir.c_str());
    return 0;
  }
  std::printf("%s %s seed %d: accuracy %.2f%% (%s), trainable %lld, peak train %.1f MiB, %.1f img/s\n",
              spec.method.c_str(), rec.task.c_str(), rec.seed, rec.accuracy.value_or(0), to_string(spec.protocol),
              (long long)rec.trainable_params.value_or(0), rec.memory.value("peak_train_mib", 0.0),
              rec.timing ? rec.timing->train_images_per_s : 0.0);
  if (rec.reused)
    std::printf("reused the finished record %s in %s/results.jsonl (nothing trained)\n", rec.job_key.c_str(),
                spec.out_dir.c_str());
  else
    std::printf("record appended to %s/results.jsonl\n", spec.out_dir.c_str());
  return 0;
}

// `petl run --protocol val_select` alone: every point of the method's default grid (a --set of a grid
// key pins it) as a search job in <out>/search/<point key>, then the final run chosen from them.
int run_val_select(const JobSpec& spec, const MpiSession& mpi) {
  std::string source;
  auto grid = default_val_grid(spec.method, &source);
  for (const auto& kv : spec.set) grid.erase(kv.substr(0, kv.find('=')));
  JobSpec final_spec = spec;
  for (const auto& point : grid_points(grid)) {
    JobSpec s = search_spec(spec, point);
    s.out_dir = (std::filesystem::path(spec.out_dir) / "search" / key_of_text(nlohmann::json(point).dump())).string();
    s.record_file.clear();
    std::printf("val_select search %s:", s.out_dir.c_str());
    for (const auto& [k, v] : point) std::printf(" %s=%s", k.c_str(), v.c_str());
    std::printf("\n");
    run_one(s, mpi);
    final_spec.select_from.push_back((std::filesystem::path(s.out_dir) / "results.jsonl").string());
  }
  std::printf("val_select: %zu search job(s) on train800 -> val200 (grid: %s); the final run on train800val200\n",
              final_spec.select_from.size(), source.empty() ? "config/val_grids.yaml" : source.c_str());
  return run_one(final_spec, mpi);
}
}  // namespace

int cmd_run(const Args& args) {
  const std::optional<JobSpec> parsed = parse_run_args(args, method_keys_help());
  if (!parsed) return 0;
  const JobSpec& spec = *parsed;
  const MpiSession mpi(spec.dp > 1);
  if (spec.protocol == Protocol::kValSelect && spec.stage.empty() && spec.select_from.empty() && !spec.dry_run)
    return run_val_select(spec, mpi);
  return run_one(spec, mpi);
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
  const std::string set_help =
      "method setting key=value (e.g. token_nums=4), when the checkpoint's metadata does "
      "not carry it" +
      method_keys_help();
  int threads = 0, batch = 512;
  std::vector<std::string> sets;
  po::options_description d("petl eval options");
  d.add_options()("method", po::value(&method_name),
                  "method name (default: the one in the checkpoint's metadata; an error when they differ)")(
      "task", po::value(&task_name), "task under --data-root (default: the checkpoint's)")(
      "data-root", po::value(&root)->required(), "data root (VTAB-1k txt or json layout)")(
      "backbone", po::value(&backbone), "backbone file the checkpoint was trained on (default: the embedded one)")(
      "arch", po::value(&arch), "architecture, when the backbone file does not say")(
      "checkpoint", po::value(&ckpt)->required(),
      "safetensors of the trained tensors (petl's or exported from the reference code, same names)")(
      "split", po::value(&split)->default_value("test"), "split to evaluate")(
      "logits", po::value(&logits_path),
      "write logits in file-list order: .h5 (datasets logits (N,C) f32, labels (N,) i64, paths (N,) str) or .npy "
      "(logits only)")("batch-size", po::value(&batch)->default_value(512), "evaluation batch size")(
      "threads", po::value(&threads)->default_value(0),
      "intra-op threads (0 = OMP_NUM_THREADS when set, else the cores free now)")(
      "device", po::value(&device)->default_value(device), "cpu, cuda or cuda:N (CUDA LibTorch builds)")(
      "precision", po::value(&precision)->default_value(precision),
      "fp32 or bf16 (the forward passes under bfloat16 autocast)")("set", po::value(&sets)->composing(),
                                                                   set_help.c_str())("no-progress", "no progress bars");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl eval --checkpoint FILE --data-root DIR [--backbone FILE] [--method M] [--task T] "
                  "[--split test] [--logits FILE]\n"
                  "A petl checkpoint names its method and task in its metadata; one exported from the reference "
                  "code needs --method and --task."))
    return 0;
  std::map<std::string, std::string> meta;
  auto tensors = load_named_tensors(ckpt, &meta);
  // The method and task the checkpoint says it was trained with; what is given must agree.
  const std::string ck_method = meta.count("method") ? meta["method"] : "";
  if (method_name.empty()) {
    PETL_CHECK(!ck_method.empty(), "--checkpoint ", ckpt,
               ": its metadata names no method (not written by petl): give --method");
    method_name = ck_method;
  } else {
    PETL_CHECK(ck_method.empty() || ck_method == method_name, "--checkpoint ", ckpt, " was trained with method '",
               ck_method, "' (its metadata), not '", method_name, "': omit --method or pass --method ", ck_method);
  }
  if (task_name.empty()) {
    PETL_CHECK(meta.count("task"), "--checkpoint ", ckpt, ": its metadata names no task: give --task");
    task_name = meta["task"];
  }
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
  spec.precision = parse_enum<Precision>(precision, "--precision");
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
  if (meta.count("backbone_sha256") && meta["backbone_sha256"] != bb.info["sha256"].get<std::string>())
    std::fprintf(stderr,
                 "[petl] warning: %s was trained on the backbone with sha256 %s; --backbone %s has %s (the same "
                 "weights in another file format are fine; other weights give meaningless logits)\n",
                 ckpt.c_str(), meta["backbone_sha256"].substr(0, 12).c_str(),
                 backbone.empty() ? "(the embedded one)" : backbone.c_str(),
                 bb.info["sha256"].get<std::string>().substr(0, 12).c_str());
  auto method = build_job_method(job, bb.model, num_classes, from_checkpoint);
  // Strict load of the trainable tensors (and trained buffers) by name.
  {
    torch::NoGradGuard ng;
    std::set<std::string> seen;
    for (auto& [name, p] : method->checkpoint_tensors()) {
      auto it = tensors.find(name);
      if (it == tensors.end()) {
        std::vector<std::string> held;
        for (auto& [k, v] : tensors)
          if (held.size() < 4) held.push_back(k);
        PETL_FAIL(ckpt, ": missing tensor '", name, "' of shape ", p.sizes(), " that method ", method_name,
                  " trains; the checkpoint holds ", tensors.size(), " tensors (", join(held, ", "),
                  tensors.size() > held.size() ? ", ..." : "", ")");
      }
      PETL_CHECK(it->second.sizes() == p.sizes(), ckpt, ": tensor '", name, "' has shape ", it->second.sizes(),
                 ", method ", method_name, " expects ", p.sizes());
      p.copy_(it->second);
      seen.insert(name);
    }
    for (auto& [k, v] : tensors)
      PETL_CHECK(seen.count(k), ckpt, ": unexpected tensor '", k, "' ", v.sizes(), " (not trainable in ", method_name,
                 ")");
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

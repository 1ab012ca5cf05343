// A job's record, step by step (see job_record.h).
#include "harness/train/job_record.h"

#include <filesystem>

#include "core/build_info.h"
#include "core/error.h"
#include "core/system.h"
#include "harness/train/job_state.h"
#include "io/journal.h"
#include "models/checkpoint.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

Provenance job_provenance(const JobSpec& spec, const threads::ThreadChoice* threading) {
  Provenance p;
  p.git_commit = git_commit();
  p.host = host_name();
  p.threads = threading ? threading->threads : spec.threads;
  if (threading) {
    p.threads_chosen_by = threading->chosen_by;
    p.cores = threading->cores;
    if (threading->free_cores >= 0) p.free_cores = threading->free_cores;
  }
  const threads::WaitPolicy w = threads::wait_policy();
  p.omp_wait_policy = w.policy;
  p.omp_wait_policy_by = w.by;
  p.libtorch_version = libtorch_version();
  p.time_utc = now_utc();
  p.argv = spec.argv;
  return p;
}

namespace {
void set_benchmark(Record& r, const JobSpec& spec) {
  if (spec.benchmark != Benchmark::kFewshot) return;
  r.benchmark = to_string(spec.benchmark);
  r.shots = spec.shots;
  r.split_seed = spec.split_seed;
}
}  // namespace

Record failed_record(const JobSpec& spec, const std::string& message) {
  Record r = petl::failed_record(spec.method, spec.task, spec.seed == JobSpec::kRecipeValue ? -1 : spec.seed,
                                 spec.protocol, message, job_provenance(spec));
  set_benchmark(r, spec);
  if (spec.protocol == Protocol::kValSelect) r.stage = spec.stage == "search" ? "search" : "final";
  return r;
}

void append_record(const std::string& out_dir, const Record& record) {
  io::append_json_line((fs::path(out_dir) / "results.jsonl").string(), to_json(record), "results file");
}

namespace job_record {

// The last ok record with this job key whose checkpoint (if any) still exists, or nullopt.
std::optional<Record> find_finished(const std::string& out_dir, const std::string& key) {
  const std::string path = (fs::path(out_dir) / "results.jsonl").string();
  auto lines = io::read_json_lines(path, "results file");       // a torn last line after a kill is skipped
  if (lines.torn) io::cut_torn_tail_now(path, "results file");  // ... and cut, under the writers' lock
  std::optional<Record> found;
  for (size_t i = 0; i < lines.objects.size(); ++i) {
    const json& j = lines.objects[i];
    auto text = [&](const char* field) {  // a field that is absent or not a string reads as ""
      auto it = j.find(field);
      return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (!is_result_record(j) || text("job_key") != key || text("status") != to_string(RecordStatus::kOk)) continue;
    Record r = record_from_json(j, path + ":" + std::to_string(lines.line_numbers[i]));
    if (!r.checkpoint.empty() && !fs::exists(r.checkpoint)) continue;
    found = std::move(r);
  }
  return found;
}

// Identity, settings, backbone and provenance: everything known before training.
Record record_header(const ResolvedJob& job, Method& method, const JobBackbone& bb) {
  const auto& spec = job.spec;
  const auto& recipe = job.recipe();
  auto needs = method.needs();
  Record r;
  r.status = spec.dry_run ? RecordStatus::kDryRun : RecordStatus::kOk;
  r.method = spec.method;
  r.task = job.task.name;
  r.seed = recipe.seed;
  r.protocol = spec.protocol;
  set_benchmark(r, spec);
  if (spec.protocol == Protocol::kValSelect) {
    r.stage = spec.stage == "search" ? "search" : "final";
    r.selection = job.selection;
  }
  r.trainable_params = method.num_trainable();
  r.backbone_params = bb.model->num_parameters();
  r.settings = {{"recipe", recipe.to_map()},
                {"recipe_source", recipe.source},
                {"recipe_task_overrides", job.eff.task_overrides},
                {"method", method.effective_settings()},
                {"requested", job.eff.requested.items()},
                {"needs",
                 {{"grad_through_backbone", needs.grad_through_backbone},
                  {"final_cls", needs.final_cls},
                  {"block_kv", needs.block_kv},
                  {"backbone_stochastic", needs.backbone_stochastic},
                  {"cacheable", needs.cacheable()},
                  {"memory_class", to_string(needs.memory_class)}}},
                {"precision", to_string(job.spec.precision)}};
  r.backbone = bb.info;
  r.provenance = job_provenance(spec, &job.threading);
  r.provenance->device = spec.device;
  r.job_key = job_key(job, method.effective_settings(), bb.info["sha256"]);
  return r;
}

// Best-of-10 and final accuracy from the evaluations (epochs that are multiples of eval_every
// count for best_of_10; the last epoch is always evaluated).
void set_accuracies(Record& r, int eval_every) {
  double best = -1;
  for (auto& e : r.evals)
    if (e.epoch % eval_every == 0) {
      best = std::max(best, e.test_acc);
      r.best_of_10_epochs.push_back(e.epoch);
    }
  r.final_accuracy = r.evals.back().test_acc;
  r.best_of_10 = best < 0 ? *r.final_accuracy : best;
  // val_select: a search's headline is its best val200 evaluation (what selection compares); a final
  // run's is its test accuracy after the last epoch, also kept as accuracy_by_protocol.val_select.
  const bool last = r.protocol == Protocol::kFinal || (r.protocol == Protocol::kValSelect && r.stage == "final");
  r.accuracy = last ? *r.final_accuracy : *r.best_of_10;
  if (r.protocol == Protocol::kValSelect && r.stage == "final") r.other_protocols["val_select"] = *r.final_accuracy;
}

json data_section(const ResolvedJob& job, int num_classes, int image_size, const FeatureSources& src,
                  const std::vector<int>& missing_train_classes) {
  const auto& recipe = job.recipe();
  json d = {{"root", fs::absolute(job.spec.data_root).string()},
            {"task", job.task.name},
            {"task_dir", job.task.dir},
            {"format", job.task.format},
            {"num_classes", num_classes},
            {"missing_train_classes", missing_train_classes},
            {"normalisation", recipe.normalisation},
            {"image_size", image_size},
            {"train_split", recipe.train_split},
            {"n_train", src.train->size()},
            {"train_list_sha256", src.train->list_sha256()},
            {"test_split", recipe.test_split},
            {"n_test", src.test->size()},
            {"test_list_sha256", src.test->list_sha256()},
            {"skipped", src.train->skipped()}};
  for (auto& s : src.test->skipped()) d["skipped"].push_back(s);
  d["n_skipped"] = d["skipped"].size();
  return d;
}

void save_checkpoint(const ResolvedJob& job, Method& method, Record& r, int num_classes) {
  const auto& spec = job.spec;
  std::string ck =
      (fs::path(spec.out_dir) / "checkpoints" /
       (spec.method + "_" + job.task.name + "_s" + std::to_string(r.seed) + "_" + r.job_key + ".safetensors"))
          .string();
  std::map<std::string, std::string> meta = {{"method", spec.method},
                                             {"task", job.task.name},
                                             {"num_classes", std::to_string(num_classes)},
                                             {"job_key", r.job_key},
                                             {"backbone_sha256", r.backbone["sha256"]},
                                             {"method_settings", json(method.effective_settings()).dump()},
                                             {"format", "pt"}};
  save_named_tensors(ck, method.checkpoint_tensors(), meta);
  r.checkpoint = fs::absolute(ck).string();
}

void remove_job_state(const std::string& out_dir, const std::string& key) {
  std::error_code ec;
  fs::remove(job_state_path(out_dir, key), ec);
}

void check_test_labels(const ResolvedJob& job, const FeatureSources& src, int num_classes) {
  if (src.test->size() == 0) return;
  const int64_t top = src.test->labels().max().item<int64_t>();
  PETL_CHECK(top < num_classes, "task ", job.task.name, ": test split has label ", top, " but the train split implies ",
             num_classes, " classes (class-count mismatch)");
}

}  // namespace job_record
}  // namespace petl

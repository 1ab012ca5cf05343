// The run loop of one job (see job.h). Knows no method by name: it resolves the job, builds the
// method through the registry, picks the feature sources its needs allow, runs the trainer's
// epochs and evaluations, and writes the record and the checkpoint.
#include "harness/train/job.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/build_info.h"
#include "core/error.h"
#include "core/system.h"
#include "core/stop.h"
#include "core/text.h"
#include "harness/train/feature_source.h"
#include "harness/train/job_state.h"
#include "harness/train/job_steps.h"
#include "harness/train/memory_budget.h"
#include "harness/train/precision.h"
#include "harness/train/trainer.h"
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

Record failed_record(const JobSpec& spec, const std::string& message) {
  return petl::failed_record(spec.method, spec.task, spec.seed == JobSpec::kRecipeValue ? -1 : spec.seed, spec.protocol, message,
                             job_provenance(spec));
}

void append_record(const std::string& out_dir, const Record& record) {
  io::append_json_line((fs::path(out_dir) / "results.jsonl").string(), to_json(record), "results file");
}

namespace job_steps {

// The last ok record with this job key whose checkpoint (if any) still exists, or nullopt.
std::optional<Record> find_finished(const std::string& out_dir, const std::string& key) {
  const std::string path = (fs::path(out_dir) / "results.jsonl").string();
  auto lines = io::read_json_lines(path, "results file");  // a torn last line after a kill is skipped
  if (lines.torn) io::cut_torn_tail_now(path, "results file");  // ... and cut, under the writers' lock
  std::optional<Record> found;
  for (size_t i = 0; i < lines.objects.size(); ++i) {
    const json& j = lines.objects[i];
    auto text = [&](const char* field) {  // a field that is absent or not a string reads as ""
      auto it = j.find(field);
      return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (!is_result_record(j) || text("job_key") != key || text("status") != "ok") continue;
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
  r.status = spec.dry_run ? "dry_run" : "ok";
  r.method = spec.method;
  r.task = job.task.name;
  r.seed = recipe.seed;
  r.protocol = spec.protocol;
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
                  {"memory_class", needs.memory_class}}},
                {"precision", job.spec.precision}};
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
  r.accuracy = r.protocol == "final" ? *r.final_accuracy : *r.best_of_10;
}

json data_section(const ResolvedJob& job, int num_classes, int image_size, const FeatureSources& src) {
  const auto& recipe = job.recipe();
  json d = {{"root", fs::absolute(job.spec.data_root).string()},
            {"task", job.task.name},
            {"task_dir", job.task.dir},
            {"format", job.task.format},
            {"num_classes", num_classes},
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
  std::string ck = (fs::path(spec.out_dir) / "checkpoints" /
                    (spec.method + "_" + job.task.name + "_s" + std::to_string(r.seed) + "_" + r.job_key +
                     ".safetensors"))
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

namespace {
bool is_eval_epoch(const Recipe& r, int epoch) {
  return (epoch + 1) % r.eval_every == 0 || epoch + 1 == r.total_epochs();
}

// Saves the job's state at epoch boundaries at most every `every_min` minutes, and at once when a
// stop was requested (harness/train/job_state.h). Inactive without a path (no --out, --dp, or
// --state-every off).
class StateSaver {
 public:
  StateSaver(std::string path, std::string key, double every_min, Trainer& trainer, Method& method,
             torch::Device device, std::string label)
      : path_(std::move(path)), key_(std::move(key)), every_s_(every_min * 60.0), trainer_(trainer), method_(method),
        device_(device), label_(std::move(label)), last_(std::chrono::steady_clock::now()) {}
  bool active() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  // At an epoch boundary: whether the interval has passed since the last save.
  bool due() const {
    return active() && std::chrono::duration<double>(std::chrono::steady_clock::now() - last_).count() >= every_s_;
  }
  void save(const LoopProgress& p) {
    if (!active()) return;
    trainer_.pause_peak();  // host copies of the state are not training memory
    const auto t0 = std::chrono::steady_clock::now();
    LoopProgress q = p;
    q.eval_s += trainer_.eval_seconds();
    if (trainer_.started()) {  // paused: the peak so far is final
      q.peak_train = trainer_.peak().train_peak();
      q.peak_baseline = trainer_.peak().baseline();
      q.peak_reserved = trainer_.peak().train_peak_reserved();
    }
    save_job_state(path_, key_, q, method_, trainer_.optimizer(), device_);
    last_ = std::chrono::steady_clock::now();
    trainer_.resume_peak();
    std::fprintf(stderr, "[petl] %s: training state saved (%zu/%d epochs trained%s) to %s in %.2f s\n", label_.c_str(),
                 p.epoch_train_loss.size(), p.total_epochs,
                 p.current.next_iteration > 0 ? str_cat(", epoch ", p.epoch + 1, " at iteration ", p.current.next_iteration).c_str()
                                              : "",
                 path_.c_str(), std::chrono::duration<double>(last_ - t0).count());
  }

 private:
  std::string path_, key_;
  double every_s_;
  Trainer& trainer_;
  Method& method_;
  torch::Device device_;
  std::string label_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace

// Trains every epoch, evaluating every eval_every epochs and after the last; returns this
// process's data-parallel rank (0 without --dp). Methods whose evaluation frozen-backbone
// features serve (query-only: linear, vqt, synqt) keep a snapshot of their trainable tensors at
// each evaluation epoch instead, and one pass over the test split after training evaluates every
// snapshot; the others (they change the backbone's token path) evaluate at each evaluation epoch.
// With a state path (`state_path`), the loop starts from a saved state of this job when
// `resume` finds one, saves its state every spec.state_every_min minutes at epoch boundaries, and
// on SIGTERM / SIGUSR2 / SIGINT saves it at the next iteration or evaluation-batch boundary and
// ends the process by that signal.
// With `deferred` (a bundle: harness/train/bundle.h), the snapshots are not evaluated here: the
// state is saved once training is done (so a later stop of the bundle never retrains this job)
// and the snapshots are handed over for the bundle's one test pass.
int train_and_evaluate(const ResolvedJob& job, Method& method, VisionTransformer backbone, const FeatureSources& src,
                       Record& r, int image_size, const std::string& state_path, DeferredEval* deferred) {
  const auto& recipe = job.recipe();
  DataParallel dp(job.spec.dp, job.device);
  if (dp.active())
    r.data_parallel = {{"ranks", dp.size()}, {"backend", dp.backend()},
                       {"note", "each rank trains on its slice of every global batch; gradients summed; no mid-job state"}};
  const std::string label = job.spec.method + "/" + job.task.name;
  Trainer trainer(method, recipe, dp, job.device, job.cuda_index, label, job.spec.progress);
  trainer.iterations(src.train->size());  // fails early when there is not one batch
  const CacheTaps eval_taps = eval_taps_for(method.needs());
  if (job.spec.micro_batch > 0) {
    trainer.set_micro_batch(job.spec.micro_batch);
    r.settings["micro_batch"] = job.spec.micro_batch;
  }
  nlohmann::json budget;
  if (job.spec.memory_budget > 0) {
    const int64_t per_rank = (recipe.batch_size + dp.size() - 1) / dp.size();
    const BudgetChoice bc = choose_micro_batch(trainer, *src.train, per_rank, job.spec.memory_budget);
    budget = bc.to_json();
    if (!bc.fits) {  // a result, not a failure: the record says so and names the minimum peak
      std::fprintf(stderr, "[petl] %s: does not fit the memory budget of %s: even %lld image(s) per micro-batch "
                   "are predicted to peak at %s\n", label.c_str(), format_bytes(double(bc.budget)).c_str(),
                   (long long)bc.min_micro_batch, format_bytes(double(bc.predicted(bc.min_micro_batch))).c_str());
      r.status = "does_not_fit";
      r.extra["memory_budget"] = budget;
      return dp.rank();
    }
    trainer.set_micro_batch(bc.micro_batch < per_rank ? bc.micro_batch : 0);
    trainer.set_memory_budget(bc.budget);
    std::fprintf(stderr, "[petl] %s: memory budget %s: micro-batch %lld of %lld (predicted peak %s)\n", label.c_str(),
                 format_bytes(double(bc.budget)).c_str(), (long long)bc.micro_batch, (long long)per_rank,
                 format_bytes(double(bc.predicted(bc.micro_batch))).c_str());
  }
  const bool with_state = !state_path.empty() && !dp.active();
  StateSaver saver(with_state ? state_path : "", r.job_key, job.spec.state_every_min, trainer, method, job.device, label);
  LoopProgress p;
  if (with_state && job.spec.reuse_done) {
    if (auto loaded = load_job_state(state_path, r.job_key, method, trainer.optimizer(), job.device)) {
      p = std::move(*loaded);
      if (p.peak_train >= 0) trainer.continue_peak(p.peak_train, p.peak_baseline, p.peak_reserved);
      std::fprintf(stderr, "[petl] %s: resuming from %s: %zu/%d epochs trained%s%s\n", label.c_str(), state_path.c_str(),
                   p.epoch_train_loss.size(), recipe.total_epochs(),
                   p.current.next_iteration > 0 ? str_cat(", epoch ", p.epoch + 1, " at iteration ", p.current.next_iteration).c_str() : "",
                   p.eval_pending ? ", its evaluation pending" : "");
      r.extra["resumed"] = {{"from_epoch", p.epoch + 1},
                            {"from_iteration", p.current.next_iteration},
                            {"evaluation_pending", p.eval_pending},
                            {"resumes", p.resumes},
                            {"state_file", fs::absolute(state_path).string()},
                            {"note", "losses and accuracies continue the saved run exactly; the training-memory "
                                     "peak is the larger of the saved part's and this process's"}};
    }
  }
  p.total_epochs = recipe.total_epochs();
  const double eval_s_before = p.eval_s;
  auto log_eval = [&](int epoch, double loss, double acc) {
    p.evals.push_back({epoch, acc, loss});
    std::fprintf(stderr, "[petl] %s epoch %d: loss %.4f, test acc %.2f%%\n", label.c_str(), epoch, loss, acc);
  };
  {
    stop::Scope stoppable(saver.active());
    try {
      for (; p.epoch < recipe.total_epochs(); ++p.epoch) {
        if (!p.eval_pending) {
          p.current.epoch = p.epoch;
          trainer.train_iterations(*src.train, p.current);
          p.train_s += p.current.seconds;
          p.images += p.current.images;
          p.epoch_train_loss.push_back(trainer.mean_loss(*src.train, p.current));
          p.current = EpochProgress{};
          if (is_eval_epoch(recipe, p.epoch)) {
            if (eval_taps.any())
              p.snapshots.push_back(Snapshot::take(trainer.trainable(), p.epoch + 1, p.epoch_train_loss.back()));
            else
              p.eval_pending = true;
          }
        }
        if (p.eval_pending) {
          log_eval(p.epoch + 1, p.epoch_train_loss.back(), trainer.evaluate(*src.test).accuracy);
          p.eval_pending = false;
        }
        if (p.epoch + 1 < recipe.total_epochs()) {
          if (saver.due()) {  // (a copy only when saving: snapshots can be tens of MB)
            LoopProgress next = p;  // the state at the start of the next epoch
            ++next.epoch;
            saver.save(next);
          }
        }
      }
      if (!p.snapshots.empty() && deferred) {
        if (trainer.started()) saver.save(p);  // trained: only the evaluation is pending
        deferred->snapshots = std::move(p.snapshots);
        deferred->taps = eval_taps;
        p.snapshots.clear();
      } else if (!p.snapshots.empty()) {
        auto results = trainer.evaluate_snapshots(*src.test, p.snapshots, backbone, eval_taps);
        for (size_t i = 0; i < p.snapshots.size(); ++i)
          log_eval(p.snapshots[i].epoch, p.snapshots[i].train_loss, results[i].accuracy);
        r.settings["evaluation"] = "snapshots of the trainable tensors at each evaluation epoch, evaluated in one pass "
                                   "over the test split's frozen-backbone features (" + eval_taps.str() + ")";
      }
    } catch (const stop::Stopped& s) {
      saver.save(p);
      std::fprintf(stderr, "[petl] %s: stopped by %s; `petl run ... --resume` (or the sweep's next run) continues "
                   "from %s\n", label.c_str(), stop::signal_name(s.signal()).c_str(), saver.path().c_str());
      std::fflush(stderr);
      stop::die(s.signal());
    }
  }
  r.evals = p.evals;
  r.epoch_train_loss = p.epoch_train_loss;
  trainer.finish();
  auto mem = memory_breakdown(method, trainer.trainable(), trainer.optimizer(), trainer.peak());
  r.memory = mem.to_json(recipe.batch_size, image_size);
  if (!budget.is_null()) {
    budget["micro_batch_final"] = trainer.micro_batch() > 0 ? trainer.micro_batch() : budget["batch"].get<int64_t>();
    budget["measured_peak_mib"] = MemoryMeter::mib(mem.peak_train);
    budget["within_budget"] = mem.peak_train <= job.spec.memory_budget;
    r.extra["memory_budget"] = budget;
  }
  Timing t;
  t.train_s = p.train_s;
  t.eval_s = eval_s_before + trainer.eval_seconds();
  t.train_images_per_s = t.train_s > 0 ? double(p.images) / t.train_s : 0.0;
  r.timing = t;
  return dp.rank();
}

std::optional<Record> reuse_finished(const ResolvedJob& job, const std::string& key) {
  const auto& spec = job.spec;
  if (!spec.reuse_done || spec.out_dir.empty()) return std::nullopt;
  auto done = find_finished(spec.out_dir, key);
  if (!done) return std::nullopt;
  std::fprintf(stderr, "[petl] %s/%s: reusing the finished job %s from %s/results.jsonl\n", spec.method.c_str(),
               job.task.name.c_str(), key.c_str(), spec.out_dir.c_str());
  done->reused = true;
  remove_job_state(spec.out_dir, key);  // left by a kill between the record and its removal
  return done;
}

void check_test_labels(const ResolvedJob& job, const FeatureSources& src, int num_classes) {
  if (src.test->size() == 0) return;
  const int64_t top = src.test->labels().max().item<int64_t>();
  PETL_CHECK(top < num_classes, "task ", job.task.name, ": test split has label ", top, " but the train split implies ",
             num_classes, " classes (class-count mismatch)");
}

void finish_record(const ResolvedJob& job, Method& method, Record& r, const FeatureSources& src, int num_classes,
                   int image_size, double wall_s, int rank) {
  const auto& spec = job.spec;
  r.data = data_section(job, num_classes, image_size, src);
  if (r.status == "does_not_fit") {
    if (!spec.out_dir.empty() && rank == 0) append_record(spec.out_dir, r);
    return;
  }
  set_accuracies(r, job.recipe().eval_every);
  r.timing->wall_s = wall_s;
  if (!spec.out_dir.empty() && rank == 0) {  // one record per job, written by rank 0
    if (spec.save_checkpoint) save_checkpoint(job, method, r, num_classes);
    append_record(spec.out_dir, r);
    remove_job_state(spec.out_dir, r.job_key);  // the record holds everything now
  }
}

}  // namespace job_steps

using namespace job_steps;

Record run_job(const JobSpec& spec) {
  const auto t_start = std::chrono::steady_clock::now();
  const ResolvedJob job = resolve_job(spec);
  if (!spec.dry_run && !spec.out_dir.empty()) io::check_writable_dir(spec.out_dir, "--out");  // before any work
  JobBackbone bb = load_job_backbone(job);
  const int image_size = bb.model->cfg_.img_size;
  const int num_classes = spec.dry_run && job.task.num_classes > 0 ? job.task.num_classes : job_num_classes(job);
  auto method = build_job_method(job, bb.model, num_classes);
  bb.model->to(job.device);
  method->to(job.device);
  Record r = record_header(job, *method, bb);
  if (spec.dry_run) {
    r.data = {{"root", spec.data_root}, {"task", job.task.name}, {"num_classes", num_classes}};
    return r;
  }
  if (auto done = reuse_finished(job, r.job_key)) return *done;
  FeatureSources src = make_feature_sources(job, bb, method->needs());
  check_test_labels(job, src, num_classes);
  if (!src.cache_info.is_null()) r.feature_cache = src.cache_info;
  const std::string state_path =
      spec.out_dir.empty() || spec.state_every_min < 0 ? "" : job_state_path(spec.out_dir, r.job_key);
  const int rank = train_and_evaluate(job, *method, bb.model, src, r, image_size, state_path, nullptr);
  finish_record(job, *method, r, src, num_classes, image_size,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(), rank);
  return r;
}

}  // namespace petl

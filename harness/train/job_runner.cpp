// The steps of one training job (see job_runner.h). Knows no method by name: it resolves the job,
// builds the method through the registry, takes the feature sources its needs allow, runs the
// trainer's epochs and evaluations, and writes the record and the checkpoint.
#include "harness/train/job_runner.h"

#include <cstdio>
#include <filesystem>

#include "core/clock.h"
#include "core/error.h"
#include "core/stop.h"
#include "core/text.h"
#include "harness/train/data_parallel.h"
#include "harness/train/job_record.h"
#include "io/journal.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace job_record;

// ------------------------------------------------------------------ inputs

std::shared_ptr<JobBackbone> JobInputs::backbone(const ResolvedJob& job) {
  if (!shared_) return std::make_shared<JobBackbone>(load_job_backbone(job));
  // A method that back-propagates through the backbone may change it (LoRA, adapters): its own copy.
  const BackboneNeeds needs = probe_needs(job.spec.method, job.eff.settings, job.recipe().drop_path_rate);
  const std::string key =
      job.spec.backbone_file + "|" + job.spec.arch + "|" + format_double(job.recipe().drop_path_rate);
  if (!needs.grad_through_backbone)
    if (auto it = backbones_.find(key); it != backbones_.end()) return it->second;
  auto bb = std::make_shared<JobBackbone>(load_job_backbone(job));
  bb->model->to(job.device);
  if (!needs.grad_through_backbone) backbones_[key] = bb;
  return bb;
}

namespace {
// What makes two jobs' feature sources the same objects.
std::string sources_key(const ResolvedJob& job, const JobBackbone& bb, const BackboneNeeds& needs) {
  const auto& s = job.spec;
  const auto& r = job.recipe();
  return json{{"cache", s.feature_cache.empty() ? "" : fs::absolute(s.feature_cache).string()},
              {"taps", s.feature_cache.empty() ? "live" : cache_taps_for(needs).str()},
              {"dtype", to_string(s.cache_dtype)},
              {"budget", s.feature_memory_budget},
              {"normalisation", r.normalisation},
              {"train", r.train_split},
              {"test", r.test_split},
              {"limits", {s.limit_train, s.limit_test}},
              {"skip_bad", s.skip_bad},
              {"backbone", bb.info.value("sha256", json())},
              {"image_size", bb.model->cfg_.img_size}}
      .dump();
}
}  // namespace

std::shared_ptr<FeatureSources> JobInputs::sources(const ResolvedJob& job, const JobBackbone& backbone,
                                                   const BackboneNeeds& needs) {
  if (!shared_) return std::make_shared<FeatureSources>(make_feature_sources(job, backbone, needs));
  auto& src = sources_[sources_key(job, backbone, needs)];
  if (!src) src = std::make_shared<FeatureSources>(make_feature_sources(job, backbone, needs));
  return src;
}

// ------------------------------------------------------------------ evaluation policies

std::optional<std::vector<EvalResult>> EvaluateNow::evaluate(Trainer& trainer, const FeatureSource& test,
                                                             VisionTransformer backbone,
                                                             std::vector<Snapshot>& snapshots, const CacheTaps& taps) {
  return trainer.evaluate_snapshots(test, snapshots, backbone, taps);
}

std::optional<std::vector<EvalResult>> DeferEvaluation::evaluate(Trainer&, const FeatureSource&, VisionTransformer,
                                                                 std::vector<Snapshot>& snapshots,
                                                                 const CacheTaps& taps) {
  snapshots_ = std::move(snapshots);
  snapshots.clear();
  taps_ = taps;
  return std::nullopt;
}

// ------------------------------------------------------------------ the steps

JobRunner::JobRunner(JobSpec spec, JobInputs& inputs, EvaluationPolicy& evaluation)
    : spec_(std::move(spec)), inputs_(inputs), evaluation_(evaluation) {}

std::string JobRunner::label() const { return spec_.method + "/" + (job_ ? job_->task.name : spec_.task); }

// Everything here is worked out from the job's arguments alone (flags, names, --set values, the
// --out folder, the backbone file's existence): an error is an ArgumentError (no job, no record).
void JobRunner::resolve() {
  const auto t0 = SteadyClock::now();
  try {
    job_.emplace(resolve_job(spec_));
    if (!spec_.dry_run && !spec_.out_dir.empty()) io::check_writable_dir(spec_.out_dir, "--out");  // before any work
    std::error_code ec;
    PETL_CHECK(spec_.backbone_file.empty() || std::filesystem::is_regular_file(spec_.backbone_file, ec), "--backbone ",
               spec_.backbone_file, ": no such file");
  } catch (const ArgumentError&) {
    throw;
  } catch (const Error& e) {
    throw ArgumentError(e.what());
  }
  // Say which recipe a job got when none was asked for, and when --epochs cuts its schedule short.
  const Recipe& r = job_->recipe();
  if (spec_.recipe.empty())
    std::fprintf(stderr, "[petl] %s: recipe '%s' (%s; --recipe NAME for another, `petl list` lists them)\n",
                 label().c_str(), r.name.c_str(),
                 spec_.backbone_file.empty() && spec_.arch.empty() ? "the embedded backbone's default"
                                                                   : "the method's reference recipe");
  if (r.epochs < job_->eff.recipe_epochs)
    std::fprintf(stderr,
                 "[petl] %s: recipe '%s' runs %d epochs; shortened to %d (warmup %d, evaluation every %d "
                 "epochs and after the last)\n",
                 label().c_str(), r.name.c_str(), job_->eff.recipe_epochs, r.epochs, r.warmup_epochs, r.eval_every);
  wall_s_ += seconds_since(t0);
}

void JobRunner::build() {
  const auto t0 = SteadyClock::now();
  const ResolvedJob& job = *job_;
  bb_ = inputs_.backbone(job);
  image_size_ = bb_->model->cfg_.img_size;
  num_classes_ = spec_.dry_run && job.task.num_classes > 0 ? job.task.num_classes : job_num_classes(job);
  if (!spec_.dry_run) missing_train_classes_ = check_train_classes(job, num_classes_);  // before any work
  method_ = build_job_method(job, bb_->model, num_classes_);
  bb_->model->to(job.device);
  method_->to(job.device);
  r_ = record_header(job, *method_, *bb_);
  if (spec_.dry_run) r_.data = {{"root", spec_.data_root}, {"task", job.task.name}, {"num_classes", num_classes_}};
  wall_s_ += seconds_since(t0);
}

bool JobRunner::reuse_finished() {
  if (!spec_.reuse_done || spec_.out_dir.empty()) return false;
  auto done = find_finished(spec_.out_dir, r_.job_key);
  if (!done) return false;
  std::fprintf(stderr, "[petl] %s: reusing the finished job %s from %s/results.jsonl\n", label().c_str(),
               r_.job_key.c_str(), spec_.out_dir.c_str());
  done->reused = true;
  remove_job_state(spec_.out_dir, r_.job_key);  // left by a kill between the record and its removal
  r_ = std::move(*done);
  return true;
}

void JobRunner::load_sources() {
  const auto t0 = SteadyClock::now();
  src_ = inputs_.sources(*job_, *bb_, method_->needs());
  check_test_labels(*job_, *src_, num_classes_);
  if (!src_->cache_info.is_null()) r_.feature_cache = src_->cache_info;
  wall_s_ += seconds_since(t0);
}

std::string JobRunner::state_path() const {
  return spec_.out_dir.empty() || spec_.state_every_min < 0 ? "" : job_state_path(spec_.out_dir, r_.job_key);
}

// Trains every epoch, evaluating every eval_every epochs and after the last. Methods whose
// evaluation frozen-backbone features serve (query-only: linear, vqt, synqt) keep a snapshot of
// their trainable tensors at each evaluation epoch instead, and the evaluation policy evaluates
// every snapshot in one pass over the test split once training is done (or keeps them for a
// bundle's pass); the others (they change the backbone's token path) evaluate at each evaluation
// epoch. With a state path, the loop starts from a saved state of this job when --resume finds
// one, saves its state every spec.state_every_min minutes at epoch boundaries, and on SIGTERM /
// SIGUSR2 / SIGINT saves it at the next iteration or evaluation-batch boundary and ends the
// process by that signal.
void JobRunner::train() {
  const auto t0 = SteadyClock::now();
  const Recipe& recipe = job_->recipe();
  DataParallel dp(spec_.dp, job_->device);
  rank_ = dp.rank();
  if (dp.active())
    r_.data_parallel = {
        {"ranks", dp.size()},
        {"backend", dp.backend()},
        {"note", "each rank trains on its slice of every global batch; gradients summed; no mid-job state"}};
  Trainer trainer(*method_, recipe, dp, job_->device, label(), spec_.progress);
  trainer.iterations(src_->train->size());  // fails early when there is not one batch
  if (spec_.micro_batch > 0) {
    trainer.set_micro_batch(spec_.micro_batch);
    r_.settings["micro_batch"] = spec_.micro_batch;
  }
  if (spec_.memory_budget > 0 && !fit_memory_budget(trainer, dp)) return;  // recorded as does_not_fit
  const std::string path = dp.active() ? "" : state_path();
  StateSaver saver(path, r_.job_key, spec_.state_every_min, trainer, label());
  LoopProgress p;
  if (saver.active() && spec_.reuse_done) resume(trainer, p);
  p.total_epochs = recipe.total_epochs();
  const double eval_s_before = p.eval_s;
  run_epochs(trainer, saver, p);
  record_training(trainer, p, eval_s_before);
  wall_s_ += seconds_since(t0);
}

// The largest micro-batch predicted to fit the budget, checked on the first steps (BudgetCheck).
bool JobRunner::fit_memory_budget(Trainer& trainer, const DataParallel& dp) {
  const int64_t per_rank = (job_->recipe().batch_size + dp.size() - 1) / dp.size();
  const BudgetChoice bc = choose_micro_batch(trainer, *src_->train, per_rank, spec_.memory_budget);
  budget_ = bc.to_json();
  if (!bc.fits) {  // a result, not a failure: the record says so and names the minimum peak
    std::fprintf(stderr,
                 "[petl] %s: does not fit the memory budget of %s: even %lld image(s) per micro-batch are predicted "
                 "to peak at %s\n",
                 label().c_str(), format_bytes(double(bc.budget)).c_str(), (long long)bc.min_micro_batch,
                 format_bytes(double(bc.predicted(bc.min_micro_batch))).c_str());
    r_.status = RecordStatus::kDoesNotFit;
    r_.memory_budget = budget_;
    return false;
  }
  trainer.set_micro_batch(bc.micro_batch < per_rank ? bc.micro_batch : 0);
  budget_check_.emplace(bc.budget);
  trainer.add_observer(&*budget_check_);
  std::fprintf(stderr, "[petl] %s: memory budget %s: micro-batch %lld of %lld (predicted peak %s)\n", label().c_str(),
               format_bytes(double(bc.budget)).c_str(), (long long)bc.micro_batch, (long long)per_rank,
               format_bytes(double(bc.predicted(bc.micro_batch))).c_str());
  return true;
}

void JobRunner::resume(Trainer& trainer, LoopProgress& p) {
  const std::string path = state_path();
  auto loaded = load_job_state(path, r_.job_key, *method_, trainer.optimizer(), job_->device);
  if (!loaded) return;
  p = std::move(*loaded);
  if (p.peak_train >= 0) trainer.continue_peak(p.peak_train, p.peak_baseline, p.peak_reserved);
  std::fprintf(stderr, "[petl] %s: resuming from %s: %zu/%d epochs trained%s%s\n", label().c_str(), path.c_str(),
               p.epoch_train_loss.size(), job_->recipe().total_epochs(),
               p.current.next_iteration > 0
                   ? str_cat(", epoch ", p.epoch + 1, " at iteration ", p.current.next_iteration).c_str()
                   : "",
               p.eval_pending ? ", its evaluation pending" : "");
  r_.resumed = {{"from_epoch", p.epoch + 1},
                {"from_iteration", p.current.next_iteration},
                {"evaluation_pending", p.eval_pending},
                {"resumes", p.resumes},
                {"state_file", fs::absolute(path).string()},
                {"note",
                 "losses and accuracies continue the saved run exactly; the training-memory peak is the "
                 "larger of the saved part's and this process's"}};
}

void JobRunner::log_eval(LoopProgress& p, int epoch, double loss, double accuracy) const {
  p.evals.push_back({epoch, accuracy, loss});
  std::fprintf(stderr, "[petl] %s epoch %d: loss %.4f, test acc %.2f%%\n", label().c_str(), epoch, loss, accuracy);
}

void JobRunner::run_epochs(Trainer& trainer, StateSaver& saver, LoopProgress& p) {
  const Recipe& recipe = job_->recipe();
  const CacheTaps eval_taps = eval_taps_for(method_->needs());
  auto is_eval_epoch = [&](int epoch) {
    return (epoch + 1) % recipe.eval_every == 0 || epoch + 1 == recipe.total_epochs();
  };
  stop::Scope stoppable(saver.active());
  try {
    for (; p.epoch < recipe.total_epochs(); ++p.epoch) {
      if (!p.eval_pending) {
        p.current.epoch = p.epoch;
        trainer.train_iterations(*src_->train, p.current);
        p.train_s += p.current.seconds;
        p.images += p.current.images;
        p.epoch_train_loss.push_back(trainer.mean_loss(*src_->train, p.current));
        p.current = EpochProgress{};
        if (is_eval_epoch(p.epoch)) {
          if (eval_taps.any())
            p.snapshots.push_back(Snapshot::take(trainer.trainable(), p.epoch + 1, p.epoch_train_loss.back()));
          else
            p.eval_pending = true;
        }
      }
      if (p.eval_pending) {
        log_eval(p, p.epoch + 1, p.epoch_train_loss.back(), trainer.evaluate(*src_->test).accuracy);
        p.eval_pending = false;
      }
      if (p.epoch + 1 < recipe.total_epochs() && saver.due()) {
        LoopProgress next = p;  // the state at the start of the next epoch (a copy only when saving)
        ++next.epoch;
        saver.save(next);
      }
    }
    if (!p.snapshots.empty()) evaluate_snapshots(trainer, saver, p, eval_taps);
  } catch (const stop::Stopped& s) {
    saver.save(p);
    std::fprintf(stderr,
                 "[petl] %s: stopped by %s; `petl run ... --resume` (or the sweep's next run) continues from %s\n",
                 label().c_str(), stop::signal_name(s.signal()).c_str(), saver.path().c_str());
    std::fflush(stderr);
    stop::die(s.signal());
  }
}

void JobRunner::evaluate_snapshots(Trainer& trainer, StateSaver& saver, LoopProgress& p, const CacheTaps& taps) {
  if (evaluation_.defers() && trainer.started()) saver.save(p);  // trained: only the evaluation is pending
  auto results = evaluation_.evaluate(trainer, *src_->test, bb_->model, p.snapshots, taps);
  if (!results) {
    p.snapshots.clear();
    evaluated_ = false;
    return;
  }
  for (size_t i = 0; i < p.snapshots.size(); ++i)
    log_eval(p, p.snapshots[i].epoch, p.snapshots[i].train_loss, (*results)[i].accuracy);
  r_.settings["evaluation"] =
      "snapshots of the trainable tensors at each evaluation epoch, evaluated in one pass "
      "over the test split's frozen-backbone features (" +
      taps.str() + ")";
}

void JobRunner::record_training(Trainer& trainer, const LoopProgress& p, double eval_s_before) {
  r_.evals = p.evals;
  r_.epoch_train_loss = p.epoch_train_loss;
  trainer.finish();
  auto mem = memory_breakdown(*method_, trainer.trainable(), trainer.optimizer(), trainer.peak());
  r_.memory = mem.to_json(job_->recipe().batch_size, image_size_);
  if (!budget_.is_null()) {
    budget_["micro_batch_final"] = trainer.micro_batch() > 0 ? trainer.micro_batch() : budget_["batch"].get<int64_t>();
    budget_["measured_peak_mib"] = MemoryMeter::mib(mem.peak_train);
    budget_["within_budget"] = mem.peak_train <= spec_.memory_budget;
    r_.memory_budget = budget_;
  }
  Timing t;
  t.train_s = p.train_s;
  t.eval_s = eval_s_before + trainer.eval_seconds();
  t.train_images_per_s = t.train_s > 0 ? double(p.images) / t.train_s : 0.0;
  r_.timing = t;
}

void JobRunner::add_evaluations(const std::vector<Snapshot>& snapshots, const std::vector<EvalResult>& results,
                                const std::string& how) {
  for (size_t i = 0; i < snapshots.size(); ++i) {
    r_.evals.push_back({snapshots[i].epoch, results[i].accuracy, snapshots[i].train_loss});
    std::fprintf(stderr, "[petl] %s epoch %d: loss %.4f, test acc %.2f%%\n", label().c_str(), snapshots[i].epoch,
                 snapshots[i].train_loss, results[i].accuracy);
  }
  r_.settings["evaluation"] = how;
  evaluated_ = true;
}

void JobRunner::finish() {
  r_.data = data_section(*job_, num_classes_, image_size_, *src_, missing_train_classes_);
  const bool writes = !spec_.out_dir.empty() && rank_ == 0;  // one record per job, written by rank 0
  if (r_.status == RecordStatus::kDoesNotFit) {
    if (writes) append_record(spec_.out_dir, r_);
    return;
  }
  set_accuracies(r_, job_->recipe().eval_every);
  r_.timing->wall_s = wall_s_;
  if (writes) {
    if (spec_.save_checkpoint) save_checkpoint(*job_, *method_, r_, num_classes_);
    append_record(spec_.out_dir, r_);
    remove_job_state(spec_.out_dir, r_.job_key);  // the record holds everything now
  }
}

Record JobRunner::run() {
  resolve();
  build();
  if (spec_.dry_run || reuse_finished()) return r_;
  load_sources();
  train();
  finish();
  return r_;
}

// ------------------------------------------------------------------ run_job

Record run_job(const JobSpec& spec) {
  JobInputs inputs;
  EvaluateNow now;
  return JobRunner(spec, inputs, now).run();
}

}  // namespace petl

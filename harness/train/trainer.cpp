#include "harness/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "core/clock.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/stop.h"
#include "harness/train/precision.h"

namespace petl {

Trainer::Trainer(Method& method, const Recipe& recipe, DataParallel& dp, torch::Device device, std::string label,
                 bool progress)
    : method_(method),
      recipe_(recipe),
      dp_(dp),
      device_(device),
      label_(std::move(label)),
      progress_(progress),
      memory_(DeviceMemory::of(device)),
      trainable_(method.trainable_parameters()),
      peak_(memory_) {
  for (auto& [k, t] : trainable_) trainable_tensors_.push_back(t);
  opt_ = make_optimizer(trainable_, recipe_);
  min_chunk_ = std::max<int64_t>(1, method.needs().min_chunk);
}

int64_t Trainer::iterations(int64_t n) const {
  const int64_t bs = recipe_.batch_size;
  const int64_t iters = recipe_.drop_last ? n / bs : (n + bs - 1) / bs;
  PETL_CHECK(iters > 0, "train split has ", n, " images, fewer than one batch of ", bs, " with drop_last");
  return iters;
}

EpochResult Trainer::train_one_epoch(const FeatureSource& train, int epoch) {
  EpochProgress p;
  p.epoch = epoch;
  train_iterations(train, p);
  return {mean_loss(train, p), p.images, p.seconds};
}

void Trainer::train_iterations(const FeatureSource& train, EpochProgress& p) {
  const int64_t n = train.size(), bs = recipe_.batch_size, iters = iterations(n);
  const int epoch = p.epoch;
  method_.train(true);
  if (!p.perm.defined()) {
    p.perm = torch::randperm(n, torch::kInt64);
    dp_.broadcast(p.perm);  // rank 0's order everywhere (the ranks' random streams differ after dropout)
  }
  ProgressBar bar(label_ + " epoch " + std::to_string(epoch + 1) + "/" + std::to_string(recipe_.total_epochs()), iters,
                  progress_);
  bar.add(p.next_iteration);
  for (int64_t it = p.next_iteration; it < iters; ++it) {
    stop::check();
    const auto t0 = SteadyClock::now();
    const double lr = learning_rate(recipe_, epoch, int(it), int(iters));
    set_learning_rate(*opt_, lr);
    if (!started_) {
      peak_.begin();  // right before the first training step
      started_ = true;
    }
    auto idx = p.perm.narrow(0, it * bs, std::min(bs, n - it * bs));
    const int64_t global = idx.size(0);
    if (dp_.active()) {
      auto [b0, b1] = dp_.slice(global);
      idx = idx.narrow(0, b0, b1 - b0);
    }
    opt_->zero_grad();
    for (StepObserver* o : observers_) o->before_step(*this);
    double l = forward_backward(train, idx, global);
    dp_.allreduce_gradients(trainable_tensors_);
    l = dp_.allreduce_sum(l);
    opt_->step();
    for (StepObserver* o : observers_) o->after_step(*this, idx.size(0));
    PETL_CHECK(std::isfinite(l), "training diverged: loss ", l, " at epoch ", epoch + 1, " iteration ", it);
    p.loss_sum += l;
    p.images += global;
    p.next_iteration = it + 1;
    p.seconds += seconds_since(t0);
    bar.add(1);
    if (it % 4 == 0) {
      char b[64];
      std::snprintf(b, sizeof b, "loss %.4f lr %.2e", l, lr);
      bar.set_postfix(b);
    }
  }
  bar.finish();
}

double Trainer::forward_backward(const FeatureSource& train, const torch::Tensor& idx, int64_t global) {
  const int64_t n = idx.size(0), m = micro_batch_ > 0 ? micro_batch_ : std::max<int64_t>(n, 1);
  double l = 0;
  for (int64_t s = 0, len = 0; s < n; s += len) {
    len = std::min(m, n - s);
    if (const int64_t rest = n - s - len; rest > 0 && rest < min_chunk_)  // the last chunk would be too small
      len = len - (min_chunk_ - rest) >= min_chunk_ ? len - (min_chunk_ - rest) : len + rest;
    auto part = idx.narrow(0, s, len);
    auto y = train.labels().index_select(0, part).to(device_);
    torch::Tensor loss;
    {  // forward and loss under the job's precision; backward outside it
      Autocast amp(device_);
      auto logits = widen(train.logits(method_, part, device_));
      // This chunk's share of the global-batch mean loss (the whole of it without --dp or chunks).
      loss = torch::nn::functional::cross_entropy(logits, y) * (double(part.size(0)) / double(global));
    }
    loss.backward();
    l += loss.item<double>();
  }
  return l;
}

int64_t Trainer::probe_peak(const FeatureSource& train, int64_t m) {
  const auto rng_cpu = generator_state(torch::kCPU);
  const auto rng_dev = device_.is_cuda() ? generator_state(device_) : torch::Tensor();
  std::vector<torch::Tensor> buffers;  // e.g. a BatchNorm head's running statistics
  for (auto& [name, b] : method_.trained_buffers()) buffers.push_back(b.clone());
  const int64_t keep = micro_batch_;
  micro_batch_ = m;
  method_.train(true);
  // The gradients alive throughout, counted: from the second step on (and in every micro-batch
  // after a step's first) a job's forward and backward run beside them, since LibTorch's zero_grad
  // zeroes them and keeps them. (Probes used to find them alive after the first probe and leave them
  // out: 1.2 GiB under full fine-tuning's peak at ViT-L.) Gradients the probe had to create are
  // dropped again, so training starts as it would have.
  const std::vector<torch::Tensor> created = allocate_missing_gradients(*opt_);
  opt_->zero_grad();
  const int64_t grad_bytes = gradient_bytes(*opt_);
  int64_t peak = 0;
  {
    PeakProbe probe(memory_);
    forward_backward(train, torch::arange(std::min(m, train.size()), torch::kInt64), m);
    peak = probe.growth() + model_bytes(method_) + grad_bytes;  // as the record's peak_train counts it
  }
  opt_->zero_grad();
  for (auto& p : created) p.mutable_grad() = torch::Tensor();
  micro_batch_ = keep;
  {
    torch::NoGradGuard ng;
    size_t i = 0;
    for (auto& [name, b] : method_.trained_buffers()) b.copy_(buffers[i++]);
  }
  set_generator_state(torch::kCPU, rng_cpu);
  if (rng_dev.defined()) set_generator_state(device_, rng_dev);
  return peak;
}

Snapshot Snapshot::take(const NamedTensors& trainable, int epoch, double train_loss) {
  Snapshot s;
  s.epoch = epoch;
  s.train_loss = train_loss;
  for (auto& [name, t] : trainable) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    const auto* p = static_cast<const uint8_t*>(c.data_ptr());
    s.bytes.emplace_back(p, p + c.nbytes());
  }
  return s;
}

void Snapshot::restore(const NamedTensors& trainable) const {
  TORCH_INTERNAL_ASSERT(bytes.size() == trainable.size(), "snapshot of another method");
  torch::NoGradGuard ng;
  for (size_t i = 0; i < trainable.size(); ++i) {
    const auto& t = trainable[i].second;
    TORCH_INTERNAL_ASSERT(size_t(t.nbytes()) == bytes[i].size(), "snapshot tensor ", trainable[i].first,
                          " changed size");
    auto host = torch::from_blob(const_cast<uint8_t*>(bytes[i].data()), t.sizes(), t.options().device(torch::kCPU));
    t.copy_(host);
  }
}

std::vector<std::vector<EvalResult>> evaluate_snapshot_sets(const std::vector<SnapshotSet>& sets,
                                                            const FeatureSource& test, VisionTransformer backbone,
                                                            const CacheTaps& taps, int64_t batch_size,
                                                            torch::Device device, bool progress,
                                                            const std::string& label) {
  PETL_CHECK(taps.any(), "evaluate_snapshot_sets: no frozen-backbone features to evaluate from");
  // The methods' own tensors come back afterwards, even when a stop interrupts the pass.
  struct Keep {
    NamedTensors trainable;
    Snapshot current;
  };
  std::vector<Keep> keep;
  size_t total = 0;
  for (const auto& s : sets) {
    const CacheTaps need = eval_taps_for(s.method->needs());
    PETL_CHECK(need.any(), "method ", s.method->name(), ": its evaluation cannot run from frozen-backbone features");
    PETL_CHECK((!need.cls || taps.cls) && (!need.kv || taps.kv), "method ", s.method->name(), " needs taps ",
               need.str(), " but the pass computes ", taps.str());
    auto t = s.method->trainable_parameters();
    keep.push_back({t, Snapshot::take(t, 0, 0)});
    total += s.snapshots->size();
  }
  struct Restore {
    std::vector<Keep>& k;
    ~Restore() {
      for (auto& x : k) x.current.restore(x.trainable);
    }
  } restore_current{keep};
  torch::NoGradGuard ng;
  for (const auto& s : sets) s.method->train(false);
  std::vector<std::vector<int64_t>> correct(sets.size());
  for (size_t j = 0; j < sets.size(); ++j) correct[j].assign(sets[j].snapshots->size(), 0);
  int64_t n = 0;
  const std::string what =
      sets.size() == 1 ? std::to_string(total) + " snapshots, one pass"
                       : std::to_string(sets.size()) + " jobs, " + std::to_string(total) + " snapshots, one pass";
  test.for_each_features(backbone, taps, batch_size, device, progress, label + " (" + what + ")",
                         [&](const CachedFeatures& f, const torch::Tensor& labels) {
                           const auto y = labels.to(torch::kCPU);
                           for (size_t j = 0; j < sets.size(); ++j)
                             for (size_t i = 0; i < sets[j].snapshots->size(); ++i) {
                               (*sets[j].snapshots)[i].restore(keep[j].trainable);
                               Autocast amp(device);
                               auto logits = widen(sets[j].method->forward_cached(f)).to(torch::kCPU);
                               correct[j][i] += logits.argmax(1).eq(y).sum().item<int64_t>();
                             }
                           n += labels.size(0);
                         });
  std::vector<std::vector<EvalResult>> out(sets.size());
  for (size_t j = 0; j < sets.size(); ++j)
    for (size_t i = 0; i < sets[j].snapshots->size(); ++i) {
      EvalResult e;
      e.n = n;
      e.accuracy = n ? 100.0 * double(correct[j][i]) / double(n) : 0.0;
      out[j].push_back(e);
    }
  return out;
}

std::vector<EvalResult> evaluate_snapshots(Method& method, const FeatureSource& test,
                                           const std::vector<Snapshot>& snapshots, VisionTransformer backbone,
                                           const CacheTaps& taps, int64_t batch_size, torch::Device device,
                                           bool progress, const std::string& label) {
  PETL_CHECK(taps.any(), "method ", method.name(), ": its evaluation cannot run from frozen-backbone features");
  return evaluate_snapshot_sets({{&method, &snapshots}}, test, backbone, taps, batch_size, device, progress, label)[0];
}

std::vector<EvalResult> Trainer::evaluate_snapshots(const FeatureSource& test, const std::vector<Snapshot>& snapshots,
                                                    VisionTransformer backbone, const CacheTaps& taps) {
  peak_.pause();
  const auto t0 = SteadyClock::now();
  auto r = petl::evaluate_snapshots(method_, test, snapshots, backbone, taps, recipe_.eval_batch_size, device_,
                                    progress_, "eval " + label_);
  eval_seconds_ += seconds_since(t0);
  peak_.resume();
  return r;
}

EvalResult Trainer::evaluate(const FeatureSource& test) {
  peak_.pause();
  const auto t0 = SteadyClock::now();
  auto ev = test.evaluate(method_, recipe_.eval_batch_size, device_, progress_, "eval " + label_);
  eval_seconds_ += seconds_since(t0);
  peak_.resume();
  return ev;
}

}  // namespace petl

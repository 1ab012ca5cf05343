#include "harness/train/memory_budget.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "harness/train/memory_meter.h"

namespace petl {

nlohmann::json BudgetChoice::to_json() const {
  nlohmann::json p = nlohmann::json::array();
  for (auto& [m, bytes] : probes) p.push_back({{"images", m}, {"peak_mib", MemoryMeter::mib(bytes)}});
  nlohmann::json j = {{"budget_mib", MemoryMeter::mib(budget)},
                      {"batch", batch},
                      {"micro_batch", micro_batch},
                      {"fits", fits},
                      {"model",
                       {{"fixed_mib", MemoryMeter::mib(int64_t(a))},
                        {"per_image_mib", MemoryMeter::mib(int64_t(b))},
                        {"floor_mib", MemoryMeter::mib(floor)},
                        {"optimizer_state_mib", MemoryMeter::mib(optimizer_state)}}},
                      {"probes", p}};
  j[fits ? "predicted_peak_mib" : "minimum_peak_mib"] =
      MemoryMeter::mib(predicted(fits ? micro_batch : min_micro_batch));
  if (min_micro_batch > 1) j["min_micro_batch"] = min_micro_batch;
  return j;
}

namespace {

// The line through the last two probes (the fixed bytes and the bytes per image).
void fit_last_two(BudgetChoice& c) {
  const size_t n = c.probes.size();
  c.b = 0;
  if (n >= 2 && c.probes[n - 1].first > c.probes[n - 2].first)
    c.b = std::max(0.0, double(c.probes[n - 1].second - c.probes[n - 2].second) /
                            double(c.probes[n - 1].first - c.probes[n - 2].first));
  c.a = double(c.probes[n - 1].second) - c.b * double(c.probes[n - 1].first);
}

}  // namespace

int64_t BudgetChoice::probed_up_to() const {
  int64_t m = 0;
  for (auto& pr : probes) m = std::max(m, pr.first);
  return m;
}

namespace {
// Whether a flat line's fixed bytes (and AdamW's state) fit under cap.
bool fixed_bytes_fit(const BudgetChoice& c, int64_t cap) {
  return double(c.optimizer_state) + std::max(c.a, double(c.floor)) <= double(cap);
}
}  // namespace

int64_t largest_chunk_under(const BudgetChoice& c, int64_t cap) {
  if (c.b > 0) {
    if (c.floor + c.optimizer_state > cap) return c.min_micro_batch - 1;  // not even the smallest chunk
    return std::min<int64_t>(c.batch, int64_t(std::floor((double(cap - c.optimizer_state) - c.a) / c.b)));
  }
  // No growth seen between the probes (their peak set by fixed bytes): a flat line says nothing of
  // bigger chunks' activations, so only its probed chunks are known (the batch without probes).
  if (!fixed_bytes_fit(c, cap)) return c.min_micro_batch;
  return c.probes.empty() ? c.batch : std::min(c.batch, c.probed_up_to());
}

BudgetChoice fit_memory_model(Trainer& trainer, const FeatureSource& train, int64_t batch, int64_t cap,
                              const std::function<void(int64_t, int64_t)>& on_probe) {
  batch = std::max<int64_t>(1, std::min(batch, train.size()));
  int64_t optimizer_state = 0;
  if (trainer.optimizer().state().empty())
    for (auto& [name, t] : trainer.trainable()) optimizer_state += 2 * int64_t(t.nbytes());
  auto probe = [&](int64_t m) {
    const int64_t peak = trainer.probe_peak(train, m);
    if (on_probe) on_probe(m, peak);
    return peak;
  };
  return fit_memory_model(probe, batch, std::min(batch, trainer.min_chunk()), optimizer_state, cap,
                          trainer.method().needs().frozen_chunk);
}

BudgetChoice fit_memory_model(const std::function<int64_t(int64_t)>& probe, int64_t batch, int64_t min_chunk,
                              int64_t optimizer_state, int64_t cap, int64_t bend) {
  BudgetChoice c;
  c.batch = c.micro_batch = batch;
  const int64_t lo = c.min_micro_batch = min_chunk;
  c.optimizer_state = optimizer_state;
  auto take = [&](int64_t m) {
    c.probes.emplace_back(m, probe(m));
    if (c.probes.size() == 1) c.floor = c.probes[0].second;
    fit_last_two(c);
  };
  // Probes at half and the whole of a chunk m: exact at m and in between where the peak is linear
  // in the chunk (activations kept for backward); below half it errs on the safe side for methods
  // whose transients stop growing with the chunk (SynQT's chunked backbone pass). Without a cap m
  // is the batch. With one, the search starts at 1 and 2 images (the least a job can need; 2 and 3
  // for a method whose chunks need two images, BackboneNeeds::min_chunk) and doubles the chunk
  // while the line through the last two probes says a chunk beyond twice the last fits the cap and
  // twice the last peak does (a doubled chunk at most doubles the peak): no probe needs more than
  // the cap. Small chunks can hide the slope — full fine-tuning's peak is the weights + gradients
  // up to a few images, then the activations — so the line is only trusted once it comes from
  // chunks within a factor of two of the one it chooses; the model is exact where that lies.
  // A method whose no-grad backbone pass runs in chunks (bend: BackboneNeeds::frozen_chunk) has a
  // peak that grows faster up to the bend (the pass's transients) than past it (the K/V kept for
  // backward): where the chosen chunk lies past the bend, the lower probe does not go below it,
  // so the line is the slope past the bend and lies above the peaks below it.
  int64_t m = batch;
  if (cap > 0 && batch > lo + 1) {
    take(lo);
    take(lo + 1);
    for (;;) {
      const auto [last, last_peak] = c.probes.back();
      m = c.b > 0 ? largest_chunk_under(c, cap) : fixed_bytes_fit(c, cap) ? batch : lo - 1;  // flat: search on
      if (m <= last) return c;  // the chunks probed are all the cap lets the model see
      if (m <= 2 * last) break;
      if (2 * last_peak > cap) {
        if (c.b == 0) return c;  // flat and stopped by the cap: known up to the last probe only
        m = 2 * last;
        break;
      }
      take(std::min(batch, 2 * last));
    }
  }
  int64_t m1 = std::max<int64_t>(lo, m / 2);
  if (bend > 0 && m > bend) m1 = std::max(m1, bend);
  if (c.probes.empty() || c.probes.back().first != m1) take(m1);
  if (m > m1) take(m);
  return c;
}

BudgetChoice under_budget(BudgetChoice c, int64_t budget) {
  c.budget = budget;
  const int64_t lo = c.min_micro_batch;
  if (c.predicted(lo) > budget) {
    c.fits = false;
    c.micro_batch = lo;
    return c;
  }
  c.fits = true;
  c.micro_batch = std::max<int64_t>(lo, largest_chunk_under(c, budget));  // flat and fitting: the batch
  return c;
}

BudgetChoice choose_micro_batch(Trainer& trainer, const FeatureSource& train, int64_t batch, int64_t budget) {
  return under_budget(fit_memory_model(trainer, train, batch, budget), budget);
}

void BudgetCheck::before_step(Trainer& trainer) {
  if (steps_to_check_ <= 0) return;
  trainer.fold_peak();  // the probe resets the meter: the training peak keeps the steps before it
  alive_before_ = gradient_bytes(trainer.optimizer()) + optimizer_bytes(trainer.optimizer());
  probe_.emplace(trainer.memory());
}

void BudgetCheck::after_step(Trainer& trainer, int64_t images) {
  if (!probe_) return;
  const int64_t step_peak = probe_->growth() + model_bytes(trainer.method()) + alive_before_;
  probe_.reset();
  checked_peak_ = std::max(checked_peak_, step_peak);
  --steps_to_check_;
  if (budget_ <= 0 || step_peak <= budget_) return;
  const int64_t m = trainer.micro_batch() > 0 ? trainer.micro_batch() : images;
  if (m > trainer.min_chunk()) {
    trainer.set_micro_batch(std::max(trainer.min_chunk(), m / 2));
    steps_to_check_ = 2;
  }
  std::fprintf(stderr, "[petl] %s: the step peaked at %.1f MiB, above the %.1f MiB budget: micro-batch %lld -> %lld\n",
               trainer.label().c_str(), MemoryMeter::mib(step_peak), MemoryMeter::mib(budget_), (long long)m,
               (long long)trainer.micro_batch());
}

}  // namespace petl

#include "harness/train/memory_budget.h"

#include <algorithm>
#include <cmath>
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
                      {"model", {{"fixed_mib", MemoryMeter::mib(int64_t(a))},
                                 {"per_image_mib", MemoryMeter::mib(int64_t(b))},
                                 {"floor_mib", MemoryMeter::mib(floor)},
                                 {"optimizer_state_mib", MemoryMeter::mib(optimizer_state)}}},
                      {"probes", p}};
  j[fits ? "predicted_peak_mib" : "minimum_peak_mib"] = MemoryMeter::mib(predicted(fits ? micro_batch : min_micro_batch));
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

int64_t largest_chunk_under(const BudgetChoice& c, int64_t cap) {
  if (c.b > 0) {
    if (c.floor + c.optimizer_state > cap) return c.min_micro_batch - 1;  // not even the smallest chunk
    return std::min<int64_t>(c.batch, int64_t(std::floor((double(cap - c.optimizer_state) - c.a) / c.b)));
  }
  // No growth seen between the probes (their peak set by fixed bytes): the batch only where those fit
  // — a flat line says nothing about bigger chunks' activations (full fine-tuning of ViT-H/14 probed
  // flat at 1 and 2 images, and its probe at 32 then needed more than the host's 24 GiB).
  // Probed chunks are known; a flat line probed below the batch (the search stopped at the cap)
  // knows nothing beyond its largest probe.
  if (double(c.optimizer_state) + std::max(c.a, double(c.floor)) > double(cap)) return c.min_micro_batch;
  return c.probes.empty() ? c.batch : std::min(c.batch, c.probed_up_to());
}

BudgetChoice fit_memory_model(Trainer& trainer, const FeatureSource& train, int64_t batch, int64_t cap) {
  batch = std::max<int64_t>(1, std::min(batch, train.size()));
  int64_t optimizer_state = 0;
  if (trainer.optimizer().state().empty())
    for (auto& [name, t] : trainer.trainable()) optimizer_state += 2 * int64_t(t.nbytes());
  return fit_memory_model([&](int64_t m) { return trainer.probe_peak(train, m); }, batch,
                          std::min(batch, trainer.min_chunk()), optimizer_state, cap);
}

BudgetChoice fit_memory_model(const std::function<int64_t(int64_t)>& probe, int64_t batch, int64_t min_chunk,
                              int64_t optimizer_state, int64_t cap) {
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
  // is the batch. With one, a first line through 1 and 2 images (the least a job can need; 2 and 3
  // for a method whose chunks need two images, BackboneNeeds::min_chunk) says
  // which chunk fits under the cap, and the probes are taken at the largest such m: a probe never
  // needs (much) more than the cap, and the model is exact where the chosen micro-batch lies.
  int64_t m = batch;
  if (cap > 0 && batch > lo + 1) {
    take(lo);
    take(lo + 1);
    // A flat start (the peak set by fixed bytes — full fine-tuning's weights + gradients — while a
    // tiny chunk's activations stay below them) says nothing of bigger chunks: double the chunk
    // while the peak stays flat and twice it fits the cap (a doubled chunk at most doubles the
    // activations, which were below the fixed bytes). Once it grows, one more doubling puts both
    // points of the line past the hinge, where the slope is the activations' (a line through the
    // hinge underestimates it).
    bool doubled = false;
    while (c.b == 0 && c.probes.back().first < batch && 2 * c.probes.back().second <= cap) {
      take(std::min(batch, 2 * c.probes.back().first));
      doubled = true;
    }
    if (doubled && c.b > 0 && c.probes.back().first < batch && 2 * c.probes.back().second <= cap)
      take(std::min(batch, 2 * c.probes.back().first));
    if (c.b == 0) return c;  // flat up to the batch (known there), or stopped by the cap (known up to it)
    m = largest_chunk_under(c, cap);
    if (m <= c.probed_up_to()) return c;  // the chunks probed are all a cap this small lets the model see
  }
  const int64_t m1 = std::max<int64_t>(lo, m / 2);
  take(m1);
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

}  // namespace petl

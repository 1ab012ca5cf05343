#include "harness/train/memory_budget.h"

#include <algorithm>
#include <cmath>

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
                                 {"optimizer_state_mib", MemoryMeter::mib(optimizer_state)}}},
                      {"probes", p}};
  j[fits ? "predicted_peak_mib" : "minimum_peak_mib"] = MemoryMeter::mib(predicted(fits ? micro_batch : 1));
  return j;
}

BudgetChoice fit_memory_model(Trainer& trainer, const FeatureSource& train, int64_t batch) {
  BudgetChoice c;
  c.batch = batch = std::max<int64_t>(1, std::min(batch, train.size()));
  if (trainer.optimizer().state().empty())
    for (auto& [name, t] : trainer.trainable()) c.optimizer_state += 2 * int64_t(t.nbytes());
  // Probes at half and the whole batch: exact at the batch and in between where the peak is linear
  // in the chunk (activations kept for backward); below half it errs on the safe side for methods
  // whose transients stop growing with the chunk (SynQT's chunked backbone pass).
  const int64_t m2 = batch, m1 = std::max<int64_t>(1, batch / 2);
  c.probes.emplace_back(m1, trainer.probe_peak(train, m1));
  if (m2 > m1) {
    c.probes.emplace_back(m2, trainer.probe_peak(train, m2));
    c.b = std::max(0.0, double(c.probes[1].second - c.probes[0].second) / double(m2 - m1));
  }
  c.a = double(c.probes[0].second) - c.b * double(m1);
  c.micro_batch = batch;
  return c;
}

BudgetChoice under_budget(BudgetChoice c, int64_t budget) {
  c.budget = budget;
  if (c.predicted(1) > budget) {
    c.fits = false;
    c.micro_batch = 1;
    return c;
  }
  c.fits = true;
  c.micro_batch =
      c.b > 0 ? std::min<int64_t>(c.batch, int64_t(std::floor((double(budget - c.optimizer_state) - c.a) / c.b)))
              : c.batch;
  c.micro_batch = std::max<int64_t>(1, c.micro_batch);
  return c;
}

BudgetChoice choose_micro_batch(Trainer& trainer, const FeatureSource& train, int64_t batch, int64_t budget) {
  return under_budget(fit_memory_model(trainer, train, batch), budget);
}

}  // namespace petl

// Training under a memory budget (--memory-budget): the largest micro-batch whose training peak
// fits, from a memory model of the job fitted on probe steps and checked on the first two real ones.
//
// Model: peak(m) = max(a + b * m, floor) + s, where a (bytes alive whatever the micro-batch: weights, resident
// features, trainable tensors, gradients) and b (bytes per image of a chunk's activations) come
// from the exact peaks of forward + backward over half and the whole chosen chunk (Trainer::probe_peak; no
// optimizer step, nothing of the training changed), and s is AdamW's state (2 x the trainable
// bytes) when the optimizer has not allocated it yet.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "harness/train/trainer.h"

namespace petl {

struct BudgetChoice {
  int64_t budget = 0;           // bytes
  int64_t batch = 0;            // images per rank and step
  int64_t micro_batch = 0;      // chosen; == batch: no split
  bool fits = true;             // false: even the smallest chunk is predicted above the budget
  int64_t min_micro_batch = 1;  // the method's smallest chunk (BackboneNeeds::min_chunk)
  double a = 0, b = 0;          // the fitted model (bytes, bytes per image)
  int64_t floor = 0;            // the smallest probe's peak: no bigger chunk needs less (a hinge's flat part)
  int64_t optimizer_state = 0;
  std::vector<std::pair<int64_t, int64_t>> probes;  // (images, measured peak bytes)
  int64_t predicted(int64_t m) const { return std::max(int64_t(a + b * double(m)), floor) + optimizer_state; }
  // The largest chunk a probe measured (0: none).
  int64_t probed_up_to() const;
  // Whether predicted(m) means anything: a line that grew extrapolates, a flat one (its peaks set by
  // fixed bytes, e.g. full fine-tuning's weights + gradients at 1 and 2 images) only covers the
  // chunks it was probed at — bigger chunks' activations may exceed the fixed bytes.
  bool known(int64_t m) const { return b > 0 || m <= probed_up_to(); }
  nlohmann::json to_json() const;  // MiB figures, for the record's memory_budget section
};

// The memory model of the trainer's job (two probe steps; see above) for `batch` images per step.
// The memory model of a training step: peak = a + b·micro_batch + optimizer state, fitted from
// exact probe steps. cap > 0: the probes stay at chunks the model predicts under cap bytes (the
// budget of a job; the host memory in `petl bench --budget`), so a big backbone is measured where
// it can run.
// on_probe(images, peak bytes): called after each probe (progress lines of a long search).
BudgetChoice fit_memory_model(Trainer& trainer, const FeatureSource& train, int64_t batch, int64_t cap = 0,
                              const std::function<void(int64_t, int64_t)>& on_probe = {});
// The same search over any probe (chunk → peak bytes); min_chunk: the smallest chunk the method
// allows; optimizer_state: bytes the optimizer will add on its first step; bend: the chunk of a
// no-grad backbone pass (BackboneNeeds::frozen_chunk, 0: none), past which the peak grows slower.
BudgetChoice fit_memory_model(const std::function<int64_t(int64_t)>& probe, int64_t batch, int64_t min_chunk,
                              int64_t optimizer_state, int64_t cap, int64_t bend = 0);
// The largest chunk (≤ c.batch) the model predicts at or under `cap` bytes; a line without growth
// gives, where its fixed bytes fit, its largest probed chunk (the batch if it has no probes), else
// c.min_micro_batch. May be below c.min_micro_batch: nothing fits.
int64_t largest_chunk_under(const BudgetChoice& c, int64_t cap);
// The model's choice under `budget`: the largest micro-batch predicted to fit, or fits = false.
BudgetChoice under_budget(BudgetChoice model, int64_t budget);
// Both: probes, fits and chooses. `batch`: this rank's images per step.
BudgetChoice choose_micro_batch(Trainer& trainer, const FeatureSource& train, int64_t batch, int64_t budget);

// The budget check, a step observer of a budgeted job's trainer: it measures the first two training
// steps exactly (a PeakProbe, counting what was alive before each: the gradients and AdamW's
// state), and when a step peaks above the budget it halves the trainer's micro-batch (down to the
// method's min_chunk; the next two steps are checked again) and says so on stderr. The second step
// is the one that counts: the first allocates the gradients and AdamW's state as it goes, every
// later step starts with them. budget 0: measures only.
class BudgetCheck : public StepObserver {
 public:
  explicit BudgetCheck(int64_t budget_bytes) : budget_(budget_bytes) {}
  void before_step(Trainer& trainer) override;
  void after_step(Trainer& trainer, int64_t images) override;
  // The largest peak of the steps measured so far (-1 before the first).
  int64_t checked_peak() const { return checked_peak_; }

 private:
  int64_t budget_;
  int steps_to_check_ = 2;
  int64_t checked_peak_ = -1, alive_before_ = 0;
  std::optional<PeakProbe> probe_;
};

}  // namespace petl

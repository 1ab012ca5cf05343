// Exact peak-memory measurement.
// CPU: a counting allocator wraps c10's CPU allocator (installed once, process-wide, with
// priority 1); every tensor allocation records its size and its deleter subtracts it, so the
// live and peak byte counts are exact for tensor memory (platform.md). BLAS/oneDNN scratch is
// not counted (it does not go through c10).
// CUDA (CUDA LibTorch builds only): the caching allocator's peak allocated / reserved.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

namespace petl {

class MemoryMeter {
 public:
  // Installs the counting allocator (idempotent). Call before tensors whose memory you measure
  // are allocated; `petl` installs it first thing in main().
  static void install();
  static bool installed();
  static int64_t live_bytes();   // bytes of tensor memory currently allocated on the CPU
  static int64_t peak_bytes();   // maximum of live_bytes since the last reset_peak()
  static void reset_peak();      // peak := live
  static int64_t allocations();  // number of allocations since install

  static double mib(int64_t bytes) { return double(bytes) / (1024.0 * 1024.0); }
};

// Tracks a training peak that excludes evaluation phases: call begin() right before the first
// training step, pause() before an evaluation, resume() after it, and end() when done.
class TrainingPeak {
 public:
  void begin();
  void pause();
  void resume();
  void end();
  int64_t train_peak() const { return train_peak_; }  // max live bytes during training phases
  int64_t eval_peak() const { return eval_peak_; }    // max live bytes during evaluations
  int64_t baseline() const { return baseline_; }      // live bytes at begin()

 private:
  int64_t train_peak_ = 0, eval_peak_ = 0, baseline_ = 0;
  bool in_eval_ = false;
};

}  // namespace petl

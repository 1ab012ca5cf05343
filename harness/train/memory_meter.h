// Exact peak-memory measurement.
// CPU: a counting allocator wraps c10's CPU allocator (installed once, process-wide, with
// priority 1); every tensor allocation records its size and its deleter subtracts it, so the
// live and peak byte counts are exact for tensor memory (docs/spec/platform.md). BLAS/oneDNN scratch is
// not counted (it does not go through c10). Freed blocks of cache_min() (128 KiB) or more are kept for the next
// allocation of the same (page-rounded) size, as CUDA's caching allocator does; blocks held by
// tensors plus blocks kept never exceed the highest live count since install + cache_slack().
// CUDA (CUDA LibTorch builds only): the caching allocator's peak allocated / reserved (DeviceMemory).
#pragma once
#include <atomic>
#include <c10/core/Device.h>
#include <cstdint>
#include <string>

namespace petl {

class MemoryMeter {
 public:
  // Installs the counting allocator (idempotent). Call before tensors whose memory you measure
  // are allocated; `petl` installs it first thing in main().
  static void install();
  static bool installed();
  static int64_t live_bytes();               // bytes of tensor memory currently allocated on the CPU
  static int64_t peak_bytes();               // maximum of live_bytes since the last reset_peak()
  static void reset_peak();                  // peak := live
  static int64_t allocations();              // number of allocations since install
  static int64_t cached_bytes();             // freed blocks kept for reuse
  static int64_t held_bytes();               // blocks held by live tensors (sizes page-rounded from cache_min())
  static int64_t high_bytes();               // highest live_bytes since install (never reset)
  static int64_t reuses();                   // allocations served from kept blocks
  static int64_t cache_slack();              // held + cached <= max(high, held) + this
  static int64_t cache_min();                // freed blocks of at least this many bytes are kept (128 KiB)
  static void set_cache_min(int64_t bytes);  // for benchmarks comparing minima (bench --cached)
  static void release_cache();               // frees every kept block

  static double mib(int64_t bytes) { return double(bytes) / (1024.0 * 1024.0); }
};

// The memory figures of one device's tensor allocator, chosen once per device (as google/benchmark's
// MemoryManager): the CPU's counting allocator above, or (CUDA LibTorch builds) a GPU's caching
// allocator — its allocated bytes, and the bytes it reserved from the driver. Everything that
// measures memory (PeakProbe, TrainingPeak, the trainer, the bench) takes one of these.
class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  // The meter of `device` (the CPU's, or that GPU's); petl::Error for a GPU without a CUDA build.
  static const DeviceMemory& of(const c10::Device& device);
  static const DeviceMemory& cpu();
  virtual std::string name() const = 0;        // "cpu", "cuda:0"
  virtual void reset_peak() const = 0;         // peak := what is allocated now
  virtual int64_t allocated() const = 0;       // bytes held by live tensors
  virtual int64_t peak_allocated() const = 0;  // since the last reset_peak()
  virtual int64_t peak_reserved() const = 0;   // bytes reserved from the driver (0 on the CPU)
  virtual bool has_reserved() const = 0;       // whether peak_reserved() means anything
};

// Whether this build can measure GPU memory (a CUDA LibTorch: PETL_WITH_CUDA).
bool cuda_memory_available();

// The peak of one stretch of work: reset at construction, read with peak().
class PeakProbe {
 public:
  explicit PeakProbe(const DeviceMemory& memory = DeviceMemory::cpu());
  int64_t peak() const;
  int64_t growth() const { return peak() - base_; }  // above what was alive at construction

 private:
  const DeviceMemory& memory_;
  int64_t base_ = 0;
};

// Tracks a training peak that excludes evaluation phases: call begin() right before the first
// training step, pause() before an evaluation, resume() after it, and end() when done.
class TrainingPeak {
 public:
  explicit TrainingPeak(const DeviceMemory& memory = DeviceMemory::cpu()) : memory_(&memory) {}
  void begin();
  void pause();
  void resume();
  void end();
  // Takes the meter's peak so far into the training peak, so that a PeakProbe (which resets the
  // meter) may measure one step in the middle of training without losing what came before.
  void fold();
  // begin(), then the peak, baseline and reserved bytes of an earlier part of the same training
  // (a job resumed from its saved state) count as if measured here.
  void continue_from(int64_t train_peak, int64_t baseline, int64_t reserved);
  int64_t train_peak() const { return train_peak_; }               // max live bytes during training phases
  int64_t eval_peak() const { return eval_peak_; }                 // max live bytes during evaluations
  int64_t baseline() const { return baseline_; }                   // live bytes at begin()
  int64_t train_peak_reserved() const { return train_reserved_; }  // where the device reserves (CUDA), else 0
  const DeviceMemory& memory() const { return *memory_; }

 private:
  void take_peak();  // the meter's peak (and reserved peak) into the training peak
  const DeviceMemory* memory_;
  int64_t train_peak_ = 0, eval_peak_ = 0, baseline_ = 0, train_reserved_ = 0;
  bool in_eval_ = false;
};

}  // namespace petl

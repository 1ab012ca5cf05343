// A small thread-safe progress bar for long work (loading, training, evaluation).
// Draws on stderr with '\r' when stderr is a terminal. Off a terminal (a log, a pipe, a sweep's
// job log) there is no bar: a line "label: 45% (450/1000), 12.0/s, eta 46 s" once every
// PETL_PROGRESS_EVERY_S seconds (default 30) over all bars of the process (from whichever bar is
// running then; the first one after the process's first bar ran that long), and a closing "label:
// done, 1000 in 83 s (12.0/s)" for a bar that printed a line or ran that long — so a short job
// logs none and a long one a few lines a minute. Disabled entirely with PETL_NO_PROGRESS=1 or enabled=false.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace petl {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled = true);
  ~ProgressBar();
  void add(int64_t n = 1);                 // thread-safe
  void set_postfix(const std::string& s);  // e.g. "loss 0.53"
  void finish();

 private:
  void draw(bool force);
  std::string label_, postfix_;
  int64_t total_;
  std::atomic<int64_t> done_{0};
  bool enabled_, tty_, finished_ = false, printed_ = false;
  double every_s_ = 30;  // off a terminal: PETL_PROGRESS_EVERY_S
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mu_;
};

}  // namespace petl

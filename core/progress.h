// A small thread-safe progress bar for long work (loading, training, evaluation).
// Draws on stderr with '\r' when stderr is a terminal; otherwise prints a line at every 10%
// so logs stay readable. Disabled entirely with PETL_NO_PROGRESS=1 or enabled=false.
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
  bool enabled_, tty_, finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mu_;
};

}  // namespace petl

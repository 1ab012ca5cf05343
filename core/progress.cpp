#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "core/env.h"

namespace petl {

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total > 0 ? total : 1) {
  enabled_ = enabled && !env::flag(env::kNoProgress);
  tty_ = isatty(fileno(stderr));
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::add(int64_t n) {
  done_ += n;
  draw(false);
}

void ProgressBar::set_postfix(const std::string& s) {
  std::lock_guard<std::mutex> lock(mu_);
  postfix_ = s;
}

void ProgressBar::finish() {
  if (finished_) return;
  draw(true);
  std::lock_guard<std::mutex> lock(mu_);
  finished_ = true;
  if (enabled_ && tty_) std::fputc('\n', stderr);
}

void ProgressBar::draw(bool force) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  auto now = std::chrono::steady_clock::now();
  int64_t done = done_.load();
  double frac = std::min(1.0, double(done) / double(total_));
  int decile = int(frac * 10);
  if (tty_) {
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    if (decile == last_decile_) return;  // one line per 10% in logs
  }
  last_draw_ = now;
  last_decile_ = decile;
  double secs = std::chrono::duration<double>(now - start_).count();
  double rate = secs > 0 ? done / secs : 0.0;
  double eta = rate > 0 ? (total_ - done) / rate : 0.0;
  const int width = 28;
  int filled = int(frac * width);
  std::string bar(filled, '#');
  bar += std::string(width - filled, '.');
  std::fprintf(stderr, "%s%s [%s] %3d%% %lld/%lld %.1f/s eta %.0fs %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               int(frac * 100), (long long)done, (long long)total_, rate, eta, postfix_.c_str(),
               tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

}  // namespace petl

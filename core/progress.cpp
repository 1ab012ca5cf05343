#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "core/env.h"
#include "core/text.h"

namespace petl {

namespace {
// Off a terminal: when the process last printed a progress line (any bar; at first, when its first bar
// started), in steady-clock seconds.
std::atomic<double> g_last_line_s{-1e300};
double steady_s(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}
}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total > 0 ? total : 1) {
  enabled_ = enabled && !env::flag(env::kNoProgress);
  tty_ = isatty(fileno(stderr));
  const std::string every = env::get(env::kProgressEveryS);
  if (!every.empty()) {
    char* end = nullptr;
    const double v = std::strtod(every.c_str(), &end);
    if (end && *end == '\0' && v >= 0) every_s_ = v;
  }
  start_ = last_draw_ = std::chrono::steady_clock::now();
  double never = -1e300;  // the first bar of the process starts the clock of its lines
  g_last_line_s.compare_exchange_strong(never, steady_s(start_));
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
  double secs = std::chrono::duration<double>(now - start_).count();
  double rate = secs > 0 ? done / secs : 0.0;
  double eta = rate > 0 ? (total_ - done) / rate : 0.0;
  if (!tty_) {
    if (force) {  // the closing line, for a bar that spoke before or ran at least one interval
      if (!printed_ && secs < every_s_) return;
      std::fprintf(stderr, "%s: done, %lld in %s (%.1f/s)%s%s\n", label_.c_str(), (long long)done,
                   format_seconds(secs).c_str(), rate, postfix_.empty() ? "" : " ", postfix_.c_str());
    } else {
      if (steady_s(now) - g_last_line_s.load() < every_s_) return;
      std::fprintf(stderr, "%s: %d%% (%lld/%lld), %.1f/s, eta %s%s%s\n", label_.c_str(), int(frac * 100),
                   (long long)done, (long long)total_, rate, format_seconds(eta).c_str(), postfix_.empty() ? "" : " ",
                   postfix_.c_str());
    }
    printed_ = true;
    g_last_line_s = steady_s(now);
    std::fflush(stderr);
    return;
  }
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const int width = 28;
  int filled = int(frac * width);
  std::string bar(filled, '#');
  bar += std::string(width - filled, '.');
  std::fprintf(stderr, "\r%s [%s] %3d%% %lld/%lld %.1f/s eta %.0fs %s\033[K", label_.c_str(), bar.c_str(),
               int(frac * 100), (long long)done, (long long)total_, rate, eta, postfix_.c_str());
  std::fflush(stderr);
}

}  // namespace petl

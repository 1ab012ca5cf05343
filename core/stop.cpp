#include "core/stop.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "core/env.h"

namespace petl::stop {
namespace {

volatile sig_atomic_t g_signal = 0;
constexpr double kPatienceSeconds = 5;
int g_depth = 0;
constexpr int kSignals[] = {SIGTERM, SIGUSR2, SIGINT};
struct sigaction g_previous[3];

struct timespec g_first_at;

double seconds_since_first() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  return double(now.tv_sec - g_first_at.tv_sec) + 1e-9 * double(now.tv_nsec - g_first_at.tv_nsec);
}

// Schedulers signal a job twice in a moment (srun forwards SIGUSR2 to every process of the step,
// then the sweep rank sends its SIGTERM; scancel likewise): that is one stop. Impatience is a
// repeated Ctrl-C, or any further signal seconds later: then the default action, at once.
extern "C" void on_stop_signal(int sig) {
  if (g_signal) {
    if ((sig == SIGINT && g_signal == SIGINT) || seconds_since_first() >= kPatienceSeconds) {
      ::signal(sig, SIG_DFL);
      ::raise(sig);
    }
    return;
  }
  clock_gettime(CLOCK_MONOTONIC, &g_first_at);
  g_signal = sig;
}

}  // namespace

Stopped::Stopped(int sig)
    : Error("stopped by " + signal_name(sig) + " (the job's state is saved; --resume continues it)"), sig_(sig) {}

Scope::Scope(bool enabled) : enabled_(enabled) {
  if (!enabled_ || g_depth++ > 0) return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &sa, &g_previous[i]);
}

Scope::~Scope() {
  if (!enabled_ || --g_depth > 0) return;
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
}

int requested() { return int(g_signal); }

void check() {
  if (g_depth > 0) {  // the test hook counts only the checks of a stoppable loop
    static const long stop_after = [] {
      try {
        return std::stol("0" + env::get(env::kTestStopAfter));
      } catch (const std::exception&) {
        return 0L;
      }
    }();
    static long checks = 0;
    if (stop_after > 0 && ++checks == stop_after && !g_signal) g_signal = SIGTERM;
  }
  if (const int s = requested()) throw Stopped(s);
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGINT:
      return "SIGINT";
    default:
      return "signal " + std::to_string(sig);
  }
}

void die(int sig) {
  ::signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(sig);
  std::_Exit(128 + sig);  // a signal whose default action does not end the process
}

void request_for_test(int sig) { g_signal = sig; }
void clear() { g_signal = 0; }

}  // namespace petl::stop

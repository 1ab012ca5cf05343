// A job's graceful stop. While a training loop runs (a stop::Scope is alive), SIGTERM, SIGUSR2 and
// SIGINT only set a flag; the loop notices it at its next iteration (or evaluation batch)
// boundary, saves the job's state and then dies by the same signal (die()), so a parent (the sweep
// farm, Slurm, a shell) sees exactly what it would have seen without petl's handler. Further
// signals within 5 s are the same stop (Slurm delivers srun's SIGUSR2 and the sweep rank's SIGTERM
// together); a repeated SIGINT (Ctrl-C twice) or a signal 5 s or more after the first kills at once
// (the default action). Outside a Scope the signals keep their default action. Torch-free.
#pragma once
#include <string>

#include "core/error.h"

namespace petl::stop {

// Thrown by check() when a stop was requested; carries the signal.
class Stopped : public Error {
 public:
  explicit Stopped(int sig);
  int signal() const { return sig_; }

 private:
  int sig_;
};

// Installs the flag-setting handlers for its lifetime (nested scopes are fine; the outermost
// restores the previous handlers). `enabled` false: does nothing.
class Scope {
 public:
  explicit Scope(bool enabled = true);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  bool enabled_;
};

int requested();                   // the signal that asked for a stop, 0 when none
void check();                      // throws Stopped when requested() != 0
std::string signal_name(int sig);  // "SIGTERM", ...
// Restores the default action of `sig` and raises it (the process ends as if petl had no handler).
[[noreturn]] void die(int sig);

// For tests: pretend `sig` arrived (as the handler would) / forget a request.
void request_for_test(int sig);
void clear();

}  // namespace petl::stop

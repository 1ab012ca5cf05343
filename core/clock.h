// Elapsed wall time on the steady clock, the one way petl times its work.
#pragma once
#include <chrono>

namespace petl {

using SteadyClock = std::chrono::steady_clock;

// Seconds from `start` to now.
inline double seconds_since(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

}  // namespace petl

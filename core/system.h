// The one clock and host helper: UTC timestamps for records and cache provenance, the host name,
// and the cores this process may use.
#pragma once
#include <cstdint>
#include <string>

namespace petl {

// The current UTC time, ISO 8601 ("2026-01-31T12:00:00Z"); reentrant (gmtime_r).
std::string now_utc();
std::string host_name();
// Number of cores this process may use (sched_getaffinity), at least 1.
int available_cores();
// Memory the machine can give a new allocation now (MemAvailable of /proc/meminfo), bytes; 0 if unknown.
int64_t available_memory_bytes();

}  // namespace petl

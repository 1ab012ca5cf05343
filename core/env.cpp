#include "core/env.h"

#include <cstdlib>

namespace petl::env {

std::string get(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool flag(const char* name) {
  auto v = get(name);
  return !(v.empty() || v == "0" || v == "false" || v == "off" || v == "no");
}

void set(const char* name, const std::string& value) { ::setenv(name, value.c_str(), 1); }

}  // namespace petl::env

// CacheTaps' one spelling (see cache_taps.h).
#include "core/cache_taps.h"

#include "core/error.h"

namespace petl {

std::string CacheTaps::str() const {
  if (cls && kv) return "cls+kv";
  if (cls) return "cls";
  if (kv) return "kv";
  return "none";
}

CacheTaps CacheTaps::parse(const std::string& s) {
  CacheTaps t;
  if (s == "cls")
    t.cls = true;
  else if (s == "kv")
    t.kv = true;
  else if (s == "cls+kv" || s == "kv+cls")
    t.cls = t.kv = true;
  else
    PETL_FAIL("taps '", s, "': expected cls, kv or cls+kv");
  return t;
}

}  // namespace petl

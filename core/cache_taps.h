// Which frozen-backbone features a feature cache holds (and a method's training or evaluation reads
// from one): the final-norm cls token, every block's K and V, or both. Written "cls", "kv",
// "cls+kv" (also read: "kv+cls"); "none" when empty.
#pragma once
#include <string>

namespace petl {

struct CacheTaps {
  bool cls = false, kv = false;
  bool any() const { return cls || kv; }
  std::string str() const;                       // "cls", "kv", "cls+kv" or "none"
  static CacheTaps parse(const std::string& s);  // inverse of str() for a non-empty set; petl::Error otherwise
  // Both sets of taps together.
  CacheTaps operator|(const CacheTaps& o) const { return {cls || o.cls, kv || o.kv}; }
  // Whether every tap of `o` is here too.
  bool covers(const CacheTaps& o) const { return (!o.cls || cls) && (!o.kv || kv); }
  bool operator==(const CacheTaps& o) const { return cls == o.cls && kv == o.kv; }
  bool operator!=(const CacheTaps& o) const { return !(*this == o); }
};

}  // namespace petl

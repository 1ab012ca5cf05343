// petl::Error — the one exception type for user mistakes (bad path, bad label, wrong shape).
// Messages name the file / line / key and say what was expected and what was found.
// Internal invariants use assert() or TORCH_INTERNAL_ASSERT instead.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace petl {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A job that cannot be set up from its arguments (a flag's value, an unknown method, task, recipe
// or --set key, an --out it cannot write): `petl run` reports it and writes no failed record —
// there is no job to record. Errors found in the data or files it reads stay petl::Error.
class ArgumentError : public Error {
 public:
  explicit ArgumentError(const std::string& what) : Error(what) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from any streamable pieces: PETL_FAIL("file ", path, " line ", n, ": ...")
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

}  // namespace petl

#define PETL_FAIL(...) throw ::petl::Error(::petl::str_cat(__VA_ARGS__))
#define PETL_CHECK(cond, ...)            \
  do {                                   \
    if (!(cond)) PETL_FAIL(__VA_ARGS__); \
  } while (0)

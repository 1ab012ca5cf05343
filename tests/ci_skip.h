// A test whose prerequisite (a program, a data file) is missing skips on a developer's machine and
// fails in CI (environment variable CI set, not "false"), where scripts/install-deps.sh installs
// everything: nothing passes there without running. Torch-free (tests/io uses it too).
#pragma once
#include <cstdlib>
#include <cstring>

namespace petl::test {
inline bool in_ci() {
  const char* c = std::getenv("CI");
  return c != nullptr && *c != '\0' && std::strcmp(c, "false") != 0 && std::strcmp(c, "0") != 0;
}
}  // namespace petl::test

// Use inside a test body or SetUp(): returns from it.
#define PETL_SKIP_UNLESS_CI(reason)                                                                   \
  do {                                                                                                \
    if (::petl::test::in_ci())                                                                        \
      FAIL() << (reason) << " (CI is set: scripts/install-deps.sh installs it, so this is an error)"; \
    else                                                                                              \
      GTEST_SKIP() << (reason);                                                                       \
  } while (0)

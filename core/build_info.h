// What this build is, for the provenance of every record: the git commit of the source tree
// (recorded at build time) and the LibTorch version it was built against.
#pragma once
#include <string>

namespace petl {

std::string git_commit();        // "abc1234" (+ "-dirty"), or "unknown" outside a git checkout
std::string libtorch_version();  // e.g. "1.13.1"

}  // namespace petl

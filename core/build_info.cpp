#include "core/build_info.h"

#include "petl_git_commit.h"  // generated at build time (cmake/git_commit.cmake)

namespace petl {

std::string git_commit() { return PETL_GIT_COMMIT; }
std::string libtorch_version() { return PETL_LIBTORCH_VERSION; }

}  // namespace petl

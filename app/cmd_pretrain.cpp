// `petl pretrain` — placeholder until the upstream generators land (replaced below).
#include "app/commands.h"
#include "harness/error.h"
namespace petl::cli {
int cmd_pretrain(const Args&) { PETL_FAIL("pretrain: not built yet"); }
}  // namespace petl::cli

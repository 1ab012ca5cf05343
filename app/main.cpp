// petl — entry point: installs the memory meter, dispatches to a subcommand, turns user errors
// into one clear line and exit status 2.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <sys/prctl.h>

#include "app/commands.h"
#include "core/env.h"
#include "core/error.h"
#include "core/text.h"
#include "core/threads.h"
#include "harness/train/memory_meter.h"

namespace {
const char* kUsage = R"(petl — parameter-efficient transfer learning benchmark for Vision Transformers

usage: petl <command> [options]        (petl <command> --help for every flag)

commands:
  list       registered methods, architectures, protocols; tasks under --data-root
  run        train one method on one task → one result record (JSON lines) + checkpoint
  bundle     several `run` jobs of one task in one process: shared inputs, one test pass for all
  eval       evaluate a saved checkpoint on a split, optionally writing the logits
  suite      build the embedded real-data suite "mini" (VTAB-1k txt format)
  data       data check ROOT: verify a VTAB-1k download (lists, counts, classes, every image)
  pretrain   build the embedded backbone (small ViT) on upstream data disjoint from the suite
  bench      peak training memory (MiB by category) and images/s of methods, in one process
  demo       the main job: every method on every task of the embedded suite, as a table
  report     paper-style tables and plots from result records, beside published numbers
  cache      frozen-backbone feature caches (HDF5): build, ls, verify, rm
  sweep      a whole sweep (methods x tasks x seeds x grid) from a YAML file, farmed over MPI ranks
  import-checkpoint  a checkpoint written by the authors' code → a petl checkpoint (VPT, VQT, BitFit, AdaptFormer)
)";
}

int main(int argc, char** argv) {
  // Before anything else: the OpenMP runtime's wait policy is read when it is loaded, so petl's
  // default (a short spin, core/threads.h) needs one re-exec with it set. Commands that compute.
  if (argc >= 2) {
    const std::string c = argv[1];
    if (c == "run" || c == "bundle" || c == "eval" || c == "bench" || c == "demo" || c == "pretrain" || c == "cache" ||
        c == "sweep")
      petl::threads::apply_default_wait_policy(argv);
  }
  // A job a sweep rank started dies with that rank (e.g. mpirun killed with SIGKILL): no orphan
  // keeps training for a sweep that is gone.
  if (const std::string parent = petl::env::get(petl::env::kSweepParentPid); !parent.empty()) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (std::to_string(getppid()) != parent) return 143;  // the rank died before we got here
  }
  petl::MemoryMeter::install();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, stdout);
    return argc < 2 ? 1 : 0;
  }
  std::string cmd = argv[1];
  petl::cli::Args args(argv + 2, argv + argc);
  const std::map<std::string, int (*)(const petl::cli::Args&)> table = {
      {"list", petl::cli::cmd_list},     {"run", petl::cli::cmd_run},
      {"bundle", petl::cli::cmd_bundle}, {"eval", petl::cli::cmd_eval},
      {"suite", petl::cli::cmd_suite},   {"pretrain", petl::cli::cmd_pretrain},
      {"bench", petl::cli::cmd_bench},   {"demo", petl::cli::cmd_demo},
      {"report", petl::cli::cmd_report}, {"cache", petl::cli::cmd_cache},
      {"sweep", petl::cli::cmd_sweep},   {"import-checkpoint", petl::cli::cmd_import_checkpoint},
      {"data", petl::cli::cmd_data}};
  auto it = table.find(cmd);
  if (it == table.end()) {
    std::vector<std::string> names;
    for (const auto& [name, fn] : table) names.push_back(name);
    std::fprintf(stderr, "petl: unknown command '%s'%s\n\n%s", cmd.c_str(), petl::did_you_mean(cmd, names).c_str(),
                 kUsage);
    return 2;
  }
  try {
    return it->second(args);
  } catch (const petl::Error& e) {
    std::fprintf(stderr, "petl %s: error: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petl %s: internal error: %s\n", cmd.c_str(), e.what());
    return 3;
  }
}

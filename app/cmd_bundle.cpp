// `petl bundle`: several `petl run` jobs of one task in one process (harness/train/bundle.h).
// `petl sweep` runs one per bundle of query-only jobs; users may run one by hand too.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli_util.h"
#include "app/commands.h"
#include "core/text.h"
#include "harness/train/bundle.h"
#include "harness/train/job.h"

namespace petl::cli {

int cmd_bundle(const Args& args) {
  std::vector<std::string> members;
  std::string device;
  int threads = -1;
  po::options_description d("petl bundle options");
  d.add_options()("job", po::value(&members)->composing(),
                  "one job: a JSON array of `petl run` arguments, e.g. '[\"--method\",\"synqt\",\"--task\",\"cifar\","
                  "\"--data-root\",\"vtab\",\"--seed\",\"1\",\"--out\",\"runs/a\"]' (a leading \"run\" is allowed); "
                  "repeatable, run in the order given. The jobs must share --data-root, --task, --backbone/--arch, "
                  "--device and --threads")
      ("threads", po::value(&threads), "intra-op threads for every job (replaces each job's --threads and the token {threads})")
      ("device", po::value(&device), "device for every job (appended to each job's arguments)")
      ("no-progress", "no progress bars");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl bundle --job JSON [--job JSON ...] [--threads N] [--device D]\n"
                  "Runs several `petl run` jobs of one task in one process: the backbone, the train split (its cached\n"
                  "features resident in memory) and the test split are loaded once; the jobs train one after another;\n"
                  "ONE pass over the test split evaluates every snapshot of every job whose evaluation runs from\n"
                  "frozen-backbone features (linear, vqt, synqt). Each job writes its own record, checkpoint and state\n"
                  "as `petl run` would (--resume in a job's arguments reuses or continues it). A job that fails gets its\n"
                  "failed record and the others go on; exit status 1 when any failed. SIGTERM/SIGUSR2/SIGINT save the\n"
                  "state of the job in training; the trained jobs' states are already saved."))
    return 0;
  PETL_CHECK(!members.empty(), "petl bundle: no --job given (see --help)");
  std::vector<JobSpec> specs;
  for (size_t i = 0; i < members.size(); ++i) {
    Args a;
    try {
      a = nlohmann::json::parse(members[i]).get<Args>();
    } catch (const nlohmann::json::exception& e) {
      PETL_FAIL("petl bundle: --job ", i + 1, ": expected a JSON array of strings (petl run arguments): ", e.what());
    }
    if (!a.empty() && a.front() == "run") a.erase(a.begin());
    // The bundle's --threads / --device replace the job's own.
    auto drop = [&a](const std::string& flag) {
      Args kept;
      for (size_t k = 0; k < a.size(); ++k) {
        if (a[k] == flag && k + 1 < a.size()) {
          ++k;
          continue;
        }
        if (a[k].rfind(flag + "=", 0) == 0) continue;
        kept.push_back(a[k]);
      }
      a = kept;
    };
    for (auto& x : a)
      if (x == "{threads}") x = std::to_string(threads < 0 ? 0 : threads);
    if (threads >= 0) {
      drop("--threads");
      a.insert(a.end(), {"--threads", std::to_string(threads)});
    }
    if (!device.empty()) {
      drop("--device");
      a.insert(a.end(), {"--device", device});
    }
    JobSpec spec;
    std::string record_file;
    try {
      if (!parse_run_options(a, spec, record_file)) return 0;
    } catch (const Error& e) {
      PETL_FAIL("petl bundle: --job ", i + 1, ": ", e.what());
    }
    PETL_CHECK(record_file.empty(), "petl bundle: --job ", i + 1, ": --record-file is not supported in a bundle");
    if (vm.count("no-progress")) spec.progress = false;
    specs.push_back(std::move(spec));
  }
  const auto outcomes = run_bundle(specs);
  int failed = 0;
  for (const auto& o : outcomes) {
    if (!o.record) {
      ++failed;
      std::printf("%s %s: FAILED: %s\n", o.method.c_str(), o.task.c_str(), first_line(o.error).c_str());
      continue;
    }
    const Record& r = *o.record;
    if (r.status == "does_not_fit")
      std::printf("%s %s seed %d: does not fit the memory budget\n", o.method.c_str(), r.task.c_str(), r.seed);
    else
      std::printf("%s %s seed %d: accuracy %.2f%% (%s)%s\n", o.method.c_str(), r.task.c_str(), r.seed,
                  r.accuracy.value_or(0), r.protocol.c_str(), r.reused ? ", reused" : "");
  }
  return failed ? 1 : 0;
}

}  // namespace petl::cli

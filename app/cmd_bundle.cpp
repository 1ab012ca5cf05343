// `petl bundle`: several `petl run` jobs of one task in one process (harness/train/bundle.h).
// `petl sweep` runs one per bundle of query-only jobs; users may run one by hand too.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli_util.h"
#include "app/commands.h"
#include "app/job_args.h"
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
                  "--device and --threads")("threads", po::value(&threads),
                                            "intra-op threads for every job (replaces each job's --threads)")(
      "device", po::value(&device), "device for every job (replaces each job's --device)")("no-progress",
                                                                                           "no progress bars");
  po::variables_map vm;
  if (!parse_args(
          args, d, vm,
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
  const std::vector<Args> member_args = bundle_members(members);
  for (size_t i = 0; i < member_args.size(); ++i) {
    std::optional<JobSpec> spec;
    try {
      spec = parse_run_args(member_args[i], method_keys_help());
    } catch (const Error& e) {
      PETL_FAIL("petl bundle: --job ", i + 1, ": ", e.what());
    }
    if (!spec) return 0;  // --help inside a job
    PETL_CHECK(spec->record_file.empty(), "petl bundle: --job ", i + 1, ": --record-file is not supported in a bundle");
    if (threads >= 0) spec->threads = threads;  // the bundle's --threads / --device replace the job's own
    if (!device.empty()) spec->device = device;
    if (vm.count("no-progress")) spec->progress = false;
    specs.push_back(std::move(*spec));
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
    if (r.status == RecordStatus::kDoesNotFit)
      std::printf("%s %s seed %d: does not fit the memory budget\n", o.method.c_str(), r.task.c_str(), r.seed);
    else
      std::printf("%s %s seed %d: accuracy %.2f%% (%s)%s\n", o.method.c_str(), r.task.c_str(), r.seed,
                  r.accuracy.value_or(0), to_string(r.protocol), r.reused ? ", reused" : "");
  }
  return failed ? 1 : 0;
}

}  // namespace petl::cli

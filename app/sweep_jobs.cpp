// The sweep plan's jobs as the farm's (see sweep_jobs.h).
#include "app/sweep_jobs.h"

#include "app/job_args.h"

namespace petl::cli {

std::vector<FarmJob> farm_jobs_from_plan(const std::vector<SweepJob>& jobs, int gpus_per_node) {
  std::vector<FarmJob> out;
  for (const auto& s : jobs) {
    FarmJob f;
    f.key = s.key;
    f.cost = s.cost;
    f.depends_on = s.depends_on;
    f.after = s.after;
    f.is_cache = s.is_cache;
    f.result_file = s.result_file;
    f.log_file = s.log_file;
    f.bundle = s.bundle;
    if (s.is_cache) {
      f.argv = cache_build_command(*s.build);
      f.identity = {{"task", s.task},
                    {"taps", s.cache.taps.str()},
                    {"splits", s.cache.splits},
                    {"dtype", to_string(s.cache_dtype)}};
    } else {
      JobSpec run = *s.run;
      if (gpus_per_node > 0) run.device = kFarmDeviceToken;
      f.argv = run_command(run);
      f.identity = {{"method", s.method},
                    {"task", s.task},
                    {"seed", s.seed},
                    {"protocol", to_string(run.protocol)},
                    {"sets", s.sets}};
      if (!s.stage.empty()) f.identity["stage"] = s.stage;
      if (s.shots > 0) {
        f.identity["shots"] = s.shots;
        f.identity["split_seed"] = s.split_seed;
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace petl::cli

// The sweep plan's jobs as the farm's (harness/sweep/farm.h): each planned spec becomes its child's
// command line through app/job_args.h, with its log and result files and what the reporter names it
// by. Torch-free (the test stand-in of `petl sweep` and the farm's tests link it too).
#pragma once
#include <vector>

#include "harness/sweep/farm.h"
#include "harness/sweep/sweep_config.h"

namespace petl::cli {

// The plan's jobs as farm jobs (same order). gpus_per_node > 0: training jobs run on the device
// the farm gives each rank (the token {device}).
std::vector<FarmJob> farm_jobs_from_plan(const std::vector<SweepJob>& jobs, int gpus_per_node = 0);

}  // namespace petl::cli

// The command line of a job, written and read in ONE place: `petl run`'s flags ⇄ JobSpec, and
// `petl cache build`'s flags ⇄ CacheBuildSpec (harness/spec/job_spec.h). Each flag is declared once,
// in a table that both parses it and writes it back, so that
//     parse_run_args(run_args(spec)) == spec    for every spec (tests/io/test_job_args.cpp),
// and the sweep, the farm, bundles and the demo build their children from specs (run_command,
// cache_build_command, bundle_command) instead of spelling flags by hand. Torch-free.
#pragma once
#include <boost/program_options.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness/spec/job_spec.h"

namespace petl::cli {

using Args = std::vector<std::string>;

// `petl run`'s options into a spec (argv kept for provenance); nullopt when --help was printed.
// Throws petl::Error naming the flag and what was expected. `method_keys`: appended to the help of
// --set (the registry's method keys: app/method_help.h; the torch-free tools pass nothing).
std::optional<JobSpec> parse_run_args(const Args& args, const std::string& method_keys = "");
// The arguments after `petl run` that give back `spec` (flags at their default are left out).
Args run_args(const JobSpec& spec);
// {"run", run_args(spec)...}: a child's arguments after the program.
Args run_command(const JobSpec& spec);
// `petl run --help`'s option list (for tests that every flag is documented).
boost::program_options::options_description run_options_description(const std::string& method_keys = "");

std::optional<CacheBuildSpec> parse_cache_build_args(const Args& args);
Args cache_build_args(const CacheBuildSpec& spec);
Args cache_build_command(const CacheBuildSpec& spec);  // {"cache", "build", ...}

// `petl bundle`: several run commands (each as run_command gives it) as one child's arguments,
// {"bundle", "--job", <JSON array of the run arguments>, ...}; and back (the leading "run" of a
// member is dropped).
Args bundle_command(const std::vector<Args>& run_commands);
std::vector<Args> bundle_members(const std::vector<std::string>& job_json);

}  // namespace petl::cli

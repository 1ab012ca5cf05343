// The `petl` command line: one function per subcommand (argv after the subcommand name).
#pragma once
#include <string>
#include <vector>

namespace petl::cli {

using Args = std::vector<std::string>;
int cmd_list(const Args& args);
int cmd_run(const Args& args);
int cmd_bundle(const Args& args);
// The registry's method keys, for the help of --set (petl run, bundle, eval).
std::string method_keys_help();
int cmd_eval(const Args& args);
int cmd_suite(const Args& args);
int cmd_data(const Args& args);  // petl data check ROOT
int cmd_pretrain(const Args& args);
int cmd_bench(const Args& args);
int cmd_bench_cached(const Args& args);  // petl bench --cached
int cmd_bench_budget(const Args& args);  // petl bench --budget LIST
int cmd_demo(const Args& args);
int cmd_report(const Args& args);
int cmd_cache(const Args& args);
int cmd_sweep(const Args& args);
int cmd_import_checkpoint(const Args& args);

}  // namespace petl::cli

// `petl suite` (build the embedded suite). `petl pretrain` lives in app/cmd_pretrain.cpp.
#include <cstdio>

#include "app/cli_util.h"
#include "app/commands.h"
#include "datasets/suite_fewshot.h"
#include "datasets/suite_mini.h"

namespace petl::cli {

int cmd_suite(const Args& args) {
  std::string out;
  data::SuiteOptions so;
  po::options_description d("petl suite options");
  d.add_options()("out", po::value(&out)->required(), "directory to write the suite into (created)")(
      "fashion-mnist", po::value(&so.fashion_mnist_dir)->default_value(so.fashion_mnist_dir),
      "folder of Debian's dataset-fashion-mnist (*-ubyte.gz)")(
      "test-size", po::value(&so.test_size)->default_value(so.test_size), "images per test split (>= 1000)")(
      "no-progress", "no progress bars")(
      "fewshot",
      "write the embedded few-shot set instead: the mini tasks in NOAH's few-shot layout (annotations/"
      "train_meta.list.num_shot_K.seed_S for K in 1,2,4,8,16 and S in 0,1,2, val_meta.list, test_meta.list) for "
      "`--benchmark fewshot`")(
      "from", po::value<std::string>(),
      "with --fewshot: a mini suite already written by `petl suite --out` (default: written now into OUT/.mini)");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl suite --out DIR [--fewshot [--from MINI_DIR]]\n"
                  "Writes the embedded suite 'mini' deterministically in the VTAB-1k txt format:\n"
                  "real Fashion-MNIST plus procedurally rendered structured tasks (see DIR/SUITE.md)."))
    return 0;
  so.progress = !vm.count("no-progress");
  if (vm.count("fewshot")) {
    std::string mini = vm.count("from") ? vm["from"].as<std::string>() : out + "/.mini";
    if (!vm.count("from")) data::build_mini_suite(mini, so);
    data::build_fewshot_suite(mini, out);
    std::printf("embedded few-shot set written to %s (from the mini suite in %s):\n", out.c_str(), mini.c_str());
    for (auto& t : data::mini_suite_tasks())
      std::printf("  %-16s %3d classes  shots 1,2,4,8,16 x split seeds 0,1,2; val 200, test %d\n", t.name.c_str(),
                  t.num_classes, so.test_size);
    return 0;
  }
  data::build_mini_suite(out, so);
  std::printf("suite 'mini' written to %s:\n", out.c_str());
  for (auto& t : data::mini_suite_tasks())
    std::printf("  %-16s %3d classes  %s\n", t.name.c_str(), t.num_classes, t.description.c_str());
  return 0;
}

}  // namespace petl::cli

// `petl suite` (build the embedded suite). `petl pretrain` lives in app/cmd_pretrain.cpp.
#include <cstdio>

#include "app/cli_util.h"
#include "app/commands.h"
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
      "no-progress", "no progress bars");
  po::variables_map vm;
  if (!parse_args(args, d, vm,
                  "usage: petl suite --out DIR\n"
                  "Writes the embedded suite 'mini' deterministically in the VTAB-1k txt format:\n"
                  "real Fashion-MNIST plus procedurally rendered structured tasks (see DIR/SUITE.md)."))
    return 0;
  so.progress = !vm.count("no-progress");
  data::build_mini_suite(out, so);
  std::printf("suite 'mini' written to %s:\n", out.c_str());
  for (auto& t : data::mini_suite_tasks())
    std::printf("  %-16s %3d classes  %s\n", t.name.c_str(), t.num_classes, t.description.c_str());
  return 0;
}

}  // namespace petl::cli

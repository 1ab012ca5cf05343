// Small helpers shared by the subcommands: option parsing with --help, table printing.
#pragma once
#include <boost/program_options.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"

namespace petl::cli {
namespace po = boost::program_options;

// Parses args against desc; prints help and returns false when --help is given.
inline bool parse_args(const std::vector<std::string>& args, po::options_description& desc, po::variables_map& vm,
                       const std::string& usage) {
  desc.add_options()("help,h", "show this help and exit");
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << usage << "\n\n" << desc << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    PETL_FAIL(e.what(), " (see --help)");
  }
  return true;
}

}  // namespace petl::cli

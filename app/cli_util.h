// Small helpers shared by the subcommands: option parsing with --help, table printing.
#pragma once
#include <algorithm>
#include <boost/program_options.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/text.h"

namespace petl::cli {
namespace po = boost::program_options;

// Every long option of desc as typed ("--epochs"), for "did you mean".
// Prints rows as aligned columns to stdout, two spaces apart; right_align[i]: column i is padded on
// the left (numbers). The last column gets no trailing padding.
inline void print_table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right_align) {
  if (rows.empty()) return;
  std::vector<size_t> w(rows.front().size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      const std::string pad(i < w.size() ? w[i] - r[i].size() : 0, ' ');
      const bool right = i < right_align.size() && right_align[i];
      line += (i ? "  " : "") + (right ? pad + r[i] : r[i] + (i + 1 < r.size() ? pad : ""));
    }
    std::cout << line << "\n";
  }
  std::cout.flush();
}

inline std::vector<std::string> long_option_names(const po::options_description& desc) {
  std::vector<std::string> names;
  for (const auto& o : desc.options())
    if (!o->long_name().empty()) names.push_back("--" + o->long_name());
  return names;
}

// A command line boost could not parse, as petl::Error: an unknown flag with the closest known ones.
[[noreturn]] inline void fail_parse(const po::error& e, const po::options_description& desc, const std::string& see) {
  if (const auto* u = dynamic_cast<const po::unknown_option*>(&e))
    PETL_FAIL(e.what(), did_you_mean(u->get_option_name(), long_option_names(desc)), " (", see, ")");
  PETL_FAIL(e.what(), " (", see, ")");
}

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
    fail_parse(e, desc, "see --help");
  }
  return true;
}

// --state-every: minutes (a number >= 0) or "off" (returned as -1).
inline double parse_state_every(const std::string& text, const std::string& flag) {
  if (text == "off" || text == "never") return -1;
  double v = -1;
  try {
    size_t used = 0;
    v = std::stod(text, &used);
    if (used != text.size()) v = -1;
  } catch (const std::exception&) {
    v = -1;
  }
  PETL_CHECK(v >= 0 && v < 1e9, flag, " '", text, "': expected minutes (a number >= 0; 0 = every epoch) or 'off'");
  return v;
}

}  // namespace petl::cli

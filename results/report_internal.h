// Private helpers shared by the report's source files (report*.cpp): number formatting, the
// reference file name, file writing, and the record values the report reads beyond Run's own.
// Not part of the public API (results/report.h).
#pragma once
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "results/report.h"

namespace petl::report::internal {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kMissing = "–";
constexpr const char* kReferenceFileName = "vpetl_bench_vtab1k.csv";

// Fixed-point with `prec` decimals; never prints "-0.00".
std::string fixed(double v, int prec);
// Number of code points of a UTF-8 string (for column widths).
size_t utf8_len(const std::string& s);
// A whole-string number ("1e-3", "70"); false for "", "abc", "1x".
bool parse_number(const std::string& s, double& v);
// Plain mean; NaN when empty.
double mean_of(const std::vector<double>& v);
// Writes a whole file; petl::Error naming it on failure.
void write_text(const std::filesystem::path& p, const std::string& text);

// A JSON value as text: strings as they are, other values as JSON ("0.001", "2", "true").
std::string value_text(const json& v);
// A member of a record section (settings.recipe, memory, data, backbone) as text: strings as
// they are, other values as JSON; `def` when the section or the member is absent or null.
std::string member_text(const json& section, const std::string& key, const std::string& def);
// settings.recipe[key] of a run's record as text, "?" when absent.
std::string recipe_value(const Run& r, const std::string& key);
// What every plot shows, in words, for plot titles and the report's Plots section: "protocol
// best_of_10; backbone ARCH (sha256 …); batch size 64".
std::string plot_subtitle(const Table& t);

}  // namespace petl::report::internal

// Private helpers shared by the report's source files (report*.cpp): number formatting, the
// reference file name, file writing, the record values the report reads beyond Run's own, and the
// table steps and renderers that the VTAB and the few-shot report share.
// Not part of the public API (results/report.h).
#pragma once
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
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
std::string plot_subtitle(const std::string& protocol, const std::vector<Run>& runs);

// ---- steps of build_table that the few-shot table shares (report_table.cpp)

using RunText = std::function<std::string(const Run&)>;
// No ok record: throws petl::Error naming the failures, dry runs and other schemas read.
[[noreturn]] void fail_without_runs(const Records& records);
// The later of two records with the same method, task (shots, split seed), seed and settings wins; warnings.
void drop_duplicates(std::vector<Run>& runs, std::vector<std::string>& warnings);
// Mixed backbones, headline protocols (without --protocol), preprocessing: error, or a warning with allow_mixed.
void check_mixed_properties(const std::vector<Run>& runs, const ReportOptions& opts,
                            std::vector<std::string>& warnings);
// A warning per task evaluated on different test lists.
void warn_test_lists(const std::vector<Run>& runs, std::vector<std::string>& warnings);
// Row identities: per method (in the order given), one row per combination of the identity keys
// that vary within a cell (cell_of: the cell a run belongs to, e.g. its task); each run joins
// cells[cell_of(run)] of its row. Rows ordered by method, then settings by value; short labels.
void build_rows(const std::vector<Run>& runs, const std::vector<std::string>& methods, const RunText& cell_of,
                std::vector<Row>& rows, std::map<std::string, std::vector<std::string>>& varying);
// A cell's statistics over its runs (sorted by split seed, then seed): accuracy mean ± std,
// seeds, parameters, memory, time.
void cell_stats(const std::vector<Run>& runs, Cell& cell);
// "protocol best_of_10 (maximum test accuracy over the evaluations every 10 epochs)"; sets protocol.
std::string caption_protocol(const std::vector<Run>& runs, std::string& protocol);
// "Backbone …. Preprocessing …. Recipe …: E epochs, batch size B, fp32 on cpu. "
std::string caption_setup(const std::vector<Run>& runs);
// Notes at the front: what was read; at the end: what varies between a method's rows ("within WITHIN").
void add_notes(const Records& records, const std::vector<std::string>& methods,
               const std::map<std::string, std::vector<std::string>>& varying, const std::string& within,
               std::vector<std::string>& notes);

// The file stem of a few-shot plot: fewshot_<dataset> (characters other than letters, digits, '-'
// and '_' as '_'), fewshot_mean for "" (the mean over the datasets) (report_plots.cpp).
std::string fewshot_plot_stem(const std::string& dataset);

// ---- the val_select section (report_selection.cpp)

// Moves the final records (stage "final") out of t.records.runs into t.selection.finals, dropping
// their duplicates, unless they are the only records: then they stay (the main table is built from
// them, Selection::finals_in_main) and finals is filled by take_main_finals after the duplicates.
void split_selection_runs(Table& t);
void take_main_finals(Table& t);
// The selection rows, cells, means, caption and notes; after the main table's columns and rows.
void build_selection(Table& t);

// ---- rendering helpers (report_render.cpp)

// A padded markdown table; right-aligned columns get ---:.
std::string md_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& body,
                     const std::vector<bool>& right);
// A parameter count for people: 776, 1.54 K, 23.8 K, 2.69 M, 85.8 M.
std::string count_text(double n);
// Fixed-point with a sign: "+1.50", "-0.25".
std::string signed_fixed(double v, int prec);
// Fixed-point, "" when not finite.
std::string num_or_blank(double v, int prec);
// Up to 10 significant digits, "" when not finite.
std::string exact_or_blank(double v);
// LaTeX-escaped text (±, –, … as LaTeX).
std::string tex_escape(const std::string& s);
// One CSV line of the fields (quoted where needed).
std::string csv_line(const std::vector<std::string>& fields);
// The end of report.md: notes, warnings, jobs that do not fit, failed jobs.
std::string notes_section(const std::vector<std::string>& notes, const std::vector<std::string>& warnings,
                          const Records& records);

}  // namespace petl::report::internal

// `petl report` library, the shared part: VTAB task list and groups, the few-shot datasets and
// which benchmark the records are, the reference file's location, mean ± sample std, the private
// helpers of report_internal.h, and write_report (load → the VTAB or the few-shot table → files). The steps live in
// report_load.cpp, report_table.cpp, report_render.cpp and report_plots.cpp; see report.h for the error/warning policy.
#include "results/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>

#include "core/error.h"
#include "core/paths.h"
#include "core/text.h"
#include "results/report_internal.h"

namespace petl::report {
namespace fs = std::filesystem;
using namespace internal;

const char* const kDefaultReferenceLabel = "V-PETL Bench (NeurIPS 2024), ViT-B/16 IN-21k, best_of_10";

// ------------------------------------------------------------------ private helpers

namespace internal {

std::string fixed(double v, int prec) {
  if (std::fabs(v) < 0.5 * std::pow(10.0, -prec)) v = 0.0;
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

size_t utf8_len(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end && *end == 0;
}

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream os(p, std::ios::binary);
  PETL_CHECK(os, "cannot write ", p.string());
  os << text;
  PETL_CHECK(os.good(), "error writing ", p.string());
}

std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string member_text(const json& section, const std::string& key, const std::string& def) {
  if (!section.is_object()) return def;
  auto it = section.find(key);
  return it == section.end() || it->is_null() ? def : value_text(*it);
}

std::string recipe_value(const Run& r, const std::string& key) {
  const json& s = r.record.settings;
  return s.is_object() && s.contains("recipe") ? member_text(s["recipe"], key, "?") : std::string("?");
}

std::string plot_subtitle(const Table& t) { return plot_subtitle(t.protocol, t.records.runs); }

std::string plot_subtitle(const std::string& protocol, const std::vector<Run>& runs) {
  return "protocol " + protocol + "; backbone " + (runs.empty() ? std::string("?") : runs[0].backbone) +
         "; batch size " + (runs.empty() ? std::string("?") : recipe_value(runs[0], "batch_size"));
}

}  // namespace internal

// ------------------------------------------------------------------ tasks, reference location, stats

const std::vector<std::string>& vtab_tasks() {
  static const std::vector<std::string> t = {
      "cifar",        "caltech101",     "dtd",     "oxford_flowers102", "oxford_iiit_pet",      "svhn",
      "sun397",       "patch_camelyon", "eurosat", "resisc45",          "diabetic_retinopathy", "clevr_count",
      "clevr_dist",   "dmlab",          "kitti",   "dsprites_loc",      "dsprites_ori",         "smallnorb_azi",
      "smallnorb_ele"};
  return t;
}

std::string vtab_group(const std::string& task) {
  const auto& t = vtab_tasks();
  auto it = std::find(t.begin(), t.end(), task);
  if (it == t.end()) return "";
  size_t i = size_t(it - t.begin());
  return i < 7 ? "Natural" : i < 11 ? "Specialized" : "Structured";
}

std::string default_reference_csv() { return find_results_file(kReferenceFileName); }

// ------------------------------------------------------------------ few-shot: datasets, benchmark, cells

const std::vector<std::string>& fewshot_datasets() {
  static const std::vector<std::string> d = {"fgvc_aircraft", "food101", "oxford_flowers102", "oxford_iiit_pet",
                                             "stanford_cars"};
  return d;
}

bool is_fewshot(const Records& records) {
  std::vector<std::string> order;                                        // benchmarks in first-seen order
  std::map<std::string, std::pair<int, std::vector<std::string>>> seen;  // benchmark → records, files
  for (auto& r : records.runs) {
    auto& [n, files] = seen[r.benchmark];
    if (n++ == 0) order.push_back(r.benchmark);
    if (std::find(files.begin(), files.end(), r.src.file) == files.end()) files.push_back(r.src.file);
  }
  if (order.size() > 1) {
    std::vector<std::string> parts;
    for (auto& b : order)
      parts.push_back((b.empty() ? std::string("VTAB-1k (no \"benchmark\")") : "'" + b + "'") + " in " +
                      std::to_string(seen[b].first) + " ok record(s) of " + join(seen[b].second, ", "));
    PETL_FAIL("records mix benchmarks: ", join(parts, "; "),
              ". Report each benchmark on its own: pass its result files to a separate `petl report` (--allow-mixed "
              "does not combine them)");
  }
  return order.size() == 1 && order[0] == kFewShotBenchmark;
}

std::string fewshot_cell_key(const std::string& dataset, int shots) { return dataset + '\x1f' + std::to_string(shots); }

const Cell* fewshot_cell(const Row& row, const std::string& dataset, int shots) {
  auto it = row.cells.find(fewshot_cell_key(dataset, shots));
  return it == row.cells.end() ? nullptr : &it->second;
}

Stats mean_std(const std::vector<double>& xs) {
  Stats s;
  s.n = int(xs.size());
  if (xs.empty()) return s;
  s.mean = mean_of(xs);
  if (xs.size() > 1) {
    double ss = 0;
    for (double x : xs) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / double(xs.size() - 1));
  }
  return s;
}

// ------------------------------------------------------------------ the whole report

namespace {

// The reference of the options: "default" → the project's copy (a note when it is missing),
// "none" or "" → no reference.
Reference options_reference(const ReportOptions& opts, std::vector<std::string>& notes) {
  std::string ref_path = opts.reference;
  if (ref_path == "default") {
    ref_path = default_reference_csv();
    if (ref_path.empty())
      notes.push_back(std::string("The published reference ") + kReferenceFileName +
                      " was not found; no reference rows.");
  }
  if (ref_path == "none") ref_path.clear();
  return ref_path.empty() ? Reference{} : load_reference(ref_path, opts.reference_label);
}

// The counts of what was read but not tabulated.
void count_skipped(const Records& records, ReportResult& res) {
  for (auto& s : records.skipped)
    (s.status == RecordStatus::kFailed       ? res.n_failed
     : s.status == RecordStatus::kDoesNotFit ? res.n_does_not_fit
                                             : res.n_dry_run)++;
  res.n_ok = int(records.runs.size());
}

// Writes the files of a report (name → text) into opts.out_dir, after its plots.
void write_named(const ReportOptions& opts, const std::vector<std::pair<std::string, std::string>>& files,
                 const std::vector<std::string>& images, ReportResult& res) {
  const fs::path out(opts.out_dir);
  for (auto& [name, text] : files) {
    write_text(out / name, text);
    res.files.push_back((out / name).string());
  }
  for (auto& i : images) res.files.push_back((out / i).string());
}

// The few-shot report: no reference rows (the published numbers are VTAB-1k's), no budget view.
ReportResult fewshot_report(Records recs, const ReportOptions& opts) {
  FewShotTable t = build_fewshot_table(std::move(recs), opts);
  if (opts.reference != "none" && !opts.reference.empty())
    t.notes.push_back("No reference rows: the published numbers (" +
                      (opts.reference == "default" ? std::string(kDefaultReferenceLabel) : opts.reference) +
                      ") are VTAB-1k's, this is a few-shot report.");
  if (!opts.budgets.empty())
    t.warnings.push_back("the budget view (--budget-view) is not made for a few-shot report; left out");
  ReportResult res;
  count_skipped(t.records, res);
  if (!opts.out_dir.empty()) {
    fs::create_directories(opts.out_dir);
    std::vector<std::string> images;
    if (opts.plots) images = write_fewshot_plots(t, opts.out_dir);
    std::vector<std::pair<std::string, std::string>> files = {{"report.md", render_fewshot_markdown(t, images)},
                                                              {"report.csv", render_fewshot_csv(t)},
                                                              {"report_mean.csv", render_fewshot_mean_csv(t)}};
    if (opts.format == "tex") files.emplace_back("report.tex", render_fewshot_tex(t));
    write_named(opts, files, images, res);
  }
  res.table_markdown = render_fewshot_tables(t);
  res.printed = opts.format == "md"    ? res.table_markdown
                : opts.format == "csv" ? render_fewshot_csv(t)
                                       : render_fewshot_tex(t);
  res.warnings = t.warnings;
  res.read_notes = t.records.read_notes;
  return res;
}

// report.md, report.csv, report_cells.csv (+ report.tex) and the plots into opts.out_dir.
void write_files(Table& t, const ReportOptions& opts, ReportResult& res) {
  fs::path out(opts.out_dir);
  fs::create_directories(out);
  std::vector<std::string> images;
  if (opts.plots) {
    images = write_plots(t, opts.out_dir);
    for (auto& i : images) res.files.push_back((out / i).string());
  }
  write_text(out / "report.md", render_markdown(t, images));
  write_text(out / "report.csv", render_csv(t));
  write_text(out / "report_cells.csv", render_cells_csv(t));
  res.files.insert(res.files.begin(),
                   {(out / "report.md").string(), (out / "report.csv").string(), (out / "report_cells.csv").string()});
  if (!t.selection.rows.empty()) {
    write_text(out / "report_selection.csv", render_selection_csv(t));
    res.files.push_back((out / "report_selection.csv").string());
  }
  if (opts.format == "tex") {
    write_text(out / "report.tex", render_tex(t));
    res.files.push_back((out / "report.tex").string());
  }
}

}  // namespace

ReportResult write_report(const std::vector<std::string>& inputs, const ReportOptions& opts) {
  PETL_CHECK(opts.format == "md" || opts.format == "csv" || opts.format == "tex", "--format '", opts.format,
             "': expected md, csv or tex");
  Records recs = load_records(inputs, opts.protocol);
  if (is_fewshot(recs)) {
    ReportResult res = fewshot_report(std::move(recs), opts);
    if (opts.warn_to_stderr)
      for (auto& w : res.warnings) std::cerr << "[petl] report: warning: " << w << "\n";
    return res;
  }
  std::vector<std::string> pre_notes;
  Reference ref = options_reference(opts, pre_notes);
  Table t = build_table(std::move(recs), opts, ref);
  for (auto& n : pre_notes) t.notes.push_back(n);

  ReportResult res;
  count_skipped(t.records, res);
  if (!t.selection.finals_in_main) res.n_ok += int(t.selection.finals.size());  // tabulated in their own section
  if (!opts.out_dir.empty()) write_files(t, opts, res);
  res.table_markdown = render_markdown_table(t) + render_budget_view(t) + render_selection(t);
  res.printed = opts.format == "md" ? res.table_markdown : opts.format == "csv" ? render_csv(t) : render_tex(t);
  res.warnings = t.warnings;
  res.read_notes = t.records.read_notes;
  if (opts.warn_to_stderr)
    for (auto& w : t.warnings) std::cerr << "[petl] report: warning: " << w << "\n";
  return res;
}

}  // namespace petl::report

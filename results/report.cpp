// `petl report` library, the shared part: VTAB task list and groups, the reference file's
// location, mean ± sample std, the private helpers of report_internal.h, and write_report (load →
// table → files). The steps live in report_load.cpp, report_table.cpp, report_render.cpp and
// report_plots.cpp; see report.h for the error/warning policy.
#include "results/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "core/paths.h"
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

std::string plot_subtitle(const Table& t) {
  const auto& runs = t.records.runs;
  return "protocol " + t.protocol + "; backbone " + (runs.empty() ? std::string("?") : runs[0].backbone) +
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
  std::vector<std::string> pre_notes;
  Reference ref = options_reference(opts, pre_notes);
  Table t = build_table(std::move(recs), opts, ref);
  for (auto& n : pre_notes) t.notes.push_back(n);

  ReportResult res;
  for (auto& s : t.records.skipped)
    (s.status == RecordStatus::kFailed       ? res.n_failed
     : s.status == RecordStatus::kDoesNotFit ? res.n_does_not_fit
                                             : res.n_dry_run)++;
  res.n_ok = int(t.records.runs.size());
  if (!opts.out_dir.empty()) write_files(t, opts, res);
  res.table_markdown = render_markdown_table(t) + render_budget_view(t);
  res.printed = opts.format == "md" ? res.table_markdown : opts.format == "csv" ? render_csv(t) : render_tex(t);
  res.warnings = t.warnings;
  res.read_notes = t.records.read_notes;
  if (opts.warn_to_stderr)
    for (auto& w : t.warnings) std::cerr << "[petl] report: warning: " << w << "\n";
  return res;
}

}  // namespace petl::report

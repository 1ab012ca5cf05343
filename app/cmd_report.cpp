// `petl report RESULTS...`: paper-style tables (md / csv / tex) and plots from result records.
// The work is in results/report.{h,cpp}; this file only parses the command line.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "app/cli_util.h"
#include "app/commands.h"
#include "core/text.h"
#include "results/report.h"

namespace petl::cli {

namespace {
const char* kReportUsage =
    "usage: petl report RESULTS... [--format md|csv|tex] [--protocol P] [--reference FILE|none] [--out DIR]\n"
    "Tabulates result records (schema petl.result v1) in the paper layout: one row per method (and per\n"
    "setting where records of a method differ within a task, e.g. an lr sweep), the 19 VTAB-1k task\n"
    "columns grouped Natural / Specialized / Structured with the three group means, the plain mean,\n"
    "trainable params (K / M), peak training and evaluation memory (MiB) and training time per job;\n"
    "cells are mean ± sample std over seeds (n shown where n > 1), the Mean ± the std over seeds of the\n"
    "per-seed mean over tasks (seeds every task has). Other task sets (e.g. the embedded suite) get one\n"
    "group and the plain mean.\n"
    "Published numbers are shown as reference rows with a Δ view (ours − published). Writes\n"
    "report.md, report.csv (same shape as the reference, usable as --reference), report_cells.csv,\n"
    "report.tex (--format tex) and plots/ (gnuplot: PNG + SVG, scripts and data) into --out, and\n"
    "prints the table in --format.\n"
    "Few-shot records (petl run --benchmark fewshot) get the few-shot report instead: one table per\n"
    "dataset (methods x shots, mean ± std over split seeds), the mean over the datasets, an\n"
    "accuracy-vs-shots plot per dataset (log-2 axis), report.csv (long: one line per method x dataset x\n"
    "shots) and report_mean.csv. VTAB-1k and few-shot records in one report are an error.\n"
    "RESULTS: results.jsonl files or directories (every *.jsonl below; lines of another schema are\n"
    "counted and skipped). A sweep's output folder (its journal results.jsonl, or\n"
    "results.shard-I-of-N.jsonl, has lines with a sweep_key) is read through its journal only, never the\n"
    "per-job copies under jobs/; a demo's (results.jsonl beside last_demo.jsonl) through results.jsonl;\n"
    "one line says what was read.\n"
    "Only status \"ok\" records are tabulated; failed and dry-run records are listed in the notes.\n"
    "Errors (nothing is written): a missing path or a directory without *.jsonl, invalid JSON, a line\n"
    "without \"schema\", an unknown schema_version, an ok record missing a required field, --protocol\n"
    "absent from a record, no ok record at all, and — unless --allow-mixed — records mixing\n"
    "backbones (sha256), headline protocols (use --protocol) or preprocessing (normalisation, image\n"
    "size). Warnings (stderr and the report's notes): duplicate (method, task, seed, settings) records\n"
    "(the later one is used: result files are append-only), a task evaluated on different test lists,\n"
    "a reference sharing no task with the table, gnuplot missing or failing. Every message names the\n"
    "file:line of the records involved.";
}  // namespace

int cmd_report(const Args& args) {
  report::ReportOptions o;
  std::vector<std::string> inputs;
  std::string reference = "default", budgets;
  po::options_description d("petl report options");
  d.add_options()("results", po::value(&inputs)->composing(),
                  "result files or directories (also positional: RESULTS...)")(
      "format", po::value(&o.format)->default_value(o.format),
      "what is printed: md | csv | tex (report.md and report.csv are always written; report.tex with tex)")(
      "protocol", po::value(&o.protocol),
      "tabulate accuracy_by_protocol[P] (best_of_10 | final) instead of each record's headline accuracy")(
      "reference", po::value(&reference)->default_value(reference),
      "CSV of published numbers (method,<task>...,mean,params_m); 'default' = the project's copy of the "
      "V-PETL Bench table (results/vpetl_bench_vtab1k.csv), 'none' = no reference rows")(
      "reference-label", po::value(&o.reference_label),
      "label of the reference rows (default: the source for the project's copy, else the file name)")(
      "out", po::value(&o.out_dir),
      "output directory (default: <first RESULTS directory, or its file's folder>/report)")(
      "no-plots", "write no plots (they need gnuplot)")(
      "allow-mixed",
      "tabulate records that mix backbones, protocols or preprocessing as separate rows (a warning, not an error)")(
      "budget-view", po::value(&budgets),
      "comma-separated memory budgets (e.g. 4G,8G,24G): a table of each method's best mean accuracy over the rows "
      "(backbones, micro-batches, budgets, settings) whose peak training memory fits each budget (with its training "
      "and evaluation peaks), 'does not fit' where a does_not_fit record proves it cannot, 'not run under this "
      "budget' where no record says either way, and the accuracy-vs-memory Pareto front; implies --allow-mixed");
  d.add_options()("help,h", "show this help and exit");
  po::positional_options_description pos;
  pos.add("results", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << kReportUsage << "\n\n" << d << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    PETL_FAIL(e.what(), " (see --help)");
  }
  PETL_CHECK(!inputs.empty(), "no RESULTS given: pass result files or directories (see --help)");
  o.reference = reference;
  o.plots = !vm.count("no-plots");
  o.allow_mixed = vm.count("allow-mixed") > 0;
  if (!budgets.empty()) {
    for (auto& b : split_list(budgets)) o.budgets.push_back(parse_size(b, "--budget-view"));
    o.allow_mixed = true;  // the view compares backbones
  }
  if (o.out_dir.empty()) {
    std::filesystem::path first(inputs[0]);
    o.out_dir = ((std::filesystem::is_directory(first) ? first : first.parent_path()) / "report").string();
  }
  auto res = report::write_report(inputs, o);
  std::cout << res.printed;
  std::fflush(stdout);
  for (auto& n : res.read_notes) std::fprintf(stderr, "[petl] report: %s\n", n.c_str());
  std::fprintf(stderr,
               "[petl] report: %d ok record(s) tabulated, %d failed, %d dry run(s), %d does_not_fit (memory "
               "budget), %zu warning(s); written to %s:\n",
               res.n_ok, res.n_failed, res.n_dry_run, res.n_does_not_fit, res.warnings.size(), o.out_dir.c_str());
  for (auto& f : res.files) std::fprintf(stderr, "  %s\n", f.c_str());
  return 0;
}

}  // namespace petl::cli

// `petl report`: paper-style VTAB tables from result records (schema petl.result v1), published
// numbers side by side with a Δ view, and accuracy-vs-memory / -params / -evaluation plots drawn
// by gnuplot. Torch-free (petl_results).
//
// Pipeline: load_records (files or directories of *.jsonl; every petl.result line is read and
// validated by record_from_json, results/record.h; then the protocol) → build_table (duplicates,
// mixed backbones / protocols / preprocessing, row identities, mean ± sample std over seeds,
// group means) → render_markdown / render_csv / render_tex, write_plots. write_report runs all of it and writes the
// files. Few-shot FGVC records (benchmark "fewshot") take build_fewshot_table → render_fewshot_* and
// write_fewshot_plots instead (see "few-shot FGVC" below). Protocol val_select (selection without the
// test set): search records are counted, never tabulated; final records feed their own section
// (see "selection without the test set" below). Sources: report_load.cpp (records, reference CSV),
// report_table.cpp (build_table), report_render.cpp (markdown / csv / tex), report_fewshot.cpp (the few-shot table and
// its renderings), report_selection.cpp (the val_select section), report_plots.cpp (gnuplot), report.cpp (the rest).
//
// What is an error and what is a warning (user mistakes throw petl::Error naming file:line):
//   errors   — unreadable path, a directory without *.jsonl, invalid JSON, a line that is not an
//              object or has no "schema", schema "petl.result" with an unknown schema_version, an
//              ok record missing a required field, a field of the wrong type (all found by
//              record_from_json, results/record.h), --protocol P absent from a record's
//              accuracy_by_protocol, no ok record at all, mixed backbones (sha256), mixed
//              headline protocols (without --protocol), mixed preprocessing (normalisation or
//              image size) — the last three become warnings with allow_mixed, and the mixed
//              property then splits rows like a swept setting; a bad reference CSV; records of
//              two benchmarks (VTAB-1k and few-shot; with allow_mixed too); a few-shot record
//              without shots or split_seed.
//   warnings — duplicate (method, task, seed, settings) records (the later one is used: result
//              files are append-only, a re-run supersedes), the same task evaluated on different
//              test lists, a reference CSV that shares no task with the table (the project's
//              VTAB-1k copy next to a non-VTAB table is only a note), the published best_of_10
//              numbers next to another protocol, gnuplot missing or failing.
//   notes    — failed and dry-run records (listed, not tabulated), lines of another schema (e.g. a
//              sweep journal's own entries; counted and skipped), val_select search records (their
//              accuracies are val200's; counted and skipped), what varies between rows, what was
//              read of a sweep's or demo's output folder (its journal, not the per-job copies).
// Warnings go to stderr (ReportOptions::warn_to_stderr) and into the report's notes section.
#pragma once
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results/record.h"

namespace petl::report {

using json = nlohmann::json;

// The 19 VTAB-1k tasks in the paper order and their groups.
const std::vector<std::string>& vtab_tasks();
// "Natural", "Specialized", "Structured" for a VTAB task, "" otherwise.
std::string vtab_group(const std::string& task);

// The project's copy of the V-PETL Bench table (results/vpetl_bench_vtab1k.csv), found next to
// the executable (../results, ../share/petl/results) or in the source tree; "" when not found.
std::string default_reference_csv();
// The label of the default reference rows.
extern const char* const kDefaultReferenceLabel;

// Mean and sample standard deviation (n − 1); std is NaN when n < 2, mean NaN when n == 0.
struct Stats {
  int n = 0;
  double mean = std::numeric_limits<double>::quiet_NaN();
  double std = std::numeric_limits<double>::quiet_NaN();
};
Stats mean_std(const std::vector<double>& xs);

// Where a record came from ("path:line" in messages).
struct Source {
  std::string file;
  int line = 0;
  std::string where() const { return file + ":" + std::to_string(line); }
};

// One validated "ok" record, reduced to what the report needs (the whole record stays in `record`).
struct Run {
  Source src;
  std::string method, task;
  int seed = 0;
  std::string benchmark;  // Record::benchmark: "" VTAB-1k, "fewshot" (kFewShotBenchmark), ...
  int shots = 0;          // few-shot: images per class (0: not few-shot)
  int split_seed = -1;    // few-shot: which of NOAH's train lists (-1: not few-shot)
  std::string protocol;   // the protocol `accuracy` is under (--protocol or the record's own)
  double accuracy = 0;    // percent
  double trainable_params = 0;
  double peak_train_mib = 0;
  double peak_eval_mib = std::numeric_limits<double>::quiet_NaN();  // memory.peak_eval_mib (NaN: absent)
  double train_s = std::numeric_limits<double>::quiet_NaN();        // timing.train_s (NaN: no timing)
  double wall_s = std::numeric_limits<double>::quiet_NaN();         // timing.wall_s
  std::vector<std::pair<double, double>> evals;                     // (epoch, test accuracy %)
  std::string backbone;                                             // "arch (sha256 0123456789ab)"
  std::string backbone_sha256;
  std::string preprocessing;                    // "imagenet, 224 px"
  std::map<std::string, std::string> identity;  // method settings (non-"_") + recipe minus seed (+ mixed props)
  std::string stage;  // Record::stage: "" ordinary, "final" a val_select final run (search records are no Run)
  Record record;
};

// A record that was read but not tabulated (failed or dry run).
struct Skipped {
  Source src;
  RecordStatus status = RecordStatus::kFailed;
  std::string method, task, message;
  int seed = -1;
  // does_not_fit: the budget it was run under and the minimum peak it would need (MiB; NaN: absent).
  double budget_mib = std::numeric_limits<double>::quiet_NaN();
  double minimum_peak_mib = std::numeric_limits<double>::quiet_NaN();
};

struct Records {
  std::vector<Run> runs;                     // status ok, in input order
  std::vector<Skipped> skipped;              // status failed / dry_run
  std::map<std::string, int> other_schemas;  // lines of another schema, counted
  int val_select_search = 0;                 // ok records of stage "search" (val200 accuracies), counted and skipped
  std::vector<std::string> files;            // files read, in order
  std::vector<std::string> read_notes;       // what was read of a sweep's (or demo's) output folder, one line each
  std::vector<std::string> warnings;
};

// Reads result files / directories and validates every line. A file is read as named. A directory
// is read for every *.jsonl below it (sorted), except inside a sweep's output folder — one whose
// top level holds the sweep journal (harness/sweep/sweep_journal.h: results.jsonl, or
// results.shard-I-of-N.jsonl, with lines that carry "sweep_key") — where only the journal(s) are
// read, never the per-job copies under jobs/<key>/; and in a demo's output folder (results.jsonl
// beside last_demo.jsonl) only results.jsonl, which holds every record of last_demo.jsonl. Each
// such folder adds one line to Records::read_notes. A file named twice is read once. protocol: ""
// → each record's headline accuracy, else accuracy_by_protocol[protocol]. Throws petl::Error
// listing the offending records.
Records load_records(const std::vector<std::string>& inputs, const std::string& protocol = "");

// A published (or otherwise external) row: accuracy per task, plain mean and params as given.
struct ReferenceRow {
  std::string method, setting;
  std::map<std::string, double> acc;
  double mean = std::numeric_limits<double>::quiet_NaN();
  double params_m = std::numeric_limits<double>::quiet_NaN();
  std::string label() const { return setting.empty() ? method : method + " (" + setting + ")"; }
};
struct Reference {
  std::string file, label;
  std::vector<std::string> tasks;  // task columns in file order
  std::vector<ReferenceRow> rows;
};
// Reads a CSV shaped like results/vpetl_bench_vtab1k.csv: a `method` column, one column per
// task, optional `mean`, `params_m`; other known columns (setting, kind, group means,
// peak_train_mib, ...) are ignored, and with a `kind` column only rows of kind "ours" are read,
// so a report.csv can serve as the reference of another report. Empty, "-", "–", "nan" = missing.
Reference load_reference(const std::string& file, const std::string& label = "");

struct ReportOptions {
  std::string format = "md";          // what `printed` holds: md | csv | tex (report.tex is written for tex)
  std::string protocol;               // "" → the records' own headline protocol
  std::string reference = "default";  // CSV path; "default" → default_reference_csv(); "" or "none" → none
  std::string reference_label;        // "" → kDefaultReferenceLabel for the default file, else the file name
  std::string out_dir;  // where report.md, report.csv, report_cells.csv, plots/ go; "" → nothing written
  std::string title = "petl report";
  bool plots = true;         // write gnuplot scripts + data and render PNG + SVG
  bool allow_mixed = false;  // mixed backbones / protocols / preprocessing: warn instead of fail
  bool warn_to_stderr = true;
  // Budget view (bytes, ascending): for each budget, each method's best mean accuracy over the
  // rows whose peak training memory fits on every task. Implies allow_mixed (rows per backbone).
  std::vector<int64_t> budgets;
};

// One table cell: a (row, task) over seeds.
struct Cell {
  Stats acc;
  std::vector<int> seeds;                                           // per run, in run order
  std::vector<int> split_seeds;                                     // few-shot: per run, in run order (empty otherwise)
  double params = 0, peak_train_mib = 0;                            // mean over the cell's runs
  double peak_eval_mib = std::numeric_limits<double>::quiet_NaN();  // mean over the runs that have it
  double train_s = std::numeric_limits<double>::quiet_NaN();        // mean over the runs that have it
  double wall_s_total = 0;                                          // sum over the runs
  std::vector<size_t> runs;                                         // indices into Table::records.runs
};

struct Row {
  std::string method, setting;  // setting: "lr=0.005, token_nums=2" — only what varies within the method
  // The row's name in plots and their key table: the method where it has one row, else
  // "method #k" (its k-th row in table order); the key table maps it to label().
  std::string short_label;
  std::map<std::string, std::string> identity;
  std::map<std::string, Cell> cells;  // by task
  std::vector<double> group_means;    // per table group (NaN where the group has no mean)
  std::vector<bool> group_complete;
  double mean = std::numeric_limits<double>::quiet_NaN();
  bool complete = false;
  // The spread of the row's mean over seeds: the seeds that every task of the row (the tasks its
  // mean covers) has; for each such seed the mean over those tasks of its accuracy; n = the
  // number of such seeds, mean and std (n − 1) of those per-seed means. std is NaN (no ± shown)
  // when fewer than two seeds are common to every task.
  Stats seed_means;
  double params_m = 0, peak_train_mib = 0;  // mean over the row's cells
  double params = 0;                        // trainable parameters (count), mean over the row's cells
  double peak_eval_mib = std::numeric_limits<double>::quiet_NaN();  // mean over the cells that have it
  double train_s =
      std::numeric_limits<double>::quiet_NaN();  // training seconds per job: mean over cells (each over seeds)
  double wall_h = 0;                             // wall-clock hours of all the row's runs together
  std::string label() const { return setting.empty() ? method : method + " (" + setting + ")"; }
};

// A method under one budget of the budget view.
struct BudgetPick {
  enum class Kind {
    kBest,        // row: its best complete row whose peak fits the budget on every task
    kDoesNotFit,  // a record with status does_not_fit proves it cannot (minimum peak above the budget)
    kIncomplete,  // no complete row fits; row: the one run on the most tasks (fit_tasks) that fits on each
    kNotRun,      // no record under this budget: every row peaks above it, and no does_not_fit says so
  };
  Kind kind = Kind::kNotRun;
  int row = -1;                                                        // kBest, kIncomplete
  std::string unfit_task;                                              // kDoesNotFit: the task of that record
  double minimum_peak_mib = std::numeric_limits<double>::quiet_NaN();  // kDoesNotFit (NaN: not recorded)
  int fit_tasks = 0;                                                   // kIncomplete
  double lowest_peak_mib = std::numeric_limits<double>::quiet_NaN();   // kNotRun: the method's lowest row peak
};

struct TaskGroup {
  std::string name;  // Natural / Specialized / Structured / Tasks / Other
  std::vector<std::string> tasks;
  bool has_mean = false;  // VTAB groups get a group mean column
};

// A reference row laid out in the table's columns.
struct RefLine {
  ReferenceRow ref;
  std::vector<double> group_means;
  double mean = std::numeric_limits<double>::quiet_NaN();
  bool mean_published = false;
};

// A Δ row: ours − published, per task where both exist.
struct DeltaLine {
  std::string ours, published;
  std::map<std::string, double> delta;
  std::vector<double> group_means;  // mean of the per-task Δ over the group's common tasks
  std::vector<bool> group_complete;
  double mean = std::numeric_limits<double>::quiet_NaN();
  bool complete = false;
};

// ------------------------------------------------------------------ selection without the test set
//
// Protocol val_select (core/enums.h): per method × task × seed a grid is searched on train800 →
// val200 (records of stage "search": their evals and accuracies are val200's, so they are never
// tabulated, only counted in a note); the best (grid point, epoch count) is trained once on
// train800val200 (a record of stage "final": `accuracy` is its test accuracy after its last epoch,
// `selection` says what was chosen). build_table keeps the final records out of the main table
// (which is built from the ordinary records, whose headline protocol is best_of_10 or final) unless
// they are the only records, and sets them side by side with the ordinary records of the same method
// and task: best_of_10 (the epoch selected on the test list), final (the test list read once, after
// the last epoch) and val_select, and inflation = best_of_10 − val_select.

constexpr const char* kStageSearch = "search";
constexpr const char* kStageFinal = "final";

// One (method, task) of the selection table; every number a mean over training seeds (NaN: no record).
struct SelectionCell {
  Stats best_of_10, final_acc;  // the ordinary records' accuracy_by_protocol.best_of_10 / .final
  Stats val_select;             // the final records' accuracy
  double inflation = std::numeric_limits<double>::quiet_NaN();  // best_of_10.mean − val_select.mean
  std::vector<int> seeds_ordinary, seeds_val_select;            // distinct seeds, ascending
  std::vector<std::string> chosen;                              // per final record (seed order): "lr=0.001 epochs=30"
};

struct SelectionRow {
  std::string method;
  std::map<std::string, SelectionCell> cells;  // by task
  // Plain means over the tasks that have all three values (n_common of them); complete when that is
  // every task column.
  double mean_best_of_10 = std::numeric_limits<double>::quiet_NaN();
  double mean_final = std::numeric_limits<double>::quiet_NaN();
  double mean_val_select = std::numeric_limits<double>::quiet_NaN();
  double mean_inflation = std::numeric_limits<double>::quiet_NaN();
  int n_common = 0;
  bool complete = false;
  // The smallest and largest per-task inflation (over the tasks that have one) and their tasks.
  double min_inflation = std::numeric_limits<double>::quiet_NaN();
  double max_inflation = std::numeric_limits<double>::quiet_NaN();
  std::string min_task, max_task;
};

struct Selection {
  std::vector<std::string> tasks;  // columns: VTAB tasks in the paper order, then others as the main table has them
  std::vector<SelectionRow> rows;  // methods with a final record, in the main table's order
  std::vector<Run> finals;         // the final records (after duplicates); also the main table's when alone
  bool finals_in_main = false;     // no ordinary record: the main table is built from the final records
  std::string caption;             // what each row is and which numbers used the test set
};

struct Table {
  bool vtab = false;  // the 19-column paper layout
  std::vector<TaskGroup> groups;
  std::vector<std::string> tasks;  // every column, in order
  std::vector<Row> rows;
  std::string caption;  // protocol, backbone (hash), preprocessing, recipe, epochs, batch size
  std::string protocol;
  std::map<std::string, std::vector<std::string>> varying;  // per method: identity keys that vary within a task
  Reference reference;                                      // empty rows → no reference section
  std::vector<RefLine> ref_lines;
  std::vector<DeltaLine> deltas;
  std::vector<std::string> notes;     // facts for the notes section (inputs, what varies, ...)
  std::vector<std::string> warnings;  // warnings (also in the notes section)
  Records records;
  // Rows on the accuracy-vs-peak-memory Pareto front (complete rows: no row reaches a higher mean
  // at the same or a lower peak; peak = the table's Peak train column), by ascending peak.
  std::vector<size_t> pareto;
  // The budget view: budgets (bytes) and, per method in row order (then methods that have
  // does_not_fit records only), what it reached under each budget.
  std::vector<int64_t> budgets;
  std::vector<std::pair<std::string, std::vector<BudgetPick>>> budget_best;
  Selection selection;  // the val_select section (empty rows: no final record)
};

// The largest peak training memory (MiB) over a row's cells: what must fit a budget.
double row_max_peak_mib(const Row& row);
// The largest evaluation peak (MiB) over a row's cells; NaN when no cell has one.
double row_max_eval_mib(const Row& row);

// Validates the mix, groups runs into rows and computes every number. reference may be empty.
Table build_table(Records records, const ReportOptions& opts, const Reference& reference = {});

std::string render_markdown_table(const Table& t);  // caption + the main table (+ reference rows)
std::string render_budget_view(const Table& t);     // the budget table and the Pareto front ("" without budgets)
std::string render_markdown(const Table& t, const std::vector<std::string>& plot_files = {});  // the whole report.md
// Wide: kind,method,setting,<tasks>,<group means>,mean,params_m,peak_train_mib,n_tasks,complete,source, then
// (added later, at the end so positional readers keep working) params,peak_eval_mib,train_s,wall_h,mean_std,
// mean_n_seeds.
std::string render_csv(const Table& t);
std::string render_cells_csv(const Table& t);  // long: one line per (row, task)
std::string render_tex(const Table& t);        // booktabs table*
// The val_select section "Selection without the test set" (heading, caption, table, the inflation
// summary, plots/selection_inflation.png when plot_files has it); "" without final records.
std::string render_selection(const Table& t, const std::vector<std::string>& plot_files = {});
// report_selection.csv, one line per method × task: method,task,best_of_10,final,val_select,inflation,
// n_seeds_ordinary,n_seeds_val_select,chosen (chosen: the final records' chosen sets and epoch count,
// "lr=0.001 epochs=30", ';' between seeds). Header only without final records.
std::string render_selection_csv(const Table& t);

// Writes plots/*.gp + *.dat under out_dir and runs gnuplot on them (PNG + SVG). Returns the
// image files written, relative to out_dir; appends a note to t.notes when gnuplot is missing
// or fails. With a selection section: also plots/selection_inflation (per method the mean inflation
// best_of_10 − val_select as a bar, each task's as a point).
std::vector<std::string> write_plots(Table& t, const std::string& out_dir);

// ------------------------------------------------------------------ few-shot FGVC
//
// Records with benchmark "fewshot" (NOAH's few-shot FGVC: `task` is the dataset, `shots` the
// training images per class, `split_seed` which of NOAH's train lists) get their own report: one
// table per dataset (rows as in the VTAB table: a method, split by the settings that vary within a
// (dataset, shots) cell; columns: the shot counts present, ascending; cell: mean ± sample std over
// the cell's runs, i.e. split seeds × training seeds), a table of the mean over the datasets, one
// accuracy-vs-shots plot per dataset and one for the mean (log-2 x axis), a long CSV. Records of
// another benchmark (VTAB-1k) in the same report are an error, --allow-mixed or not: report each
// benchmark on its own. No reference rows (the published numbers are VTAB-1k's).

constexpr const char* kFewShotBenchmark = "fewshot";
// NOAH's five few-shot FGVC datasets, in the report's order (other datasets follow, first seen).
const std::vector<std::string>& fewshot_datasets();
// True when the ok records are few-shot, false for VTAB-1k (no "benchmark") or any other single
// benchmark. Throws petl::Error naming each benchmark's record count and files when they mix.
bool is_fewshot(const Records& records);
// The key of a few-shot cell in Row::cells.
std::string fewshot_cell_key(const std::string& dataset, int shots);
// The row's cell of (dataset, shots); nullptr when it has none.
const Cell* fewshot_cell(const Row& row, const std::string& dataset, int shots);

// One row's mean over the datasets at one shot count.
struct FewShotMean {
  int n_datasets = 0;                                      // datasets the row has a cell of
  double mean = std::numeric_limits<double>::quiet_NaN();  // mean of the per-dataset means; NaN unless every dataset
  // Per (split seed, seed) pair that every dataset's cell has, the mean over the datasets; mean and
  // sample std of those (n pairs). Only with every dataset.
  Stats spread;
};

struct FewShotRow {
  // method, setting, short_label, identity; cells keyed by fewshot_cell_key; params, params_m and
  // peak_train_mib: the mean over its cells. The VTAB-only members stay unset.
  Row row;
  std::map<int, FewShotMean> means;  // by shots
};

struct FewShotTable {
  std::vector<std::string> datasets;  // fewshot_datasets() present, then others first seen
  std::vector<int> shots;             // ascending
  std::vector<FewShotRow> rows;
  int full_n = 0;                       // the most runs in any cell; a cell with fewer is marked (n=k)
  std::vector<int> split_seeds, seeds;  // every split seed / training seed of the table, ascending
  std::string caption;                  // benchmark, protocol and what used the test set, backbone, recipe, cells
  std::string protocol;
  std::map<std::string, std::vector<std::string>> varying;  // per method: identity keys that vary within a cell
  std::vector<std::string> notes, warnings;
  Records records;
};

// Duplicates, mixed backbones / protocols / preprocessing and test lists as build_table; rows, cells
// and the means over the datasets. Throws petl::Error when the records are not few-shot.
FewShotTable build_fewshot_table(Records records, const ReportOptions& opts);
std::string render_fewshot_tables(const FewShotTable& t);  // caption, one table per dataset, the mean table
std::string render_fewshot_markdown(const FewShotTable& t, const std::vector<std::string>& plot_files = {});
// Long, one line per (row, dataset, shots) with a cell: method,setting,dataset,shots,mean,std,n,
// n_split_seeds,n_seeds,trainable_params,peak_train_mib,protocol.
std::string render_fewshot_csv(const FewShotTable& t);
// One line per (row, shots): method,setting,shots,mean,std,n,n_datasets,complete,trainable_params,peak_train_mib.
std::string render_fewshot_mean_csv(const FewShotTable& t);
std::string render_fewshot_tex(const FewShotTable& t);
// plots/fewshot_<dataset>.gp + .dat per dataset and plots/fewshot_mean.gp (accuracy vs shots, log-2
// x axis, ± std error bars), rendered as write_plots does; returns the images written.
std::vector<std::string> write_fewshot_plots(FewShotTable& t, const std::string& out_dir);

struct ReportResult {
  std::string table_markdown;           // caption + the main table, ready to print
  std::string printed;                  // the table in opts.format
  std::vector<std::string> files;       // files written
  std::vector<std::string> read_notes;  // what was read of a sweep's / demo's output folder (Records::read_notes)
  std::vector<std::string> warnings;
  int n_ok = 0, n_failed = 0, n_dry_run = 0, n_does_not_fit = 0;
};

// The whole report: load + validate, tabulate, write report.md, report.csv, report_cells.csv
// (+ report.tex for format tex; report_selection.csv with val_select final records) and the plots into
// opts.out_dir. Throws petl::Error on errors.
// Few-shot records (is_fewshot) give the few-shot report: report.md, report.csv (long),
// report_mean.csv (+ report.tex) and plots/fewshot_*.
ReportResult write_report(const std::vector<std::string>& inputs, const ReportOptions& opts);

}  // namespace petl::report

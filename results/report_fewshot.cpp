// `petl report` for the few-shot FGVC benchmark (records with benchmark "fewshot"): the table
// (datasets, shot counts, rows, cells over split seeds × training seeds, the mean over the
// datasets, the caption and notes) built from build_table's own steps (report_internal.h), and
// its renderings: markdown (one table per dataset, then the mean over the datasets), a long CSV,
// the means' CSV and a booktabs LaTeX table. The plots are in report_plots.cpp.
#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/text.h"
#include "results/report.h"
#include "results/report_internal.h"

namespace petl::report {
using namespace internal;

namespace {

// Distinct values, ascending.
std::vector<int> distinct(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::string ints_text(const std::vector<int>& v) {
  std::vector<std::string> s;
  for (int x : v) s.push_back(std::to_string(x));
  return join(s, ", ");
}

// Datasets (NOAH's five in their order, then others as first seen), shot counts and seeds of the
// table; returns the methods in first-seen order.
std::vector<std::string> fewshot_columns(const std::vector<Run>& runs, FewShotTable& t) {
  std::vector<std::string> seen, methods;
  std::vector<int> shots, splits, seeds;
  for (auto& r : runs) {
    if (std::find(seen.begin(), seen.end(), r.task) == seen.end()) seen.push_back(r.task);
    if (std::find(methods.begin(), methods.end(), r.method) == methods.end()) methods.push_back(r.method);
    shots.push_back(r.shots);
    splits.push_back(r.split_seed);
    seeds.push_back(r.seed);
  }
  for (auto& d : fewshot_datasets())
    if (std::find(seen.begin(), seen.end(), d) != seen.end()) t.datasets.push_back(d);
  for (auto& d : seen)
    if (std::find(t.datasets.begin(), t.datasets.end(), d) == t.datasets.end()) t.datasets.push_back(d);
  t.shots = distinct(shots);
  t.split_seeds = distinct(splits);
  t.seeds = distinct(seeds);
  return methods;
}

// A row's mean over the datasets at one shot count (FewShotMean).
FewShotMean mean_over_datasets(const std::vector<Run>& runs, const FewShotTable& t, const Row& row, int shots) {
  FewShotMean m;
  std::vector<const Cell*> cells;
  for (auto& d : t.datasets)
    if (const Cell* c = fewshot_cell(row, d, shots)) cells.push_back(c);
  m.n_datasets = int(cells.size());
  if (cells.empty() || cells.size() != t.datasets.size()) return m;
  std::vector<double> means, per_pair;
  for (const Cell* c : cells) means.push_back(c->acc.mean);
  m.mean = mean_of(means);
  for (size_t i : cells[0]->runs) {  // the (split seed, seed) pairs of the first dataset that every one has
    std::vector<double> acc;
    for (const Cell* c : cells)
      for (size_t j : c->runs)
        if (runs[j].split_seed == runs[i].split_seed && runs[j].seed == runs[i].seed) acc.push_back(runs[j].accuracy);
    if (acc.size() == cells.size()) per_pair.push_back(mean_of(acc));
  }
  m.spread = mean_std(per_pair);
  return m;
}

// Cell statistics, the row's parameters and memory (mean over its cells) and its means over the datasets.
FewShotRow fewshot_row(const std::vector<Run>& runs, const FewShotTable& t, Row row) {
  std::vector<double> params, mems;
  for (auto& [key, cell] : row.cells) {
    cell_stats(runs, cell);
    params.push_back(cell.params);
    mems.push_back(cell.peak_train_mib);
  }
  row.params = mean_of(params);
  row.params_m = row.params / 1e6;
  row.peak_train_mib = mean_of(mems);
  FewShotRow fr{std::move(row), {}};
  for (int k : t.shots) fr.means[k] = mean_over_datasets(runs, t, fr.row, k);
  return fr;
}

// Which numbers used the test set, by protocol.
std::string test_set_text(const std::string& protocol) {
  if (protocol == "best_of_10")
    return "The test set selected these numbers: best_of_10 is the maximum test accuracy over the evaluations, so "
           "the test list picks the epoch (an optimistic figure; final would not select). ";
  if (protocol == "final")
    return "The test set was used for the reported accuracy only: final is the test accuracy after the last epoch, "
           "nothing is selected on it. ";
  return "best_of_10 numbers select the epoch on the test list (the maximum test accuracy over the evaluations); "
         "final numbers do not. ";
}

void write_fewshot_caption(const std::vector<Run>& runs, FewShotTable& t) {
  const std::string protocol_text = caption_protocol(runs, t.protocol);
  std::string c = "Top-1 test accuracy (%) on few-shot FGVC (" + std::to_string(t.datasets.size()) + " dataset" +
                  (t.datasets.size() == 1 ? "" : "s") +
                  "; k-shot: k training images per class from NOAH's train lists; split seeds " +
                  ints_text(t.split_seeds) + ", training seeds " + ints_text(t.seeds) + "), " + protocol_text + ". ";
  c += test_set_text(t.protocol);
  c += caption_setup(runs);
  c += "Cells: mean ± sample std over the runs of a (dataset, shots) cell, one per split seed and training seed; n = " +
       std::to_string(t.full_n) + " runs unless marked (n=k); – no record. ";
  c += "Params: trainable parameters (K = 10^3, M = 10^6); Peak train: peak training memory (MiB); both the mean over "
       "the row's cells of the table.";
  t.caption = c;
}

// Notes on the mean over the datasets: the rows and shot counts without every dataset.
void add_incomplete_mean_notes(FewShotTable& t) {
  for (auto& fr : t.rows)
    for (int k : t.shots) {
      const FewShotMean& m = fr.means.at(k);
      if (m.n_datasets == int(t.datasets.size())) continue;
      std::vector<std::string> missing;
      for (auto& d : t.datasets)
        if (!fewshot_cell(fr.row, d, k)) missing.push_back(d);
      t.notes.push_back("Mean over the datasets: – for " + fr.row.label() + " at " + std::to_string(k) +
                        " shots, which has no record of " + join(missing, ", ") + ".");
    }
}

}  // namespace

FewShotTable build_fewshot_table(Records records, const ReportOptions& opts) {
  FewShotTable t;
  t.records = std::move(records);
  t.warnings = t.records.warnings;
  auto& runs = t.records.runs;
  if (runs.empty()) fail_without_runs(t.records);
  PETL_CHECK(is_fewshot(t.records), "build_fewshot_table: the records are not few-shot (benchmark \"",
             kFewShotBenchmark, "\")");
  drop_duplicates(runs, t.warnings);
  check_mixed_properties(runs, opts, t.warnings);
  warn_test_lists(runs, t.warnings);
  const std::vector<std::string> methods = fewshot_columns(runs, t);
  std::vector<Row> rows;
  build_rows(
      runs, methods, [](const Run& r) { return fewshot_cell_key(r.task, r.shots); }, rows, t.varying);
  for (auto& row : rows) t.rows.push_back(fewshot_row(runs, t, std::move(row)));
  for (auto& fr : t.rows)
    for (auto& [key, cell] : fr.row.cells) t.full_n = std::max(t.full_n, cell.acc.n);
  write_fewshot_caption(runs, t);
  add_notes(t.records, methods, t.varying, "a (dataset, shots) cell", t.notes);
  add_incomplete_mean_notes(t);
  return t;
}

// ------------------------------------------------------------------ rendering

namespace {

// "62.00 ± 1.00", "(n=2)" where the cell has fewer runs than full_n, "–" without runs.
std::string fewshot_cell_text(const Stats& s, int full_n) {
  if (s.n == 0 || !std::isfinite(s.mean)) return kMissing;
  std::string t = fixed(s.mean, 2);
  if (s.n > 1 && std::isfinite(s.std)) t += " ± " + fixed(s.std, 2);
  if (s.n < full_n) t += " (n=" + std::to_string(s.n) + ")";
  return t;
}

std::vector<std::string> shots_header(const FewShotTable& t) {
  std::vector<std::string> h{"Method"};
  for (int k : t.shots) h.push_back(std::to_string(k) + "-shot");
  h.push_back("Params");
  h.push_back("Peak train (MiB)");
  return h;
}

// A row's parameters and peak training memory over its cells of one dataset (NaN: none).
std::pair<double, double> dataset_cost(const Row& row, const FewShotTable& t, const std::string& dataset) {
  std::vector<double> params, mems;
  for (int k : t.shots)
    if (const Cell* c = fewshot_cell(row, dataset, k)) {
      params.push_back(c->params);
      mems.push_back(c->peak_train_mib);
    }
  return {mean_of(params), mean_of(mems)};
}

std::string mib_or_missing(double v) { return std::isfinite(v) ? fixed(v, 1) : std::string(kMissing); }

// The body of one dataset's table (rows without any cell of the dataset are left out).
std::vector<std::vector<std::string>> dataset_body(const FewShotTable& t, const std::string& dataset) {
  std::vector<std::vector<std::string>> body;
  for (auto& fr : t.rows) {
    auto [params, mib] = dataset_cost(fr.row, t, dataset);
    if (!std::isfinite(params)) continue;
    std::vector<std::string> r{fr.row.label()};
    for (int k : t.shots) {
      const Cell* c = fewshot_cell(fr.row, dataset, k);
      r.push_back(c ? fewshot_cell_text(c->acc, t.full_n) : std::string(kMissing));
    }
    r.push_back(count_text(params));
    r.push_back(mib_or_missing(mib));
    body.push_back(r);
  }
  return body;
}

// A mean-over-the-datasets cell: the mean of the per-dataset means, ± the spread over (split seed, seed) pairs.
std::string mean_cell_text(const FewShotMean& m, int full_n) {
  if (!std::isfinite(m.mean)) return kMissing;
  Stats s = m.spread;
  s.mean = m.mean;
  if (s.n == 0) s.n = 1;  // no pair common to every dataset: the mean alone, marked
  return fewshot_cell_text(s, full_n);
}

std::vector<std::vector<std::string>> mean_body(const FewShotTable& t) {
  std::vector<std::vector<std::string>> body;
  for (auto& fr : t.rows) {
    std::vector<std::string> r{fr.row.label()};
    for (int k : t.shots) r.push_back(mean_cell_text(fr.means.at(k), t.full_n));
    r.push_back(count_text(fr.row.params));
    r.push_back(mib_or_missing(fr.row.peak_train_mib));
    body.push_back(r);
  }
  return body;
}

std::string mean_caption(const FewShotTable& t) {
  return "**Table 2.** Mean over the datasets (" + join(t.datasets, ", ") +
         "): per shot count, the mean of a row's per-dataset means, ± the sample std over the (split seed, seed) "
         "pairs that every dataset has of the per-pair mean over the datasets (n pairs; marked (n=k) where fewer "
         "than " +
         std::to_string(t.full_n) +
         "); – where the row lacks a dataset at that shot count (see the notes). Params and Peak train: the mean over "
         "all the row's cells.";
}

}  // namespace

std::string render_fewshot_tables(const FewShotTable& t) {
  const auto header = shots_header(t);
  std::vector<bool> right(header.size(), true);
  right[0] = false;
  std::string md = "**Table 1.** " + t.caption + "\n";
  for (auto& d : t.datasets) md += "\n*" + d + "*\n\n" + md_table(header, dataset_body(t, d), right);
  md += "\n" + mean_caption(t) + "\n\n" + md_table(header, mean_body(t), right);
  return md;
}

std::string render_fewshot_markdown(const FewShotTable& t, const std::vector<std::string>& plot_files) {
  std::string md = "# petl report\n\n" + render_fewshot_tables(t);
  if (!plot_files.empty()) {
    md +=
        "\n## Plots\n\nAccuracy against shots per class (log-2 axis), one line per row, error bars ± the sample "
        "std of the table's cell; " +
        plot_subtitle(t.protocol, t.records.runs) + ".\n\n";
    auto image = [&](const std::string& dataset, const std::string& title) {
      const std::string png = "plots/" + fewshot_plot_stem(dataset) + ".png";
      if (std::find(plot_files.begin(), plot_files.end(), png) != plot_files.end())
        md += "![" + title + "](" + png + ")\n\n";
    };
    for (auto& d : t.datasets) image(d, d + ": accuracy vs shots per class");
    image("", "Mean over the datasets: accuracy vs shots per class");
    md += "SVG versions, gnuplot scripts and data beside them in plots/ (re-render: `cd plots && gnuplot NAME.gp`).\n";
    if (std::any_of(t.rows.begin(), t.rows.end(),
                    [](const FewShotRow& r) { return r.row.short_label != r.row.method; })) {
      std::vector<std::vector<std::string>> key;
      for (auto& fr : t.rows)
        key.push_back({fr.row.short_label, fr.row.method, fr.row.setting.empty() ? kMissing : fr.row.setting});
      md += "\n**Plot key.** The plots' short labels and the rows they stand for.\n\n" +
            md_table({"Plot label", "Method", "Setting"}, key, {false, false, false});
    }
  }
  return md + notes_section(t.notes, t.warnings, t.records);
}

std::string render_fewshot_csv(const FewShotTable& t) {
  std::string out = csv_line({"method", "setting", "dataset", "shots", "mean", "std", "n", "n_split_seeds", "n_seeds",
                              "trainable_params", "peak_train_mib", "protocol"});
  for (auto& fr : t.rows)
    for (auto& d : t.datasets)
      for (int k : t.shots) {
        const Cell* c = fewshot_cell(fr.row, d, k);
        if (!c) continue;
        const std::string protocol = t.records.runs[c->runs[0]].protocol;
        out += csv_line({fr.row.method, fr.row.setting, d, std::to_string(k), fixed(c->acc.mean, 4),
                         num_or_blank(c->acc.std, 4), std::to_string(c->acc.n),
                         std::to_string(distinct(c->split_seeds).size()), std::to_string(distinct(c->seeds).size()),
                         exact_or_blank(c->params), num_or_blank(c->peak_train_mib, 3), protocol});
      }
  return out;
}

std::string render_fewshot_mean_csv(const FewShotTable& t) {
  std::string out = csv_line({"method", "setting", "shots", "mean", "std", "n", "n_datasets", "complete",
                              "trainable_params", "peak_train_mib"});
  for (auto& fr : t.rows)
    for (int k : t.shots) {
      const FewShotMean& m = fr.means.at(k);
      const bool complete = std::isfinite(m.mean);
      out += csv_line({fr.row.method, fr.row.setting, std::to_string(k), num_or_blank(m.mean, 4),
                       complete ? num_or_blank(m.spread.std, 4) : "", complete ? std::to_string(m.spread.n) : "",
                       std::to_string(m.n_datasets), complete ? "1" : "0", exact_or_blank(fr.row.params),
                       num_or_blank(fr.row.peak_train_mib, 3)});
    }
  return out;
}

std::string render_fewshot_tex(const FewShotTable& t) {
  const auto header = shots_header(t);
  const std::string ncol = std::to_string(header.size());
  auto tex_row = [](const std::vector<std::string>& r) {
    std::vector<std::string> e;
    for (auto& f : r) e.push_back(f == kMissing ? std::string("--") : tex_escape(f));
    return join(e, " & ") + " \\\\\n";
  };
  std::string o = "% petl report: needs \\usepackage{booktabs}\n\\begin{table*}[t]\n\\centering\n\\caption{" +
                  tex_escape(t.caption) + "}\n\\begin{tabular}{l" + std::string(header.size() - 1, 'r') +
                  "}\n\\toprule\n" + tex_row(header);
  auto section = [&](const std::string& title, const std::vector<std::vector<std::string>>& body) {
    o += "\\midrule\n\\multicolumn{" + ncol + "}{l}{\\emph{" + tex_escape(title) + "}} \\\\\n";
    for (auto& r : body) o += tex_row(r);
  };
  for (auto& d : t.datasets) section(d, dataset_body(t, d));
  section("Mean over the datasets", mean_body(t));
  return o + "\\bottomrule\n\\end{tabular}\n\\end{table*}\n";
}

}  // namespace petl::report

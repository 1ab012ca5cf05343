// `petl report`, the val_select section "Selection without the test set" (results/README.md): the
// final records kept apart from the main table; per method and task the ordinary records' best_of_10
// (epoch selected on the test list) and final (test list read once) next to the final records'
// val_select (settings and epoch selected on val200, test list read once), and the inflation
// best_of_10 − val_select; the caption that says which numbers used the test set, the markdown
// section and report_selection.csv. The plot is drawn in report_plots.cpp.
#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "core/text.h"
#include "results/report.h"
#include "results/report_internal.h"

namespace petl::report {
using namespace internal;

namespace {

bool is_final(const Run& r) { return r.stage == kStageFinal; }

// "lr=0.001 epochs=30": a final record's selection.chosen (its sets, then the epoch count); "?"
// when the record says neither.
std::string chosen_text(const Record& rec) {
  const json& sel = rec.selection;
  if (!sel.is_object()) return "?";
  auto c = sel.find("chosen");
  if (c == sel.end() || !c->is_object()) return "?";
  std::vector<std::string> parts;
  if (auto sets = c->find("sets"); sets != c->end() && sets->is_object())
    for (auto& [k, v] : sets->items()) parts.push_back(k + "=" + value_text(v));
  if (auto e = c->find("epochs"); e != c->end() && !e->is_null()) parts.push_back("epochs=" + value_text(*e));
  return parts.empty() ? "?" : join(parts, " ");
}

// Distinct values, ascending.
std::vector<int> distinct(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::string seeds_text(const std::vector<int>& seeds) {
  std::vector<std::string> s;
  for (int x : seeds) s.push_back(std::to_string(x));
  return join(s, ", ");
}

// One (method, task): the ordinary and the final records of it; nothing when it has neither.
bool selection_cell(const std::string& m, const std::string& task, const std::vector<Run>& ordinary,
                    const std::vector<Run>& finals, SelectionCell& c) {
  std::vector<double> b, f, v;
  for (auto& r : ordinary) {
    if (r.method != m || r.task != task) continue;
    if (r.record.best_of_10) b.push_back(*r.record.best_of_10);
    if (r.record.final_accuracy) f.push_back(*r.record.final_accuracy);
    c.seeds_ordinary.push_back(r.seed);
  }
  std::vector<const Run*> fin;
  for (auto& r : finals)
    if (r.method == m && r.task == task) fin.push_back(&r);
  std::stable_sort(fin.begin(), fin.end(), [](const Run* a, const Run* z) { return a->seed < z->seed; });
  for (const Run* r : fin) {
    v.push_back(*r->record.accuracy);  // the final run's test accuracy after its last epoch
    c.seeds_val_select.push_back(r->seed);
    c.chosen.push_back(chosen_text(r->record));
  }
  if (c.seeds_ordinary.empty() && fin.empty()) return false;
  c.seeds_ordinary = distinct(c.seeds_ordinary);
  c.seeds_val_select = distinct(c.seeds_val_select);
  c.best_of_10 = mean_std(b);
  c.final_acc = mean_std(f);
  c.val_select = mean_std(v);
  if (c.best_of_10.n && c.val_select.n) c.inflation = c.best_of_10.mean - c.val_select.mean;
  return true;
}

// A method's cells, its means over the tasks that have all three values, and its inflation range.
SelectionRow selection_row(const std::string& m, const std::vector<Run>& ordinary, const std::vector<Run>& finals,
                           const std::vector<std::string>& tasks) {
  SelectionRow row;
  row.method = m;
  std::vector<double> b, f, v, inf;
  for (auto& task : tasks) {
    SelectionCell c;
    if (!selection_cell(m, task, ordinary, finals, c)) continue;
    if (c.best_of_10.n && c.final_acc.n && c.val_select.n) {
      b.push_back(c.best_of_10.mean);
      f.push_back(c.final_acc.mean);
      v.push_back(c.val_select.mean);
      inf.push_back(c.inflation);
    }
    if (std::isfinite(c.inflation)) {
      if (!std::isfinite(row.min_inflation) || c.inflation < row.min_inflation) {
        row.min_inflation = c.inflation;
        row.min_task = task;
      }
      if (!std::isfinite(row.max_inflation) || c.inflation > row.max_inflation) {
        row.max_inflation = c.inflation;
        row.max_task = task;
      }
    }
    row.cells[task] = std::move(c);
  }
  row.n_common = int(b.size());
  row.complete = row.n_common == int(tasks.size());
  row.mean_best_of_10 = mean_of(b);
  row.mean_final = mean_of(f);
  row.mean_val_select = mean_of(v);
  row.mean_inflation = mean_of(inf);
  return row;
}

// Columns: the VTAB tasks present in the paper order, then the others in the main table's order,
// then those only the final records have.
std::vector<std::string> selection_tasks(const Table& t, const std::vector<Run>& ordinary,
                                         const std::set<std::string>& methods) {
  std::set<std::string> present;
  for (auto& r : t.selection.finals) present.insert(r.task);
  for (auto& r : ordinary)
    if (methods.count(r.method)) present.insert(r.task);
  std::vector<std::string> tasks;
  auto add = [&](const std::string& task) {
    if (present.count(task) && std::find(tasks.begin(), tasks.end(), task) == tasks.end()) tasks.push_back(task);
  };
  for (auto& task : vtab_tasks()) add(task);
  for (auto& task : t.tasks) add(task);
  for (auto& r : t.selection.finals) add(r.task);
  return tasks;
}

// The eval_every of the ordinary records ("10", or "10/5" where they differ; "?" without any).
std::string eval_every_text(const std::vector<Run>& ordinary) {
  std::vector<std::string> values;
  for (auto& r : ordinary) {
    const std::string v = recipe_value(r, "eval_every");
    if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
  }
  return values.empty() ? "?" : join(values, "/");
}

std::string selection_caption(const Table& t, const std::vector<Run>& ordinary) {
  const Selection& s = t.selection;
  const bool vtab = std::all_of(vtab_tasks().begin(), vtab_tasks().end(), [&](const std::string& task) {
    return std::find(s.tasks.begin(), s.tasks.end(), task) != s.tasks.end();
  });
  std::string c = "Top-1 test accuracy (%) on " +
                  (vtab && s.tasks.size() == vtab_tasks().size()
                       ? std::string("VTAB-1k")
                       : std::to_string(s.tasks.size()) + " task" + (s.tasks.size() == 1 ? "" : "s")) +
                  ", each method under three protocols, and how much selecting on the test set inflates its "
                  "accuracy. ";
  c += "best_of_10 (test-selected): the ordinary records at the method's default settings, the maximum test "
       "accuracy over the evaluations every " +
       eval_every_text(ordinary) + " epochs — best_of_10 selects the epoch on the test list. ";
  c += "final: the same runs' test accuracy after the last epoch — final uses the test list once (after the last "
       "epoch, default settings, no selection). ";
  c += "val_select: a grid of settings trained on train800 and evaluated on val200 at every evaluation epoch, the "
       "best (settings, epoch count) on val200 trained once on train800val200 for that many epochs, its test "
       "accuracy after the last epoch — val_select selects settings and epoch on val200 and uses the test list "
       "once. ";
  c += "inflation = best_of_10 − val_select (accuracy points). ";
  c += "Cells: mean over training seeds (each protocol over its own records' seeds; report_selection.csv has the "
       "counts and the chosen settings); – no record. Mean: plain mean over the tasks that have all three "
       "protocols; * not every task column.";
  return c;
}

}  // namespace

namespace internal {

void split_selection_runs(Table& t) {
  auto& runs = t.records.runs;
  const bool any_final = std::any_of(runs.begin(), runs.end(), is_final);
  if (!any_final) return;
  if (std::all_of(runs.begin(), runs.end(), is_final)) {  // the main table is theirs
    t.selection.finals_in_main = true;
    return;
  }
  std::vector<Run> ordinary;
  for (auto& r : runs) (is_final(r) ? t.selection.finals : ordinary).push_back(std::move(r));
  runs = std::move(ordinary);
  drop_duplicates(t.selection.finals, t.warnings);
}

void take_main_finals(Table& t) {
  if (t.selection.finals_in_main) t.selection.finals = t.records.runs;
}

void build_selection(Table& t) {
  Selection& s = t.selection;
  if (s.finals.empty()) return;
  const std::vector<Run> none;
  const std::vector<Run>& ordinary = s.finals_in_main ? none : t.records.runs;
  for (auto& r : s.finals)
    if (r.record.protocol != Protocol::kValSelect)
      t.warnings.push_back(r.src.where() + ": a record of stage \"final\" with protocol " +
                           to_string(r.record.protocol) +
                           " (expected val_select); its accuracy is taken as val_select's");
  std::set<std::string> with_final;
  for (auto& r : s.finals) with_final.insert(r.method);
  std::vector<std::string> methods;
  auto add_method = [&](const std::string& m) {
    if (with_final.count(m) && std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
  };
  for (auto& row : t.rows) add_method(row.method);
  for (auto& r : s.finals) add_method(r.method);
  s.tasks = selection_tasks(t, ordinary, with_final);
  for (auto& m : methods) s.rows.push_back(selection_row(m, ordinary, s.finals, s.tasks));
  s.caption = selection_caption(t, ordinary);

  if (s.finals_in_main) {
    t.notes.push_back(
        "Only val_select final records: Table 1 is theirs; the selection section has no ordinary "
        "records to set them against (best_of_10 and final –).");
  } else {
    t.notes.push_back(std::to_string(s.finals.size()) +
                      " val_select final record(s) in \"Selection without the test set\", not in Table 1.");
    for (auto& m : methods) {
      std::vector<std::string> labels;
      for (auto& row : t.rows)
        if (row.method == m) labels.push_back(row.label());
      if (labels.size() > 1)
        t.warnings.push_back("the selection section's best_of_10 and final rows of " + m +
                             " average the ordinary records of its " + std::to_string(labels.size()) +
                             " rows in Table 1 (" + join(labels, "; ") + "), not only its default settings");
    }
  }
  std::vector<std::string> differ;
  for (auto& row : s.rows)
    for (auto& [task, c] : row.cells)
      if (!c.seeds_ordinary.empty() && !c.seeds_val_select.empty() && c.seeds_ordinary != c.seeds_val_select)
        differ.push_back(row.method + "/" + task + " (ordinary seeds " + seeds_text(c.seeds_ordinary) +
                         "; val_select " + seeds_text(c.seeds_val_select) + ")");
  if (!differ.empty())
    t.notes.push_back(
        "Selection cells whose ordinary and val_select records have different seeds: " +
        join(std::vector<std::string>(differ.begin(), differ.begin() + long(std::min<size_t>(5, differ.size()))),
             ", ") +
        (differ.size() > 5 ? ", … " + std::to_string(differ.size() - 5) + " more" : std::string()) + ".");
}

}  // namespace internal

namespace {

std::string value_cell(const Stats& s) { return s.n ? fixed(s.mean, 2) : std::string(kMissing); }
std::string mean_cell(double v, bool complete, bool sign) {
  if (!std::isfinite(v)) return kMissing;
  return (sign ? signed_fixed(v, 2) : fixed(v, 2)) + (complete ? "" : "*");
}

}  // namespace

std::string render_selection(const Table& t, const std::vector<std::string>& plot_files) {
  const Selection& s = t.selection;
  if (s.rows.empty()) return "";
  std::vector<std::string> header{"Method", "Protocol"};
  header.insert(header.end(), s.tasks.begin(), s.tasks.end());
  header.push_back("Mean");
  std::vector<bool> right(header.size(), true);
  right[0] = right[1] = false;
  std::vector<std::vector<std::string>> body;
  for (auto& row : s.rows) {
    using Pick = std::function<std::string(const SelectionCell&)>;
    auto line = [&](const std::string& name, const Pick& pick, double mean, bool sign) {
      std::vector<std::string> r{row.method, name};
      for (auto& task : s.tasks) {
        auto it = row.cells.find(task);
        r.push_back(it == row.cells.end() ? std::string(kMissing) : pick(it->second));
      }
      r.push_back(mean_cell(mean, row.complete, sign));
      body.push_back(r);
    };
    line(
        "best_of_10", [](const SelectionCell& c) { return value_cell(c.best_of_10); }, row.mean_best_of_10, false);
    line(
        "final", [](const SelectionCell& c) { return value_cell(c.final_acc); }, row.mean_final, false);
    line(
        "val_select", [](const SelectionCell& c) { return value_cell(c.val_select); }, row.mean_val_select, false);
    line(
        "inflation",
        [](const SelectionCell& c) {
          return std::isfinite(c.inflation) ? signed_fixed(c.inflation, 2) : std::string(kMissing);
        },
        row.mean_inflation, true);
  }
  std::string md = "\n## Selection without the test set\n\n**Table S.** " + s.caption + "\n\n" +
                   md_table(header, body, right) +
                   "\nSelection inflation (best_of_10 − val_select, accuracy points: what choosing the epoch on the "
                   "test list adds over choosing settings and epoch on val200):\n\n";
  for (auto& row : s.rows) {
    md += "- " + row.method + ": ";
    if (!std::isfinite(row.min_inflation)) {
      md += "– (no task has both best_of_10 and val_select)\n";
      continue;
    }
    md += std::isfinite(row.mean_inflation)
              ? "mean " + mean_cell(row.mean_inflation, row.complete, true) + " over " + std::to_string(row.n_common) +
                    (row.complete ? "" : " of " + std::to_string(s.tasks.size())) + " task(s)"
              : std::string("no mean (no task has all three protocols)");
    md += "; per task min " + signed_fixed(row.min_inflation, 2) + " (" + row.min_task + "), max " +
          signed_fixed(row.max_inflation, 2) + " (" + row.max_task + ")\n";
  }
  const std::string png = "plots/selection_inflation.png";
  if (std::find(plot_files.begin(), plot_files.end(), png) != plot_files.end())
    md += "\n![Selection inflation: best_of_10 − val_select per method](" + png + ")\n";
  md += "\nPer method and task, with the seeds and the chosen settings and epoch count: report_selection.csv.\n";
  return md;
}

std::string render_selection_csv(const Table& t) {
  const Selection& s = t.selection;
  std::string out = csv_line({"method", "task", "best_of_10", "final", "val_select", "inflation", "n_seeds_ordinary",
                              "n_seeds_val_select", "chosen"});
  for (auto& row : s.rows)
    for (auto& task : s.tasks) {
      auto it = row.cells.find(task);
      if (it == row.cells.end()) continue;
      const SelectionCell& c = it->second;
      out += csv_line({row.method, task, exact_or_blank(c.best_of_10.mean), exact_or_blank(c.final_acc.mean),
                       exact_or_blank(c.val_select.mean), exact_or_blank(c.inflation),
                       std::to_string(c.seeds_ordinary.size()), std::to_string(c.seeds_val_select.size()),
                       join(c.chosen, ";")});
    }
  return out;
}

}  // namespace petl::report

// `petl report`, rendering: the table as padded markdown (with the Δ view, plots, notes, warnings
// and failed jobs for report.md), wide and long CSV, and a booktabs LaTeX table.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/text.h"
#include "results/report.h"
#include "results/report_internal.h"

namespace petl::report {
namespace fs = std::filesystem;
using namespace internal;

std::string internal::signed_fixed(double v, int prec) {
  std::string s = fixed(v, prec);
  return s[0] == '-' ? s : "+" + s;
}

namespace {

// "68.90" → "68.9", "70.00" → "70.0", "65.57" stays: published numbers as they were written.
std::string short_fixed(double v) {
  std::string s = fixed(v, 2);
  if (s.size() > 1 && s.back() == '0') s.pop_back();
  return s;
}
}  // namespace

namespace internal {

// A parameter count for people: three significant digits with K (10^3), M (10^6) or G (10^9),
// trailing zeros dropped: 776, 1.54 K, 23.8 K, 160 K, 2.69 M, 85.8 M, 0.
std::string count_text(double n) {
  if (!std::isfinite(n)) return kMissing;
  if (n == 0) return "0";
  static const char* const suffix[] = {"", " K", " M", " G"};
  int k = 0;
  double v = n;
  while (std::fabs(v) >= 999.5 && k < 3) {
    v /= 1000;
    ++k;
  }
  std::string s = fixed(v, std::fabs(v) >= 99.95 ? 0 : std::fabs(v) >= 9.995 ? 1 : 2);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s + suffix[k];
}
std::string num_or_blank(double v, int prec) { return std::isfinite(v) ? fixed(v, prec) : ""; }
// A number for a machine-readable column: up to 10 significant digits, "" when not finite.
std::string exact_or_blank(double v) {
  if (!std::isfinite(v)) return "";
  char b[48];
  std::snprintf(b, sizeof b, "%.10g", v);
  return b;
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::vector<std::string> q;
  for (auto& f : fields) q.push_back(csv_field(f));
  return join(q, ",") + "\n";
}

}  // namespace internal

namespace {

// The unit of a table's Train column, chosen by its largest value so the column reads in one unit.
struct TimeUnit {
  std::string name;
  double seconds = 1;
  int prec = 1;
};
TimeUnit time_unit(const Table& t) {
  double most = 0;
  for (auto& r : t.rows)
    if (std::isfinite(r.train_s)) most = std::max(most, r.train_s);
  if (most < 600) return {"s", 1, 1};
  if (most < 600 * 60) return {"min", 60, 1};
  return {"h", 3600, 2};
}
std::string time_text(double seconds, const TimeUnit& u) {
  return std::isfinite(seconds) ? fixed(seconds / u.seconds, u.prec) : std::string(kMissing);
}
std::string mib_text(double v) { return std::isfinite(v) ? fixed(v, 1) : std::string(kMissing); }

// The first line of a message, cut to max_len characters.
std::string first_line_cut(const std::string& s, size_t max_len = 200) {
  std::string l = first_line(s);
  if (utf8_len(l) > max_len) l = l.substr(0, max_len) + "…";
  return l;
}

}  // namespace

namespace internal {

std::string tex_escape(const std::string& s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    switch (c) {
      case '_':
      case '%':
      case '&':
      case '#':
      case '$':
      case '{':
      case '}':
        o += '\\';
        o += c;
        break;
      case '~':
        o += "\\textasciitilde{}";
        break;
      case '^':
        o += "\\textasciicircum{}";
        break;
      case '\\':
        o += "\\textbackslash{}";
        break;
      case '<':
        o += "$<$";
        break;
      case '>':
        o += "$>$";
        break;
      default:
        o += c;
    }
  }
  // UTF-8 symbols used in captions and cells.
  auto rep = [&](const std::string& from, const std::string& to) {
    for (size_t p = o.find(from); p != std::string::npos; p = o.find(from, p + to.size()))
      o.replace(p, from.size(), to);
  };
  rep("±", "$\\pm$");
  rep("–", "--");
  rep("−", "$-$");
  rep("Δ", "$\\Delta$");
  rep("·", "$\\cdot$");
  rep("…", "\\dots{}");
  return o;
}

// A padded markdown table; right-aligned columns get ---:.
std::string md_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& body,
                     const std::vector<bool>& right) {
  std::vector<size_t> w(header.size(), 3);
  auto widen = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], utf8_len(r[i]));
  };
  widen(header);
  for (auto& r : body) widen(r);
  auto line = [&](const std::vector<std::string>& r) {
    std::string s = "|";
    for (size_t i = 0; i < w.size(); ++i) {
      std::string c = i < r.size() ? r[i] : "";
      std::string pad(w[i] - utf8_len(c), ' ');
      s += " " + (right[i] ? pad + c : c + pad) + " |";
    }
    return s + "\n";
  };
  std::string out = line(header);
  out += "|";
  for (size_t i = 0; i < w.size(); ++i)
    out += right[i] ? " " + std::string(w[i] - 1, '-') + ": |" : " :" + std::string(w[i] - 1, '-') + " |";
  out += "\n";
  for (auto& r : body) out += line(r);
  return out;
}

}  // namespace internal

namespace {

std::string cell_text(const Cell& c) {
  if (c.acc.n == 0) return kMissing;
  if (c.acc.n == 1) return fixed(c.acc.mean, 2);
  return fixed(c.acc.mean, 2) + " ± " + fixed(c.acc.std, 2) + " (n=" + std::to_string(c.acc.n) + ")";
}
std::string mean_text(double v, bool complete) {
  if (!std::isfinite(v)) return kMissing;
  return fixed(v, 2) + (complete ? "" : "*");
}
// A row's Mean: "67.14 ± 0.35 (n=2)" (± over seeds, Row::seed_means), "*" when incomplete.
std::string row_mean_text(const Row& row) {
  if (!std::isfinite(row.mean)) return kMissing;
  std::string s = fixed(row.mean, 2);
  if (row.seed_means.n > 1 && std::isfinite(row.seed_means.std))
    s += " ± " + fixed(row.seed_means.std, 2) + " (n=" + std::to_string(row.seed_means.n) + ")";
  return s + (row.complete ? "" : "*");
}

struct Layout {
  std::vector<std::string> header;
  std::vector<bool> right;
  std::vector<int> mean_groups;  // indices of groups with a mean column
  size_t n_tail = 0;             // columns after Mean: params, memory, time
  TimeUnit time;
};
Layout layout(const Table& t) {
  Layout l;
  l.header.push_back("Method");
  for (auto& task : t.tasks) l.header.push_back(task);
  for (int g = 0; g < int(t.groups.size()); ++g)
    if (t.groups[g].has_mean) {
      l.header.push_back(t.groups[g].name);
      l.mean_groups.push_back(g);
    }
  l.header.push_back("Mean");
  l.time = time_unit(t);
  for (auto h : {std::string("Params"), std::string("Peak train (MiB)"), std::string("Peak eval (MiB)"),
                 "Train (" + l.time.name + "/job)"})
    l.header.push_back(h);
  l.n_tail = 4;
  l.right.assign(l.header.size(), true);
  l.right[0] = false;
  return l;
}

std::vector<std::string> group_row(const Table& t, const Layout& l) {
  std::vector<std::string> r(l.header.size());
  size_t col = 1;
  for (auto& g : t.groups) {
    if (!g.tasks.empty()) r[col] = "*" + g.name + "*";
    col += g.tasks.size();
  }
  return r;
}

std::vector<std::vector<std::string>> main_body(const Table& t, const Layout& l) {
  std::vector<std::vector<std::string>> body;
  if (t.groups.size() > 1) body.push_back(group_row(t, l));
  for (auto& row : t.rows) {
    std::vector<std::string> r{row.label()};
    for (auto& task : t.tasks) {
      auto it = row.cells.find(task);
      r.push_back(it == row.cells.end() ? std::string(kMissing) : cell_text(it->second));
    }
    for (int g : l.mean_groups) r.push_back(mean_text(row.group_means[g], row.group_complete[g]));
    r.push_back(row_mean_text(row));
    r.push_back(count_text(row.params));
    r.push_back(fixed(row.peak_train_mib, 1));
    r.push_back(mib_text(row.peak_eval_mib));
    r.push_back(time_text(row.train_s, l.time));
    body.push_back(r);
  }
  if (!t.ref_lines.empty()) {
    std::vector<std::string> div(l.header.size());
    div[0] = "*published*";
    body.push_back(div);
    for (auto& rl : t.ref_lines) {
      std::vector<std::string> r{rl.ref.label()};
      for (auto& task : t.tasks) {
        auto it = rl.ref.acc.find(task);
        r.push_back(it == rl.ref.acc.end() ? std::string(kMissing) : short_fixed(it->second));
      }
      for (int g : l.mean_groups)
        r.push_back(std::isfinite(rl.group_means[g]) ? fixed(rl.group_means[g], 2) : kMissing);
      r.push_back(!std::isfinite(rl.mean) ? std::string(kMissing)
                  : rl.mean_published     ? short_fixed(rl.mean)
                                          : fixed(rl.mean, 2));
      r.push_back(count_text(rl.ref.params_m * 1e6));
      for (size_t k = 1; k < l.n_tail; ++k) r.push_back(kMissing);
      body.push_back(r);
    }
  }
  return body;
}

}  // namespace

std::string render_markdown_table(const Table& t) {
  auto l = layout(t);
  return "**Table 1.** " + t.caption + "\n\n" + md_table(l.header, main_body(t, l), l.right);
}

namespace {
// A budget-view cell (see BudgetPick).
std::string budget_cell(const Table& t, const BudgetPick& p, double budget_mib, bool& dagger) {
  using K = BudgetPick::Kind;
  switch (p.kind) {
    case K::kBest:
    case K::kIncomplete: {
      const Row& r = t.rows[size_t(p.row)];
      const double eval = row_max_eval_mib(r);
      const bool over = std::isfinite(eval) && eval > budget_mib;
      dagger = dagger || over;
      const bool part = p.kind == K::kIncomplete;
      return fixed(r.mean, 2) + (part ? "*" : "") + " (" + (r.setting.empty() ? std::string() : r.setting + "; ") +
             "peak train " + fixed(row_max_peak_mib(r), 1) + ", eval " + mib_text(eval) + (over ? "†" : "") + " MiB" +
             (part ? "; " + std::to_string(p.fit_tasks) + " of " + std::to_string(t.tasks.size()) + " tasks run" : "") +
             ")";
    }
    case K::kDoesNotFit:
      return "does not fit (" + p.unfit_task +
             (std::isfinite(p.minimum_peak_mib) ? ": minimum peak " + fixed(p.minimum_peak_mib, 1) + " MiB)"
                                                : ": does_not_fit record)");
    case K::kNotRun:
      break;
  }
  return "not run under this budget" +
         (std::isfinite(p.lowest_peak_mib) ? " (lowest peak " + fixed(p.lowest_peak_mib, 1) + " MiB)" : std::string());
}
}  // namespace

std::string render_budget_view(const Table& t) {
  if (t.budgets.empty()) return "";
  std::vector<std::string> header{"Method"};
  for (int64_t b : t.budgets) header.push_back("≤ " + format_bytes(double(b)));
  std::vector<bool> right(header.size(), false);
  std::vector<std::vector<std::string>> body;
  bool dagger = false;
  for (auto& [method, picks] : t.budget_best) {
    std::vector<std::string> line{method};
    for (size_t b = 0; b < picks.size(); ++b)
      line.push_back(budget_cell(t, picks[b], double(t.budgets[b]) / 1048576.0, dagger));
    body.push_back(line);
  }
  std::string md =
      "\n## Accuracy under a memory budget\n\n**Table B.** For each budget, each method's best mean "
      "accuracy over its complete rows (backbones, micro-batches, budgets, settings) whose peak training memory "
      "fits the budget on every task, with that row's setting (\"no budget\": run without --memory-budget) and "
      "its largest training and evaluation peaks over the tasks (MiB). \"does not fit\": a record with status "
      "does_not_fit shows the method cannot train under this budget (its minimum peak is above it); \"not run "
      "under this budget\": no record says either way — every row of the method peaks above the budget (its "
      "lowest peak shown) and none was run with a budget this small. Where no complete row fits, \"X* (…; k of N "
      "tasks run)\": the mean of the row run on the most tasks that fits on each of them. Records with status "
      "does_not_fit are listed below the table.";
  if (dagger) md += " † the evaluation peak is above the budget (a budget bounds the training peak).";
  md += "\n\n" + md_table(header, body, right);
  if (!t.pareto.empty()) {
    md += "\nPareto front (accuracy vs peak training memory; no other row is better at the same or a lower peak): ";
    for (size_t k = 0; k < t.pareto.size(); ++k) {
      const Row& r = t.rows[t.pareto[k]];
      md += (k ? " → " : "") + r.label() + " " + fixed(r.mean, 2) + " @ " + fixed(r.peak_train_mib, 1) + " MiB";
    }
    md += ".\n";
  }
  return md;
}

std::string render_markdown(const Table& t, const std::vector<std::string>& plot_files) {
  std::string md = "# petl report\n\n" + render_markdown_table(t) + render_budget_view(t);
  if (!t.deltas.empty()) {
    auto l = layout(t);
    std::vector<std::string> header(l.header.begin(), l.header.end() - long(l.n_tail));  // no params / memory / time
    header[0] = "Ours − published";
    std::vector<bool> right(header.size(), true);
    right[0] = false;
    std::vector<std::vector<std::string>> body;
    if (t.groups.size() > 1) {
      auto g = group_row(t, l);
      g.resize(header.size());
      body.push_back(g);
    }
    for (auto& d : t.deltas) {
      std::vector<std::string> r{d.ours == d.published ? d.ours : d.ours + " vs " + d.published};
      for (auto& task : t.tasks) {
        auto it = d.delta.find(task);
        r.push_back(it == d.delta.end() ? std::string(kMissing) : signed_fixed(it->second, 2));
      }
      for (int g : l.mean_groups)
        r.push_back(std::isfinite(d.group_means[g])
                        ? signed_fixed(d.group_means[g], 2) + (d.group_complete[g] ? "" : "*")
                        : kMissing);
      r.push_back(std::isfinite(d.mean) ? signed_fixed(d.mean, 2) + (d.complete ? "" : "*") : kMissing);
      body.push_back(r);
    }
    md += "\n## Δ vs published\n\n**Table 2.** Ours − " + t.reference.label +
          ", in accuracy points, per task where both exist; group means and Mean of the Δ over the tasks both have "
          "(* not every task of the group / table).\n\n" +
          md_table(header, body, right);
  } else if (!t.ref_lines.empty()) {
    md += "\nNo method of this table appears in the reference (" + t.reference.label + "), so there is no Δ view.\n";
  }
  md += render_selection(t, plot_files);
  if (std::any_of(plot_files.begin(), plot_files.end(),
                  [](const std::string& p) { return fs::path(p).stem() != "selection_inflation"; })) {
    md += "\n## Plots\n\nAll plots: " + plot_subtitle(t) +
          ". Points and lines are named by their short label (the method, or method #k where a method has several "
          "rows); plots/key.csv lists every series with its colour, point type and full setting" +
          (std::any_of(t.rows.begin(), t.rows.end(), [](const Row& r) { return r.short_label != r.method; })
               ? std::string(", as the key below does")
               : std::string()) +
          ". A * marks a row whose mean covers the tasks present only.\n\n";
    for (auto& p : plot_files)
      if (p.size() > 4 && p.substr(p.size() - 4) == ".png" && fs::path(p).stem() != "selection_inflation") {
        std::string name = fs::path(p).stem().string();
        std::string title = name == "acc_vs_memory"            ? "Accuracy vs peak training memory (mean over tasks)"
                            : name == "acc_vs_memory_per_task" ? "Accuracy vs peak training memory, per task"
                            : name == "acc_vs_params"          ? "Accuracy vs trainable parameters"
                            : name == "evals"                  ? "Test accuracy over evaluations, per run"
                                                               : name;
        md += "![" + title + "](" + p + ")\n\n";
      }
    md += "SVG versions, gnuplot scripts and data beside them in plots/ (re-render: `cd plots && gnuplot NAME.gp`).\n";
    if (std::any_of(t.rows.begin(), t.rows.end(), [](const Row& r) { return r.short_label != r.method; })) {
      std::vector<std::vector<std::string>> key;
      for (auto& r : t.rows)
        key.push_back({r.short_label + (r.complete ? "" : "*"), r.method, r.setting.empty() ? kMissing : r.setting,
                       mean_text(r.mean, r.complete), fixed(r.peak_train_mib, 1)});
      md += "\n**Plot key.** The plots' short labels and the rows they stand for.\n\n" +
            md_table({"Plot label", "Method", "Setting", "Mean", "Peak train (MiB)"}, key,
                     {false, false, false, true, true});
    }
  }
  return md + notes_section(t.notes, t.warnings, t.records);
}

std::string internal::notes_section(const std::vector<std::string>& notes, const std::vector<std::string>& warnings,
                                    const Records& records) {
  std::string md = "\n## Notes\n\n";
  for (auto& n : notes) md += "- " + n + "\n";
  if (!warnings.empty()) {
    md += "\n### Warnings\n\n";
    for (auto& w : warnings) md += "- " + w + "\n";
  }
  std::vector<const Skipped*> failed;
  for (auto& s : records.skipped)
    if (s.status == RecordStatus::kFailed) failed.push_back(&s);
  std::string unfit;
  for (auto& s : records.skipped)
    if (s.status == RecordStatus::kDoesNotFit)
      unfit += "- " + s.method + "/" + s.task + (s.seed >= 0 ? " seed " + std::to_string(s.seed) : std::string()) +
               " (" + s.src.where() + "): " + s.message + "\n";
  if (!unfit.empty()) md += "\n### Jobs that do not fit their memory budget (not tabulated)\n\n" + unfit;
  if (!failed.empty()) {
    md += "\n### Failed jobs (not tabulated)\n\n";
    for (auto* s : failed) {
      md += "- " + s->method + "/" + s->task + (s->seed >= 0 ? " seed " + std::to_string(s->seed) : std::string()) +
            " (" + s->src.where() + "): " + first_line_cut(s->message);
      for (auto& r : records.runs)  // a later successful re-run of the same job
        if (r.method == s->method && r.task == s->task && (s->seed < 0 || r.seed == s->seed)) {
          md += " — an ok record of this method/task" + std::string(s->seed >= 0 ? "/seed" : "") + " is tabulated (" +
                r.src.where() + ")";
          break;
        }
      md += "\n";
    }
  }
  return md;
}

std::string render_csv(const Table& t) {
  auto l = layout(t);
  std::vector<std::string> h{"kind", "method", "setting"};
  for (auto& task : t.tasks) h.push_back(task);
  for (int g : l.mean_groups) {
    std::string n = t.groups[g].name;
    std::transform(n.begin(), n.end(), n.begin(), ::tolower);
    h.push_back(n + "_mean");
  }
  for (auto s : {"mean", "params_m", "peak_train_mib", "n_tasks", "complete", "source", "params", "peak_eval_mib",
                 "train_s", "wall_h", "mean_std", "mean_n_seeds"})
    h.push_back(s);
  std::string out;
  auto emit = [&](const std::vector<std::string>& r) {
    std::vector<std::string> q;
    for (auto& f : r) q.push_back(csv_field(f));
    out += join(q, ",") + "\n";
  };
  emit(h);
  for (auto& row : t.rows) {
    std::vector<std::string> r{"ours", row.method, row.setting};
    for (auto& task : t.tasks) {
      auto it = row.cells.find(task);
      r.push_back(it == row.cells.end() ? "" : fixed(it->second.acc.mean, 4));
    }
    for (int g : l.mean_groups) r.push_back(num_or_blank(row.group_means[g], 4));
    r.push_back(num_or_blank(row.mean, 4));
    r.push_back(num_or_blank(row.params_m, 6));
    r.push_back(num_or_blank(row.peak_train_mib, 3));
    r.push_back(std::to_string(row.cells.size()));
    r.push_back(row.complete ? "1" : "0");
    r.push_back("petl");
    r.push_back(exact_or_blank(row.params));
    r.push_back(num_or_blank(row.peak_eval_mib, 3));
    r.push_back(num_or_blank(row.train_s, 3));
    r.push_back(num_or_blank(row.wall_h, 6));
    r.push_back(row.seed_means.n > 1 ? num_or_blank(row.seed_means.std, 4) : "");
    r.push_back(std::to_string(row.seed_means.n));
    emit(r);
  }
  for (auto& rl : t.ref_lines) {
    std::vector<std::string> r{"reference", rl.ref.method, rl.ref.setting};
    int n = 0;
    for (auto& task : t.tasks) {
      auto it = rl.ref.acc.find(task);
      r.push_back(it == rl.ref.acc.end() ? "" : fixed(it->second, 4));
      n += it != rl.ref.acc.end();
    }
    for (int g : l.mean_groups) r.push_back(num_or_blank(rl.group_means[g], 4));
    r.push_back(num_or_blank(rl.mean, 4));
    r.push_back(num_or_blank(rl.ref.params_m, 6));
    r.push_back("");
    r.push_back(std::to_string(n));
    r.push_back(n == int(t.tasks.size()) ? "1" : "0");
    r.push_back(t.reference.label);
    r.push_back(exact_or_blank(rl.ref.params_m * 1e6));
    for (int k = 0; k < 5; ++k) r.push_back("");
    emit(r);
  }
  for (auto& d : t.deltas) {
    const Row* row = nullptr;
    for (auto& rr : t.rows)
      if (rr.label() == d.ours) row = &rr;
    std::vector<std::string> r{"delta", row ? row->method : d.ours, row ? row->setting : ""};
    for (auto& task : t.tasks) {
      auto it = d.delta.find(task);
      r.push_back(it == d.delta.end() ? "" : fixed(it->second, 4));
    }
    for (int g : l.mean_groups) r.push_back(num_or_blank(d.group_means[g], 4));
    r.push_back(num_or_blank(d.mean, 4));
    r.push_back("");
    r.push_back("");
    r.push_back(std::to_string(d.delta.size()));
    r.push_back(d.complete ? "1" : "0");
    r.push_back("ours − " + t.reference.label + " (" + d.published + ")");
    for (int k = 0; k < 6; ++k) r.push_back("");
    emit(r);
  }
  return out;
}

std::string render_cells_csv(const Table& t) {
  std::string out =
      "method,setting,task,group,n,seeds,accuracy_mean,accuracy_std,protocol,trainable_params,peak_train_mib,records,"
      "peak_eval_mib,train_s\n";
  for (auto& row : t.rows)
    for (auto& g : t.groups)
      for (auto& task : g.tasks) {
        auto it = row.cells.find(task);
        if (it == row.cells.end()) continue;
        const Cell& c = it->second;
        std::vector<std::string> seeds, srcs;
        for (int s : c.seeds) seeds.push_back(std::to_string(s));
        for (size_t i : c.runs) srcs.push_back(t.records.runs[i].src.where());
        std::vector<std::string> r{row.method,
                                   row.setting,
                                   task,
                                   g.name,
                                   std::to_string(c.acc.n),
                                   join(seeds, ";"),
                                   fixed(c.acc.mean, 4),
                                   num_or_blank(c.acc.std, 4),
                                   t.records.runs[c.runs[0]].protocol,
                                   fixed(c.params, 0),
                                   fixed(c.peak_train_mib, 3),
                                   join(srcs, ";"),
                                   num_or_blank(c.peak_eval_mib, 3),
                                   num_or_blank(c.train_s, 3)};
        std::vector<std::string> q;
        for (auto& f : r) q.push_back(csv_field(f));
        out += join(q, ",") + "\n";
      }
  return out;
}

std::string render_tex(const Table& t) {
  auto l = layout(t);
  const size_t ncol = l.header.size();
  auto rot = [](const std::string& s) { return "\\rotatebox{90}{" + tex_escape(s) + "}"; };
  auto tex_cell = [](const Cell& c) {
    if (c.acc.n == 0) return std::string("--");
    if (c.acc.n == 1) return fixed(c.acc.mean, 2);
    return fixed(c.acc.mean, 2) + "{\\scriptsize$\\pm$" + fixed(c.acc.std, 2) + "$^{n=" + std::to_string(c.acc.n) +
           "}$}";
  };
  auto tex_mean = [](double v, bool complete) {
    if (!std::isfinite(v)) return std::string("--");
    return fixed(v, 2) + (complete ? "" : "$^*$");
  };
  auto tex_row_mean = [&](const Row& row) {
    if (!std::isfinite(row.mean) || row.seed_means.n < 2 || !std::isfinite(row.seed_means.std))
      return tex_mean(row.mean, row.complete);
    return fixed(row.mean, 2) + "{\\scriptsize$\\pm$" + fixed(row.seed_means.std, 2) +
           "$^{n=" + std::to_string(row.seed_means.n) + "}$}" + (row.complete ? "" : "$^*$");
  };
  auto tex_or_dash = [](const std::string& s) { return s == kMissing ? std::string("--") : tex_escape(s); };
  std::string spec = "l";
  for (auto& g : t.groups) spec += std::string(g.tasks.size(), 'r');
  spec += std::string(l.mean_groups.size() + 1, 'r') + std::string(l.n_tail, 'r');
  std::string o;
  o += "% petl report: needs \\usepackage{booktabs,graphicx}\n";
  o += "\\begin{table*}[t]\n\\centering\n\\caption{" + tex_escape(t.caption) + "}\n";
  o += "\\resizebox{\\textwidth}{!}{%\n\\begin{tabular}{" + spec + "}\n\\toprule\n";
  if (t.groups.size() > 1 || !l.mean_groups.empty()) {
    std::string g1 = " ";
    std::string rules;
    size_t col = 2;
    for (auto& g : t.groups) {
      g1 += " & \\multicolumn{" + std::to_string(g.tasks.size()) + "}{c}{" + tex_escape(g.name) + "}";
      rules += "\\cmidrule(lr){" + std::to_string(col) + "-" + std::to_string(col + g.tasks.size() - 1) + "}";
      col += g.tasks.size();
    }
    g1 += " & \\multicolumn{" + std::to_string(l.mean_groups.size() + 1) + "}{c}{Means}";
    for (size_t k = 0; k < l.n_tail; ++k) g1 += " &";
    g1 += " \\\\\n";
    rules += "\\cmidrule(lr){" + std::to_string(col) + "-" + std::to_string(col + l.mean_groups.size()) + "}\n";
    o += g1 + rules;
  }
  std::vector<std::string> hdr{"Method"};
  for (size_t i = 1; i < ncol; ++i) hdr.push_back(rot(l.header[i]));
  o += join(hdr, " & ") + " \\\\\n\\midrule\n";
  for (auto& row : t.rows) {
    std::vector<std::string> r{tex_escape(row.label())};
    for (auto& task : t.tasks) {
      auto it = row.cells.find(task);
      r.push_back(it == row.cells.end() ? std::string("--") : tex_cell(it->second));
    }
    for (int g : l.mean_groups) r.push_back(tex_mean(row.group_means[g], row.group_complete[g]));
    r.push_back(tex_row_mean(row));
    r.push_back(tex_escape(count_text(row.params)));
    r.push_back(fixed(row.peak_train_mib, 1));
    r.push_back(tex_or_dash(mib_text(row.peak_eval_mib)));
    r.push_back(tex_or_dash(time_text(row.train_s, l.time)));
    o += join(r, " & ") + " \\\\\n";
  }
  if (!t.ref_lines.empty()) {
    o += "\\midrule\n\\multicolumn{" + std::to_string(ncol) +
         "}{l}{\\emph{published: " + tex_escape(t.reference.label) + "}} \\\\\n";
    for (auto& rl : t.ref_lines) {
      std::vector<std::string> r{tex_escape(rl.ref.label())};
      for (auto& task : t.tasks) {
        auto it = rl.ref.acc.find(task);
        r.push_back(it == rl.ref.acc.end() ? std::string("--") : short_fixed(it->second));
      }
      for (int g : l.mean_groups) r.push_back(tex_mean(rl.group_means[g], true));
      r.push_back(!std::isfinite(rl.mean) ? std::string("--")
                  : rl.mean_published     ? short_fixed(rl.mean)
                                          : fixed(rl.mean, 2));
      r.push_back(tex_escape(count_text(rl.ref.params_m * 1e6)));
      for (size_t k = 1; k < l.n_tail; ++k) r.push_back("--");
      o += join(r, " & ") + " \\\\\n";
    }
  }
  o += "\\bottomrule\n\\end{tabular}}\n\\end{table*}\n";
  return o;
}

}  // namespace petl::report

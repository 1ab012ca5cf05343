// `petl report`, plots: gnuplot scripts + data under <out>/plots (accuracy vs peak training
// memory, per task, vs trainable parameters, test accuracy over evaluations), rendered to PNG and
// SVG when gnuplot is installed. Each plot is one function; write_plots writes them and renders.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "results/report.h"
#include "results/report_internal.h"

namespace petl::report {
namespace fs = std::filesystem;
using namespace internal;

namespace {

// gnuplot single-quoted string ('' is a quote) and double-quoted data/title strings.
std::string gp_sq(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("''") : std::string(1, c);
  return o + "'";
}
std::string gp_dq(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}
// A multi-line gnuplot title: each line escaped, joined by gnuplot's "\n".
std::string gp_lines(const std::vector<std::string>& lines) {
  std::string o;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string q = gp_dq(lines[i]);
    o += (i ? "\\n" : "") + q.substr(1, q.size() - 2);
  }
  return "\"" + o + "\"";
}
// A shell single-quoted word.
std::string sh_sq(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
const int kPointTypes[] = {7, 5, 9, 13, 11, 15};
std::string color_of(size_t i) { return kColors[i % 10]; }
int pt_of(size_t i) { return kPointTypes[i % 6]; }
long rgb_int(const std::string& hex) { return std::strtol(hex.c_str() + 1, nullptr, 16); }

// The same plot body rendered twice: PNG (pngcairo) and SVG.
std::string two_terminals(const std::string& name, int w, int h, const std::string& body) {
  std::string s =
      "# " + name + ".gp: written by `petl report`; render with `gnuplot " + name + ".gp` in this folder.\n";
  s += "set terminal pngcairo size " + std::to_string(w) + "," + std::to_string(h) +
       " noenhanced font 'DejaVu Sans,11'\nset output '" + name + ".png'\n" + body + "set output\nreset\n";
  s += "set terminal svg size " + std::to_string(w) + "," + std::to_string(h) +
       " dynamic noenhanced font 'DejaVu Sans,11'\nset output '" + name + ".svg'\n" + body + "set output\n";
  return s;
}

bool use_log(const std::vector<double>& xs) {
  if (xs.empty()) return false;
  double lo = *std::min_element(xs.begin(), xs.end()), hi = *std::max_element(xs.begin(), xs.end());
  return lo > 0 && hi / lo >= 20;
}

// The x axis of a plot (every panel of a multiplot shares it): log scale when the values span at
// least 20×, and a range with margins so no point sits on the border.
std::string x_axis(const std::vector<double>& xs, bool* log_out = nullptr) {
  bool log = use_log(xs);
  if (log_out) *log_out = log;
  if (xs.empty()) return "";
  double lo = *std::min_element(xs.begin(), xs.end()), hi = *std::max_element(xs.begin(), xs.end());
  char b[160];
  if (log) {
    std::snprintf(b, sizeof b, "set logscale x\nset xrange [%.6g:%.6g]\n", lo / 1.6, hi * 1.6);
  } else {
    double pad = hi > lo ? (hi - lo) * 0.12 : std::max(std::fabs(lo) * 0.1, 1.0);
    double a = lo - pad;
    if (lo >= 0 && a < 0) a = 0;
    std::snprintf(b, sizeof b, "set xrange [%.6g:%.6g]\n", a, hi + pad);
  }
  return b;
}

// Plain key panel of a multiplot: one invisible sample per row.
std::string key_panel(const Table& t, const std::string& style) {
  std::string s =
      "unset border\nunset tics\nunset xlabel\nunset ylabel\nunset grid\nunset logscale\nunset title\nset offsets "
      "0,0,0,0\n"
      "set xrange [0:1]\nset yrange [0:1]\nset key center center vertical Left reverse box spacing 1.3 width 1 height "
      "0.6\nplot ";
  for (size_t i = 0; i < t.rows.size(); ++i)
    s += std::string(i ? ", \\\n     " : "") + "-1 with " + style + " pt " + std::to_string(pt_of(i)) +
         " ps 1.5 lw 2 lc rgb '" + color_of(i) + "' title " + gp_sq(t.rows[i].label());
  return s + "\n";
}

// One series per row (its own colour, point type and key entry) and its label beside the point,
// alternately above and below so rows at the same spot stay readable.
std::string row_series(const Table& t, const std::string& dat, const std::vector<std::string>& labels) {
  std::string s = "plot ";
  for (size_t i = 0; i < t.rows.size(); ++i)
    s += std::string(i ? ", \\\n     " : "") + gp_sq(dat) + " index " + std::to_string(i) +
         " using 2:3 with points pt " + std::to_string(pt_of(i)) + " ps 2 lc rgb '" + color_of(i) + "' title " +
         gp_sq(labels[i]);
  for (size_t i = 0; i < t.rows.size(); ++i)
    s += ", \\\n     " + gp_sq(dat) + " index " + std::to_string(i) + " using 2:3:1 with labels offset char 1.2," +
         (i % 2 ? "-0.9" : "0.9") + " left font ',9' tc rgb '" + color_of(i) + "' notitle";
  return s;
}

// What every plot shares: the output folder, the subtitle, row labels and the panel layout.
struct PlotContext {
  const Table& t;
  fs::path dir;
  std::string sub;                             // protocol, backbone, batch size
  bool any_incomplete = false;                 // a row's mean is over the tasks present only
  std::vector<std::string> labels;             // row labels, "*" for incomplete rows
  std::vector<std::string> panel_tasks;        // tasks with at least one cell
  int prow = 1, cols = 1, mw = 900, mh = 420;  // multiplot layout and size

  PlotContext(const Table& table, const fs::path& d) : t(table), dir(d) {
    const auto& runs = t.records.runs;
    sub = "protocol " + t.protocol + "; backbone " + (runs.empty() ? std::string("?") : runs[0].backbone) +
          "; batch size " + (runs.empty() ? std::string("?") : recipe_value(runs[0], "batch_size"));
    for (auto& r : t.rows) any_incomplete |= !r.complete;
    for (auto& r : t.rows) labels.push_back(r.label() + (r.complete ? "" : "*"));
    for (auto& task : t.tasks)
      for (auto& r : t.rows)
        if (r.cells.count(task)) {
          panel_tasks.push_back(task);
          break;
        }
    const int panels = int(panel_tasks.size()) + 1;  // + the key panel
    cols = panels <= 4 ? panels : panels <= 9 ? 3 : panels <= 16 ? 4 : 5;
    prow = (panels + cols - 1) / cols;
    mw = std::max(900, cols * 420);
    mh = prow * 340 + 80;
  }
  static constexpr const char* kStarNote = "* mean over the tasks present only";
  std::string title(const std::string& head, bool star) const {
    std::vector<std::string> l{head, sub};
    if (star && any_incomplete) l.push_back(kStarNote);
    return gp_lines(l);
  }
  // The multiplot header of a per-task figure.
  std::string multiplot(const std::string& head) const {
    return "set multiplot layout " + std::to_string(prow) + "," + std::to_string(cols) + " title " +
           title(head, false) + "\n";
  }
};

// 1. Accuracy vs peak training memory, mean over each row's tasks.
std::string plot_acc_vs_memory(const PlotContext& c) {
  const Table& t = c.t;
  std::string dat = "# label peak_train_mib mean_accuracy n_tasks (one block per row)\n";
  std::vector<double> xs;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    char b[256];
    std::snprintf(b, sizeof b, "%s %.6g %.6g %zu\n\n\n", gp_dq(c.labels[i]).c_str(), t.rows[i].peak_train_mib,
                  t.rows[i].mean, t.rows[i].cells.size());
    dat += b;
    xs.push_back(t.rows[i].peak_train_mib);
  }
  write_text(c.dir / "acc_vs_memory.dat", dat);
  std::string front = "# peak_train_mib mean_accuracy label: the Pareto front (best mean at or below each peak)\n";
  for (size_t i : t.pareto) {
    char b[256];
    std::snprintf(b, sizeof b, "%.6g %.6g %s\n", t.rows[i].peak_train_mib, t.rows[i].mean,
                  gp_dq(t.rows[i].label()).c_str());
    front += b;
  }
  write_text(c.dir / "acc_vs_memory_pareto.dat", front);
  bool log = false;
  std::string xa = x_axis(xs, &log);
  std::string body =
      "set title " + c.title("Accuracy vs peak training memory (mean over tasks)", true) +
      "\nset xlabel 'Peak training memory (MiB)" + (log ? ", log scale" : "") +
      "'\nset ylabel 'Top-1 test accuracy (%), mean over tasks'\n"
      "set grid\nset key outside right top box spacing 1.2 height 0.6\nset offsets 0, 0, graph 0.1, graph 0.1\n" +
      xa + row_series(t, "acc_vs_memory.dat", c.labels) +
      (t.pareto.empty() ? std::string()
                        : ", \\\n     'acc_vs_memory_pareto.dat' using 1:2 with steps dt 2 lw 2 lc rgb '#404040' "
                          "title 'Pareto front (best accuracy at or below each peak)'") +
      "\n";
  write_text(c.dir / "acc_vs_memory.gp", two_terminals("acc_vs_memory", 1100, 650, body));
  return "acc_vs_memory";
}

// 2. Per task: one panel per task, one point per row (every panel on the same x axis).
std::string plot_acc_vs_memory_per_task(const PlotContext& c) {
  const Table& t = c.t;
  std::string dat = "# label peak_train_mib accuracy pointtype rgb (one block per task)\n";
  std::vector<double> xs;
  for (auto& task : c.panel_tasks) {
    dat += "# " + task + "\n";
    for (size_t i = 0; i < t.rows.size(); ++i) {
      auto it = t.rows[i].cells.find(task);
      if (it == t.rows[i].cells.end()) continue;
      char b[256];
      std::snprintf(b, sizeof b, "%s %.6g %.6g %d %ld\n", gp_dq(t.rows[i].label()).c_str(), it->second.peak_train_mib,
                    it->second.acc.mean, pt_of(i), rgb_int(color_of(i)));
      dat += b;
      xs.push_back(it->second.peak_train_mib);
    }
    dat += "\n\n";
  }
  write_text(c.dir / "acc_vs_memory_per_task.dat", dat);
  bool log = false;
  std::string xa = x_axis(xs, &log);
  std::string body = c.multiplot("Accuracy vs peak training memory, per task");
  body += "set grid\nunset key\nset xlabel 'Peak training memory (MiB)" + std::string(log ? ", log scale" : "") +
          "'\nset ylabel 'Top-1 test accuracy (%)'\nset offsets 0, 0, graph 0.12, graph 0.12\n" + xa;
  for (size_t k = 0; k < c.panel_tasks.size(); ++k)
    body += "set title " + gp_sq(c.panel_tasks[k]) + "\nplot 'acc_vs_memory_per_task.dat' index " + std::to_string(k) +
            " using 2:3:4:5 with points pt variable ps 1.5 lc rgb variable notitle\n";
  body += key_panel(t, "points") + "unset multiplot\n";
  write_text(c.dir / "acc_vs_memory_per_task.gp", two_terminals("acc_vs_memory_per_task", c.mw, c.mh, body));
  return "acc_vs_memory_per_task";
}

// 3. Accuracy vs trainable parameters (+ published points when the reference is shown).
std::string plot_acc_vs_params(const PlotContext& c) {
  const Table& t = c.t;
  std::string dat = "# label trainable_params_m mean_accuracy (one block per row)\n";
  std::vector<double> xs;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    char b[256];
    std::snprintf(b, sizeof b, "%s %.6g %.6g\n\n\n", gp_dq(c.labels[i]).c_str(), t.rows[i].params_m, t.rows[i].mean);
    dat += b;
    xs.push_back(t.rows[i].params_m);
  }
  write_text(c.dir / "acc_vs_params.dat", dat);
  std::string ref_dat;
  for (auto& rl : t.ref_lines)
    if (std::isfinite(rl.ref.params_m) && std::isfinite(rl.mean) && rl.ref.params_m > 0) {
      char b[256];
      std::snprintf(b, sizeof b, "%s %.6g %.6g\n", gp_dq(rl.ref.label()).c_str(), rl.ref.params_m, rl.mean);
      ref_dat += b;
      xs.push_back(rl.ref.params_m);
    }
  bool log = false;
  std::string xa = x_axis(xs, &log);
  std::string head = "Accuracy vs trainable parameters (mean over tasks)";
  std::string ptitle = ref_dat.empty()
                           ? c.title(head, true)
                           : gp_lines({head, c.sub,
                                       "grey: published, " + t.reference.label +
                                           (c.any_incomplete ? "; " + std::string(PlotContext::kStarNote) : "")});
  std::string body =
      "set title " + ptitle + "\nset xlabel 'Trainable parameters (M)" + std::string(log ? ", log scale" : "") +
      "'\nset ylabel 'Top-1 test accuracy (%), mean over tasks'\n"
      "set grid\nset key outside right top box spacing 1.2 height 0.6\nset offsets 0, 0, graph 0.1, graph 0.1\n" +
      xa + row_series(t, "acc_vs_params.dat", c.labels);
  if (!ref_dat.empty()) {
    write_text(c.dir / "acc_vs_params_ref.dat", "# label params_m mean_accuracy (published)\n" + ref_dat);
    body += ", \\\n     'acc_vs_params_ref.dat' using 2:3 with points pt 6 ps 1.5 lc rgb '#999999' title " +
            gp_sq("published") +
            ", \\\n     'acc_vs_params_ref.dat' using 2:3:1 with labels offset char 1,-0.8 left font ',8' tc rgb "
            "'#777777' notitle";
  }
  body += "\n";
  write_text(c.dir / "acc_vs_params.gp", two_terminals("acc_vs_params", 1100, 650, body));
  return "acc_vs_params";
}

// 4. Test accuracy over evaluations, one line per run, one panel per task.
std::string plot_evals(const PlotContext& c) {
  const Table& t = c.t;
  std::string dat = "# epoch test_accuracy rgb (one block per task, one line segment per run)\n";
  for (auto& task : c.panel_tasks) {
    dat += "# " + task + "\n";
    for (size_t i = 0; i < t.rows.size(); ++i) {
      auto it = t.rows[i].cells.find(task);
      if (it == t.rows[i].cells.end()) continue;
      for (size_t ri : it->second.runs) {
        const Run& run = t.records.runs[ri];
        dat += "# " + t.rows[i].label() + " seed " + std::to_string(run.seed) + " (" + run.src.where() + ")\n";
        for (auto& [ep, acc] : run.evals) {
          char b[128];
          std::snprintf(b, sizeof b, "%.6g %.6g %ld\n", ep, acc, rgb_int(color_of(i)));
          dat += b;
        }
        dat += "\n";
      }
    }
    dat += "\n";
  }
  write_text(c.dir / "evals.dat", dat);
  std::string body = c.multiplot("Test accuracy over evaluations, one line per run (seed)");
  body +=
      "set grid\nunset key\nset xlabel 'Epoch'\nset ylabel 'Top-1 test accuracy (%)'\n"
      "set offsets graph 0.03, graph 0.03, graph 0.08, graph 0.08\n";
  for (size_t k = 0; k < c.panel_tasks.size(); ++k)
    body += "set title " + gp_sq(c.panel_tasks[k]) + "\nplot 'evals.dat' index " + std::to_string(k) +
            " using 1:2:3 with linespoints pt 7 ps 0.6 lw 1.5 lc rgb variable notitle\n";
  body += key_panel(t, "linespoints") + "unset multiplot\n";
  write_text(c.dir / "evals.gp", two_terminals("evals", c.mw, c.mh, body));
  return "evals";
}

// Runs gnuplot on each script in dir; returns the images written (plots/NAME.png, .svg) and
// adds a warning per failure (or one when gnuplot is missing).
std::vector<std::string> render_plots(const fs::path& dir, const std::vector<std::string>& scripts,
                                      std::vector<std::string>& warnings) {
  std::vector<std::string> images;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    warnings.push_back("gnuplot not found: plot scripts and data written to " + dir.string() +
                       " but not rendered (install gnuplot-nox)");
    return images;
  }
  for (auto& s : scripts) {
    fs::path log = dir / (s + ".log");
    std::string cmd =
        "cd " + sh_sq(dir.string()) + " && gnuplot " + sh_sq(s + ".gp") + " > " + sh_sq(s + ".log") + " 2>&1";
    int rc = std::system(cmd.c_str());
    std::error_code ec;
    bool ok = rc == 0 && fs::exists(dir / (s + ".png"), ec) && fs::exists(dir / (s + ".svg"), ec);
    if (!ok) {
      std::ifstream is(log);
      std::stringstream ss;
      ss << is.rdbuf();
      std::string text = ss.str();
      if (text.size() > 400) text = "…" + text.substr(text.size() - 400);
      warnings.push_back("gnuplot failed on plots/" + s + ".gp (exit " + std::to_string(rc) + "): " + text);
      continue;
    }
    fs::remove(log, ec);
    images.push_back("plots/" + s + ".png");
    images.push_back("plots/" + s + ".svg");
  }
  return images;
}

}  // namespace

std::vector<std::string> write_plots(Table& t, const std::string& out_dir) {
  fs::path dir = fs::path(out_dir) / "plots";
  fs::create_directories(dir);
  const PlotContext c(t, dir);
  std::vector<std::string> scripts = {plot_acc_vs_memory(c), plot_acc_vs_memory_per_task(c), plot_acc_vs_params(c),
                                      plot_evals(c)};
  return render_plots(dir, scripts, t.warnings);
}

}  // namespace petl::report

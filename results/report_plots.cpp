// `petl report`, plots: gnuplot scripts + data under <out>/plots (accuracy vs peak training
// memory, per task, vs trainable parameters, test accuracy over evaluations, and the val_select
// section's selection inflation), rendered to PNG and
// SVG when gnuplot is installed. Each plot is one function; write_plots writes them, the key table
// (plots/key.csv: one line per series) and renders. Every figure is laid out by Frame: the title
// wrapped to the figure's width on top, the panels, and the key in columns in a strip below them
// (never over a plot or off the edge); series are named by their rows' short labels.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/text.h"
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
// A shell single-quoted word.
std::string sh_sq(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

// 20 colours (tab10, then ten darker ones) × 6 filled point types: every row up to 60 has its own pair.
const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                               "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#e6550d", "#637939", "#843c39",
                               "#7b4173", "#3182bd", "#8c6d31", "#31a354", "#756bb1", "#636363"};
const int kPointTypes[] = {7, 5, 9, 13, 11, 15};
std::string color_of(size_t i) { return kColors[i % 20]; }
int pt_of(size_t i) { return kPointTypes[i % 6]; }
long rgb_int(const std::string& hex) { return std::strtol(hex.c_str() + 1, nullptr, 16); }

// Sizes in pixels. A character of the 11 pt font is about 7.4 px wide on average (pngcairo, DejaVu
// Sans): kCharPx over-estimates it so that wrapped titles and key columns always fit.
constexpr double kCharPx = 8.0;
// A digit is wider than the average character: 0.636 em of the 14.7 px (11 pt at 96 dpi) font.
constexpr double kDigitPx = 9.6;
constexpr int kTitleLinePx = 19, kKeyRowPx = 21;
constexpr int kSeriesWithPointLabels = 20;  // above this many rows, points carry no text label

// Words of `text` (split after "; " and at spaces) into lines of at most max_chars characters.
std::vector<std::string> wrap(const std::string& text, size_t max_chars) {
  std::vector<std::string> lines;
  std::string line, word;
  auto flush_word = [&] {
    if (word.empty()) return;
    if (!line.empty() && utf8_len(line) + 1 + utf8_len(word) > max_chars) {
      lines.push_back(line);
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    word.clear();
  };
  for (char ch : text) {
    if (ch == ' ')
      flush_word();
    else
      word += ch;
  }
  flush_word();
  if (!line.empty()) lines.push_back(line);
  return lines;
}

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

// A tick label as gnuplot prints it by default (%g of the tick value).
std::string tick_label(double v) {
  char b[48];
  std::snprintf(b, sizeof b, "%g", std::fabs(v) < 1e-12 ? 0.0 : v);
  return b;
}

// The step of linear x tics over [a, b] whose labels fit plot_px side by side: the smallest of
// 1, 2, 5 × 10^k that gives at most 11 tics and lets every label, with a digit and a half of
// space, fit its share of the width (gnuplot's own choice runs "1000120014001600" together in a
// 420 px panel).
double tick_step(double a, double b, double plot_px) {
  constexpr int kMaxTics = 11;
  const double span = b - a;
  if (!(span > 0)) return 0;
  double step = std::pow(10.0, std::floor(std::log10(span / 20)));
  for (int k = 0; k < 60; ++k, step *= (k % 3 == 1 ? 2.0 : k % 3 == 2 ? 2.5 : 2.0)) {
    size_t chars = 0;
    int n = 0;
    for (double v = std::ceil(a / step) * step; v <= b + step * 1e-9; v += step, ++n)
      chars = std::max(chars, tick_label(std::round(v / step) * step).size());
    if (n <= kMaxTics && double(n) * (double(chars) + 1.5) * kDigitPx <= plot_px) return step;
  }
  return span;
}

// The x axis of a plot (every panel of a multiplot shares it): log scale when the values span at
// least 20×, and a range with margins so no point sits on the border; tics far enough apart that
// their labels fit plot_px (the width of the plot area) side by side.
std::string x_axis(const std::vector<double>& xs, double plot_px, bool* log_out = nullptr) {
  bool log = use_log(xs);
  if (log_out) *log_out = log;
  if (xs.empty()) return "";
  double lo = *std::min_element(xs.begin(), xs.end()), hi = *std::max_element(xs.begin(), xs.end());
  char b[200];
  if (log) {
    // One tic per decade, or per two or three decades where the labels would not fit.
    const double a = lo / 1.6, z = hi * 1.6;
    const double decades = std::log10(z) - std::log10(a);
    const double chars = double(std::max(tick_label(a).size(), tick_label(z).size())) + 1.5;
    int every = 1;
    while (every < 4 && (decades / every + 1) * chars * kDigitPx > plot_px) ++every;
    std::snprintf(b, sizeof b, "set logscale x\nset xrange [%.6g:%.6g]\n%s", a, z,
                  every > 1 ? ("set xtics " + tick_label(std::pow(10.0, every)) + "\n").c_str() : "");
  } else {
    // 12 % of the span, but at least 5 % of the value: a span of a few thousandths (one method's
    // peaks over tasks) would otherwise get ticks every 0.001 MiB, their labels running together.
    double pad = std::max((hi - lo) * 0.12, std::max(std::fabs(hi) * 0.05, 1e-9));
    if (hi == lo && hi == 0) pad = 1.0;
    double a = lo - pad;
    if (lo >= 0 && a < 0) a = 0;
    std::snprintf(b, sizeof b, "set xrange [%.6g:%.6g]\nset xtics %.6g\n", a, hi + pad,
                  tick_step(a, hi + pad, plot_px));
  }
  return b;
}

// The epoch axis of the evaluations plot: a margin of 5 % of the span (at least half an epoch) on
// each side, and whole-epoch tics far enough apart that their labels fit plot_px.
std::string epoch_axis(const std::vector<double>& epochs, double plot_px) {
  if (epochs.empty()) return "";
  const double lo = *std::min_element(epochs.begin(), epochs.end()),
               hi = *std::max_element(epochs.begin(), epochs.end());
  const double pad = std::max((hi - lo) * 0.05, 0.5);
  char b[160];
  std::snprintf(b, sizeof b, "set xrange [%.6g:%.6g]\nset xtics %.6g\n", lo - pad, hi + pad,
                std::max(1.0, tick_step(lo - pad, hi + pad, plot_px)));
  return b;
}

// One entry of a plot's key: its label and how its sample is drawn.
struct KeyEntry {
  std::string label, style;  // style: "points pt 7 ps 1.5 lc rgb '#1f77b4'", "lines dt 2 lw 2 lc rgb '#404040'"
};

// The figure's frame: the title on top (wrapped to the width), a grid of panels, and the key in a
// strip below them, laid out in columns that fit the width. Every size is computed here, so a
// figure fits its frame at any number of rows and any label length.
struct Frame {
  int width = 1000, panel_w = 1000, panel_h = 560, cols = 1, rows = 1;
  int title_h = 0, key_h = 0, key_cols = 1, height = 0;
  std::vector<std::string> title;

  Frame(const std::vector<std::string>& title_parts, int panels, int pw, int ph, const std::vector<KeyEntry>& key)
      : panel_w(pw), panel_h(ph) {
    cols = panels <= 1 ? 1 : panels <= 4 ? 2 : panels <= 9 ? 3 : panels <= 16 ? 4 : 5;
    rows = (std::max(panels, 1) + cols - 1) / cols;
    width = std::max(cols * panel_w, 900);
    panel_w = width / cols;  // a single narrow panel widens to the figure
    const size_t max_chars = size_t((width - 40) / kCharPx);
    for (auto& part : title_parts)
      for (auto& l : wrap(part, max_chars)) title.push_back(l);
    title_h = int(title.size()) * kTitleLinePx + 16;
    size_t longest = 1;
    for (auto& e : key) longest = std::max(longest, utf8_len(e.label));
    const double entry_w = double(longest) * kCharPx + 80;  // sample, gap, text, gap
    key_cols = std::max(1, std::min(int(key.size()), int((width - 40) / entry_w)));
    const int key_rows = (int(key.size()) + key_cols - 1) / key_cols;
    key_h = key.empty() ? 0 : key_rows * kKeyRowPx + 24;
    height = title_h + rows * panel_h + key_h;
  }
  // The width of a panel's plot area (the panel less the y tic labels, the y label and the right margin).
  double plot_px() const { return panel_w - 130.0; }
  // "set origin/size" of panel k (row-major from the top left) in screen fractions.
  std::string place(size_t k) const {
    const int r = int(k) / cols, c = int(k) % cols;
    char b[160];
    std::snprintf(b, sizeof b, "set origin %.6f,%.6f\nset size %.6f,%.6f\n", double(c * panel_w) / width,
                  double(key_h + (rows - 1 - r) * panel_h) / height, double(panel_w) / width, double(panel_h) / height);
    return b;
  }
  // Opens the figure: its title, lines joined by gnuplot's "\n" in one double-quoted string.
  std::string begin() const {
    std::string o;
    for (size_t i = 0; i < title.size(); ++i) {
      const std::string q = gp_dq(title[i]);
      o += (i ? "\\n" : "") + q.substr(1, q.size() - 2);
    }
    // A right margin of 5 characters: room for half of the last x tick label ("0.00105").
    return "set multiplot title \"" + o + "\"\nset rmargin 5\n";
  }
  // The key strip: no axes, one sample per entry (points drawn off-range, so only the key shows them).
  std::string key_strip(const std::vector<KeyEntry>& key) const {
    if (key.empty()) return "unset multiplot\n";
    char b[200];
    std::snprintf(b, sizeof b, "set origin 0,0\nset size 1,%.6f\n", double(key_h) / height);
    std::string s = std::string(b) +
                    "unset border\nunset tics\nunset xlabel\nunset ylabel\nunset grid\nunset logscale\nunset title\n"
                    "unset label\nset offsets 0,0,0,0\nset lmargin 0\nset rmargin 0\nset tmargin 0\nset bmargin 0\n"
                    "set xrange [0:1]\nset yrange [0:1]\nset key inside center center horizontal Left reverse "
                    "noautotitle nobox samplen 3 spacing 1.0 width 2 maxcols " +
                    std::to_string(key_cols) + "\nplot ";
    for (size_t i = 0; i < key.size(); ++i)
      s += std::string(i ? ", \\\n     " : "") + "-1 with " + key[i].style + " title " + gp_sq(key[i].label);
    return s + "\nunset multiplot\n";
  }
};

// What every plot shares: the output folder, the subtitle, the rows' short labels, styles and keys.
struct PlotContext {
  const Table& t;
  fs::path dir;
  std::string sub;                       // protocol, backbone, batch size
  bool any_incomplete = false;           // a row's mean is over the tasks present only
  std::vector<std::string> labels;       // short labels, "*" for incomplete rows
  std::vector<std::string> panel_tasks;  // tasks with at least one cell

  PlotContext(const Table& table, const fs::path& d) : t(table), dir(d), sub(plot_subtitle(table)) {
    for (auto& r : t.rows) any_incomplete |= !r.complete;
    for (auto& r : t.rows) labels.push_back(r.short_label + (r.complete ? "" : "*"));
    for (auto& task : t.tasks)
      for (auto& r : t.rows)
        if (r.cells.count(task)) {
          panel_tasks.push_back(task);
          break;
        }
  }
  static constexpr const char* kStarNote = "* mean over the tasks present only";
  std::vector<std::string> title(const std::string& head, bool star) const {
    std::vector<std::string> l{head, sub};
    if (star && any_incomplete) l.push_back(kStarNote);
    return l;
  }
  std::string point_style(size_t i, const std::string& with = "points", double ps = 1.5) const {
    return with + " pt " + std::to_string(pt_of(i)) + " ps " + fixed(ps, 1) + " lw 2 lc rgb '" + color_of(i) + "'";
  }
  std::vector<KeyEntry> row_key(const std::string& with = "points") const {
    std::vector<KeyEntry> k;
    for (size_t i = 0; i < t.rows.size(); ++i) k.push_back({labels[i], point_style(i, with)});
    return k;
  }
  // plots/key.csv: one line per series (row) with its short label, full setting and style.
  void write_key_csv() const {
    std::string csv = "label,method,setting,row,complete,color,point_type,mean,peak_train_mib,trainable_params\n";
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const Row& r = t.rows[i];
      std::vector<std::string> f{r.short_label,
                                 r.method,
                                 r.setting,
                                 r.label(),
                                 r.complete ? "1" : "0",
                                 color_of(i),
                                 std::to_string(pt_of(i)),
                                 std::isfinite(r.mean) ? fixed(r.mean, 4) : "",
                                 fixed(r.peak_train_mib, 3),
                                 fixed(r.params, 0)};
      for (auto& x : f) x = csv_field(x);
      csv += join(f, ",") + "\n";
    }
    write_text(dir / "key.csv", csv);
  }
};

// One series per row (its own colour and point type), and its short label beside the point
// (alternately above and below so rows at the same spot stay readable) unless there are many rows.
std::string row_series(const PlotContext& c, const std::string& dat) {
  const Table& t = c.t;
  std::string s = "plot ";
  for (size_t i = 0; i < t.rows.size(); ++i)
    s += std::string(i ? ", \\\n     " : "") + gp_sq(dat) + " index " + std::to_string(i) +
         " using 2:3 with points pt " + std::to_string(pt_of(i)) + " ps 2 lc rgb '" + color_of(i) + "' notitle";
  if (t.rows.size() <= size_t(kSeriesWithPointLabels))
    for (size_t i = 0; i < t.rows.size(); ++i)
      s += ", \\\n     " + gp_sq(dat) + " index " + std::to_string(i) + " using 2:3:1 with labels offset char 1.2," +
           (i % 2 ? "-0.9" : "0.9") + " left font ',9' tc rgb '" + color_of(i) + "' notitle";
  return s;
}

// 1. Accuracy vs peak training memory, mean over each row's tasks.
std::string plot_acc_vs_memory(const PlotContext& c) {
  const Table& t = c.t;
  std::string dat = "# label peak_train_mib mean_accuracy n_tasks (one block per row; labels: plots/key.csv)\n";
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
    std::snprintf(b, sizeof b, "%.6g %.6g %s\n", t.rows[i].peak_train_mib, t.rows[i].mean, gp_dq(c.labels[i]).c_str());
    front += b;
  }
  write_text(c.dir / "acc_vs_memory_pareto.dat", front);
  auto key = c.row_key();
  if (!t.pareto.empty()) key.push_back({"Pareto front", "lines dt 2 lw 2 lc rgb '#404040'"});
  const Frame f(c.title("Accuracy vs peak training memory (mean over tasks)", true), 1, 1000, 560, key);
  bool log = false;
  std::string xa = x_axis(xs, f.plot_px(), &log);
  std::string body = f.begin() + f.place(0) + "set xlabel 'Peak training memory (MiB)" + (log ? ", log scale" : "") +
                     "'\nset ylabel 'Top-1 test accuracy (%), mean over tasks'\n"
                     "set grid\nunset key\nset offsets 0, 0, graph 0.1, graph 0.1\n" +
                     xa + row_series(c, "acc_vs_memory.dat") +
                     (t.pareto.empty() ? std::string()
                                       : ", \\\n     'acc_vs_memory_pareto.dat' using 1:2 with steps dt 2 lw 2 lc rgb "
                                         "'#404040' notitle") +
                     "\n" + f.key_strip(key);
  write_text(c.dir / "acc_vs_memory.gp", two_terminals("acc_vs_memory", f.width, f.height, body));
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
      std::snprintf(b, sizeof b, "%s %.6g %.6g %d %ld\n", gp_dq(t.rows[i].short_label).c_str(),
                    it->second.peak_train_mib, it->second.acc.mean, pt_of(i), rgb_int(color_of(i)));
      dat += b;
      xs.push_back(it->second.peak_train_mib);
    }
    dat += "\n\n";
  }
  write_text(c.dir / "acc_vs_memory_per_task.dat", dat);
  const auto key = c.row_key();
  const Frame f(c.title("Accuracy vs peak training memory, per task", false), int(c.panel_tasks.size()), 420, 340, key);
  bool log = false;
  std::string xa = x_axis(xs, f.plot_px(), &log);
  std::string body = f.begin() + "set grid\nunset key\nset xlabel 'Peak training memory (MiB)" +
                     std::string(log ? ", log scale" : "") +
                     "'\nset ylabel 'Top-1 test accuracy (%)'\nset offsets 0, 0, graph 0.12, graph 0.12\n" + xa;
  for (size_t k = 0; k < c.panel_tasks.size(); ++k)
    body += f.place(k) + "set title " + gp_sq(c.panel_tasks[k]) + "\nplot 'acc_vs_memory_per_task.dat' index " +
            std::to_string(k) + " using 2:3:4:5 with points pt variable ps 1.5 lc rgb variable notitle\n";
  body += f.key_strip(key);
  write_text(c.dir / "acc_vs_memory_per_task.gp", two_terminals("acc_vs_memory_per_task", f.width, f.height, body));
  return "acc_vs_memory_per_task";
}

// 3. Accuracy vs trainable parameters (+ published points when the reference is shown).
std::string plot_acc_vs_params(const PlotContext& c) {
  const Table& t = c.t;
  // The axis in thousands or millions, whichever keeps its numbers readable (0.776 K, not 0.000776 M).
  double most = 0;
  for (auto& r : t.rows) most = std::max(most, r.params);
  for (auto& rl : t.ref_lines)
    if (std::isfinite(rl.ref.params_m)) most = std::max(most, rl.ref.params_m * 1e6);
  const bool millions = most >= 1e6;
  const double scale = millions ? 1e6 : 1e3;
  const std::string unit = millions ? "M" : "K";
  std::string dat = "# label trainable_params_" + unit +
                    " mean_accuracy (one block per row; labels: plots/key.csv; parameters in units of " +
                    (millions ? "10^6" : "10^3") + ")\n";
  std::vector<double> xs;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    char b[256];
    std::snprintf(b, sizeof b, "%s %.6g %.6g\n\n\n", gp_dq(c.labels[i]).c_str(), t.rows[i].params / scale,
                  t.rows[i].mean);
    dat += b;
    xs.push_back(t.rows[i].params / scale);
  }
  write_text(c.dir / "acc_vs_params.dat", dat);
  std::string ref_dat;
  for (auto& rl : t.ref_lines)
    if (std::isfinite(rl.ref.params_m) && std::isfinite(rl.mean) && rl.ref.params_m > 0) {
      char b[256];
      std::snprintf(b, sizeof b, "%s %.6g %.6g\n", gp_dq(rl.ref.label()).c_str(), rl.ref.params_m * 1e6 / scale,
                    rl.mean);
      ref_dat += b;
      xs.push_back(rl.ref.params_m * 1e6 / scale);
    }
  auto key = c.row_key();
  std::vector<std::string> title = c.title("Accuracy vs trainable parameters (mean over tasks)", true);
  if (!ref_dat.empty()) {
    key.push_back({"published", "points pt 6 ps 1.5 lc rgb '#999999'"});
    title.push_back("grey: published, " + t.reference.label);
  }
  const Frame f(title, 1, 1000, 560, key);
  bool log = false;
  std::string xa = x_axis(xs, f.plot_px(), &log);
  std::string body = f.begin() + f.place(0) + "set xlabel 'Trainable parameters (" + unit + ")" +
                     std::string(log ? ", log scale" : "") +
                     "'\nset ylabel 'Top-1 test accuracy (%), mean over tasks'\n"
                     "set grid\nunset key\nset offsets 0, 0, graph 0.1, graph 0.1\n" +
                     xa + row_series(c, "acc_vs_params.dat");
  if (!ref_dat.empty()) {
    write_text(c.dir / "acc_vs_params_ref.dat", "# label params_" + unit + " mean_accuracy (published)\n" + ref_dat);
    body +=
        ", \\\n     'acc_vs_params_ref.dat' using 2:3 with points pt 6 ps 1.5 lc rgb '#999999' notitle"
        ", \\\n     'acc_vs_params_ref.dat' using 2:3:1 with labels offset char 1,-0.8 left font ',8' tc rgb "
        "'#777777' notitle";
  }
  body += "\n" + f.key_strip(key);
  write_text(c.dir / "acc_vs_params.gp", two_terminals("acc_vs_params", f.width, f.height, body));
  return "acc_vs_params";
}

// 4. Test accuracy over evaluations, one line per run, one panel per task.
std::string plot_evals(const PlotContext& c) {
  const Table& t = c.t;
  std::string dat = "# epoch test_accuracy pointtype rgb (one block per task, one line segment per run)\n";
  std::vector<double> epochs;
  for (auto& task : c.panel_tasks) {
    dat += "# " + task + "\n";
    for (size_t i = 0; i < t.rows.size(); ++i) {
      auto it = t.rows[i].cells.find(task);
      if (it == t.rows[i].cells.end()) continue;
      for (size_t ri : it->second.runs) {
        const Run& run = t.records.runs[ri];
        dat += "# " + t.rows[i].label() + " seed " + std::to_string(run.seed) + " (" + run.src.where() + ")\n";
        for (auto& [ep, acc] : run.evals) {
          epochs.push_back(ep);
          char b[128];
          std::snprintf(b, sizeof b, "%.6g %.6g %d %ld\n", ep, acc, pt_of(i), rgb_int(color_of(i)));
          dat += b;
        }
        dat += "\n";
      }
    }
    dat += "\n";
  }
  write_text(c.dir / "evals.dat", dat);
  const auto key = c.row_key("linespoints");
  const Frame f(c.title("Test accuracy over evaluations, one line per run (seed)", false), int(c.panel_tasks.size()),
                420, 340, key);
  std::string body = f.begin() +
                     "set grid\nunset key\nset xlabel 'Epoch'\nset ylabel 'Top-1 test accuracy (%)'\n"
                     "set offsets 0, 0, graph 0.08, graph 0.08\n" +
                     epoch_axis(epochs, f.plot_px());
  for (size_t k = 0; k < c.panel_tasks.size(); ++k)
    body += f.place(k) + "set title " + gp_sq(c.panel_tasks[k]) + "\nplot 'evals.dat' index " + std::to_string(k) +
            " using 1:2:3:4 with linespoints pt variable ps 0.8 lw 1.5 lc rgb variable notitle\n";
  body += f.key_strip(key);
  write_text(c.dir / "evals.gp", two_terminals("evals", f.width, f.height, body));
  return "evals";
}

// 5. Selection inflation (the val_select section): per method a bar of its mean inflation
// best_of_10 − val_select over the tasks that have all three protocols, and a point per task that has
// best_of_10 and val_select (spread across the bar). "" (no plot) when no task has an inflation.
std::string plot_selection_inflation(const Table& t, const fs::path& dir) {
  const Selection& s = t.selection;
  std::string bars = "# x method mean_inflation label (one line per method; ? no mean)\n";
  std::string points = "# x task inflation (one line per method and task)\n";
  bool any = false;
  for (size_t i = 0; i < s.rows.size(); ++i) {
    const SelectionRow& r = s.rows[i];
    const std::string label = r.method + (r.complete ? "" : "*");
    char b[256];
    if (std::isfinite(r.mean_inflation))
      std::snprintf(b, sizeof b, "%zu %s %.6g %s\n", i, gp_dq(label).c_str(), r.mean_inflation,
                    gp_dq(signed_fixed(r.mean_inflation, 2)).c_str());
    else
      std::snprintf(b, sizeof b, "%zu %s ? \"\"\n", i, gp_dq(label).c_str());
    bars += b;
    std::vector<std::pair<std::string, double>> per_task;
    for (auto& task : s.tasks)
      if (auto it = r.cells.find(task); it != r.cells.end() && std::isfinite(it->second.inflation))
        per_task.emplace_back(task, it->second.inflation);
    for (size_t k = 0; k < per_task.size(); ++k) {
      const double x = double(i) + (per_task.size() > 1 ? -0.25 + 0.5 * double(k) / double(per_task.size() - 1) : 0);
      std::snprintf(b, sizeof b, "%.6g %s %.6g\n", x, gp_dq(per_task[k].first).c_str(), per_task[k].second);
      points += b;
      any = true;
    }
  }
  if (!any) return "";
  write_text(dir / "selection_inflation.dat", bars + "\n\n" + points);
  const std::vector<KeyEntry> key = {{"mean over the tasks with all three protocols",
                                      "boxes fs solid 0.4 lc rgb '"
                                      "#1f77b4'"},
                                     {"one task", "points pt 7 ps 1.2 lc rgb '#d62728'"}};
  std::vector<std::string> title = {
      "Selection inflation: best_of_10 (epoch selected on the test list) − val_select "
      "(settings and epoch selected on val200)",
      plot_subtitle("best_of_10 vs val_select", t.records.runs)};
  if (std::any_of(s.rows.begin(), s.rows.end(), [](const SelectionRow& r) { return !r.complete; }))
    title.push_back("* mean over the tasks that have all three protocols only");
  const Frame f(title, 1, std::max(1000, int(s.rows.size()) * 120), 560, key);
  char range[96];
  std::snprintf(range, sizeof range, "set xrange [-0.6:%.6g]\n", double(s.rows.size()) - 0.4);
  const std::string body = f.begin() + f.place(0) +
                           "set ylabel 'best_of_10 − val_select (accuracy points)'\nset xlabel 'Method'\n"
                           "set grid ytics\nunset key\nset datafile missing '?'\nset style fill solid 0.4 border -1\n"
                           "set boxwidth 0.7\nset xzeroaxis lt -1 lw 1\nset offsets 0, 0, graph 0.12, graph 0.12\n" +
                           std::string(range) +
                           "plot 'selection_inflation.dat' index 0 using 1:3:xtic(2) with boxes lc rgb '#1f77b4' "
                           "notitle, \\\n     '' index 0 using 1:3:4 with labels offset char 0,1 notitle, \\\n"
                           "     '' index 1 using 1:3 with points pt 7 ps 1.2 lc rgb '#d62728' notitle\n" +
                           f.key_strip(key);
  write_text(dir / "selection_inflation.gp", two_terminals("selection_inflation", f.width, f.height, body));
  return "selection_inflation";
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

// ------------------------------------------------------------------ few-shot: accuracy vs shots

struct ShotPoint {
  int shots = 0;
  double mean = 0, std = 0;  // std NaN where n < 2 (drawn without an error bar)
  int n = 0;
};
// One line of an accuracy-vs-shots plot: a row of the table (its colour and point type) and its points.
struct ShotSeries {
  size_t row = 0;
  std::vector<ShotPoint> points;
};

// A log-2 shots axis with a tic at each shot count of the table and half a doubling of margin.
std::string shots_axis(const std::vector<int>& shots) {
  std::vector<std::string> tics;
  for (int k : shots) tics.push_back("'" + std::to_string(k) + "' " + std::to_string(k));
  char b[96];
  std::snprintf(b, sizeof b, "set xrange [%.6g:%.6g]\n", shots.front() / 1.5, shots.back() * 1.5);
  return "set logscale x 2\n" + std::string(b) + "set xtics (" + join(tics, ", ") + ")\nunset mxtics\n";
}

// One figure: a line per series with ± std error bars, the key in the strip below. Returns the stem.
std::string plot_accuracy_vs_shots(const fs::path& dir, const std::string& stem, const std::vector<std::string>& title,
                                   const FewShotTable& t, const std::vector<ShotSeries>& series) {
  std::string dat = "# shots mean_accuracy std n (one block per series; std 0 where n < 2)\n";
  std::string plot = "plot ";
  std::vector<KeyEntry> key;
  for (size_t s = 0; s < series.size(); ++s) {
    const size_t i = series[s].row;
    dat += "# " + t.rows[i].row.label() + "\n";
    for (auto& p : series[s].points) {
      char b[128];
      std::snprintf(b, sizeof b, "%d %.6g %.6g %d\n", p.shots, p.mean, std::isfinite(p.std) ? p.std : 0.0, p.n);
      dat += b;
    }
    dat += "\n\n";
    const std::string style = "pt " + std::to_string(pt_of(i)) + " ps 1.5 lw 2 lc rgb '" + color_of(i) + "'";
    key.push_back({t.rows[i].row.short_label, "linespoints " + style});
    plot += std::string(s ? ", \\\n     " : "") + gp_sq(stem + ".dat") + " index " + std::to_string(s) +
            " using 1:2:3 with yerrorlines " + style + " notitle";
  }
  write_text(dir / (stem + ".dat"), dat);
  const Frame f(title, 1, 1000, 560, key);
  const std::string body = f.begin() + f.place(0) +
                           "set xlabel 'Training images per class (shots), log-2 scale'\n"
                           "set ylabel 'Top-1 test accuracy (%)'\nset grid\nunset key\n"
                           "set offsets 0, 0, graph 0.1, graph 0.1\n" +
                           shots_axis(t.shots) + plot + "\n" + f.key_strip(key);
  write_text(dir / (stem + ".gp"), two_terminals(stem, f.width, f.height, body));
  return stem;
}

// A dataset's series ("": the mean over the datasets, where a row has every dataset).
std::vector<ShotSeries> shot_series(const FewShotTable& t, const std::string& dataset) {
  std::vector<ShotSeries> out;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    ShotSeries s{i, {}};
    for (int k : t.shots) {
      if (dataset.empty()) {
        const FewShotMean& m = t.rows[i].means.at(k);
        if (std::isfinite(m.mean)) s.points.push_back({k, m.mean, m.spread.std, m.spread.n});
      } else if (const Cell* c = fewshot_cell(t.rows[i].row, dataset, k)) {
        s.points.push_back({k, c->acc.mean, c->acc.std, c->acc.n});
      }
    }
    if (!s.points.empty()) out.push_back(s);
  }
  return out;
}

}  // namespace

std::string internal::fewshot_plot_stem(const std::string& dataset) {
  if (dataset.empty()) return "fewshot_mean";
  std::string s = "fewshot_";
  for (unsigned char c : dataset) s += std::isalnum(c) || c == '-' || c == '_' ? char(c) : '_';
  return s;
}

std::vector<std::string> write_fewshot_plots(FewShotTable& t, const std::string& out_dir) {
  const fs::path dir = fs::path(out_dir) / "plots";
  fs::create_directories(dir);
  const std::string sub = plot_subtitle(t.protocol, t.records.runs);
  std::vector<std::string> scripts;
  for (auto& d : t.datasets) {
    const auto series = shot_series(t, d);
    if (!series.empty())
      scripts.push_back(plot_accuracy_vs_shots(dir, fewshot_plot_stem(d),
                                               {d + ": accuracy vs shots per class, mean ± std over split seeds", sub},
                                               t, series));
  }
  const auto means = shot_series(t, "");
  if (!means.empty())
    scripts.push_back(
        plot_accuracy_vs_shots(dir, fewshot_plot_stem(""),
                               {"Mean over the datasets (" + join(t.datasets, ", ") + "): accuracy vs shots per class",
                                sub, "no point where a row lacks a dataset at that shot count"},
                               t, means));
  return render_plots(dir, scripts, t.warnings);
}

std::vector<std::string> write_plots(Table& t, const std::string& out_dir) {
  fs::path dir = fs::path(out_dir) / "plots";
  fs::create_directories(dir);
  const PlotContext c(t, dir);
  c.write_key_csv();
  std::vector<std::string> scripts = {plot_acc_vs_memory(c), plot_acc_vs_memory_per_task(c), plot_acc_vs_params(c),
                                      plot_evals(c)};
  if (!t.selection.rows.empty())
    if (std::string stem = plot_selection_inflation(t, dir); !stem.empty()) scripts.push_back(stem);
  return render_plots(dir, scripts, t.warnings);
}

}  // namespace petl::report

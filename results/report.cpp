// `petl report` library: result records → validated runs → paper-style table (md / csv / tex),
// published reference rows and a Δ view, gnuplot plots. See report.h for the error/warning policy.
#include "results/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/paths.h"
#include "core/text.h"

namespace petl::report {
namespace fs = std::filesystem;

const char* const kDefaultReferenceLabel = "V-PETL Bench (NeurIPS 2024), ViT-B/16 IN-21k, best_of_10";

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kMissing = "–";
constexpr const char* kReferenceFileName = "vpetl_bench_vtab1k.csv";

// ------------------------------------------------------------------ small text helpers

// Fixed-point with `prec` decimals; never prints "-0.00".
std::string fixed(double v, int prec) {
  if (std::fabs(v) < 0.5 * std::pow(10.0, -prec)) v = 0.0;
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}
std::string signed_fixed(double v, int prec) {
  std::string s = fixed(v, prec);
  return s[0] == '-' ? s : "+" + s;
}
// "68.90" → "68.9", "70.00" → "70.0", "65.57" stays: published numbers as they were written.
std::string short_fixed(double v) {
  std::string s = fixed(v, 2);
  if (s.size() > 1 && s.back() == '0') s.pop_back();
  return s;
}
// Trainable parameters in millions: 2 decimals from 0.1M up, else 3 significant digits.
std::string params_text(double m) {
  if (!std::isfinite(m)) return kMissing;
  if (m >= 0.1 || m == 0) return fixed(m, 2);
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", m);
  return b;
}
std::string num_or_blank(double v, int prec) { return std::isfinite(v) ? fixed(v, prec) : ""; }

size_t utf8_len(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The first line of a message, cut to max_len characters.
std::string first_line_cut(const std::string& s, size_t max_len = 200) {
  std::string l = first_line(s);
  if (utf8_len(l) > max_len) l = l.substr(0, max_len) + "…";
  return l;
}

bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end && *end == 0;
}


std::string tex_escape(const std::string& s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    switch (c) {
      case '_': case '%': case '&': case '#': case '$': case '{': case '}': o += '\\'; o += c; break;
      case '~': o += "\\textasciitilde{}"; break;
      case '^': o += "\\textasciicircum{}"; break;
      case '\\': o += "\\textbackslash{}"; break;
      case '<': o += "$<$"; break;
      case '>': o += "$>$"; break;
      default: o += c;
    }
  }
  // UTF-8 symbols used in captions and cells.
  auto rep = [&](const std::string& from, const std::string& to) {
    for (size_t p = o.find(from); p != std::string::npos; p = o.find(from, p + to.size())) o.replace(p, from.size(), to);
  };
  rep("±", "$\\pm$");
  rep("–", "--");
  rep("−", "$-$");
  rep("Δ", "$\\Delta$");
  rep("·", "$\\cdot$");
  rep("…", "\\dots{}");
  return o;
}

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

// Dotted lookup ("memory.peak_train_mib"); nullptr when any level is missing.
const json* find_path(const json& j, const std::string& dotted) {
  const json* cur = &j;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    std::string key = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}
std::string as_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }
std::string string_or(const json& j, const std::string& path, const std::string& def) {
  const json* v = find_path(j, path);
  return v && !v->is_null() ? as_text(*v) : def;
}

// Collects user errors and throws them together (the first 20), so one run shows every problem.
struct Problems {
  std::vector<std::string> items;
  void add(const std::string& s) { items.push_back(s); }
  void throw_if_any(const std::string& head) const {
    if (items.empty()) return;
    std::string msg = head;
    for (size_t i = 0; i < items.size() && i < 20; ++i) msg += "\n  " + items[i];
    if (items.size() > 20) msg += "\n  ... and " + std::to_string(items.size() - 20) + " more";
    throw Error(msg);
  }
};

std::string sources_text(const std::vector<Source>& s, size_t max_shown = 3) {
  std::vector<std::string> w;
  for (size_t i = 0; i < s.size() && i < max_shown; ++i) w.push_back(s[i].where());
  std::string out = join(w, ", ");
  if (s.size() > max_shown) out += ", … " + std::to_string(s.size() - max_shown) + " more";
  return out;
}

// Numeric-aware comparison of setting values ("0.0005" < "0.001", "2" < "10").
bool value_less(const std::string& a, const std::string& b) {
  double x, y;
  if (parse_number(a, x) && parse_number(b, y) && x != y) return x < y;
  return a < b;
}

const std::vector<std::string>& group_names() {
  static const std::vector<std::string> g = {"Natural", "Specialized", "Structured"};
  return g;
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

}  // namespace

// ------------------------------------------------------------------ tasks, reference location, stats

const std::vector<std::string>& vtab_tasks() {
  static const std::vector<std::string> t = {
      "cifar",          "caltech101",    "dtd",          "oxford_flowers102", "oxford_iiit_pet",
      "svhn",           "sun397",        "patch_camelyon", "eurosat",         "resisc45",
      "diabetic_retinopathy", "clevr_count", "clevr_dist", "dmlab",           "kitti",
      "dsprites_loc",   "dsprites_ori",  "smallnorb_azi", "smallnorb_ele"};
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

// ------------------------------------------------------------------ loading and validating records

Records load_records(const std::vector<std::string>& inputs, const std::string& protocol) {
  PETL_CHECK(!inputs.empty(), "no result files or directories given");
  Records out;
  std::set<std::string> seen;
  for (auto& in : inputs) {
    std::error_code ec;
    fs::path p(in);
    PETL_CHECK(fs::exists(p, ec), "result path '", in, "' does not exist");
    std::vector<std::string> files;
    if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) break;
        if (it->is_regular_file(ec) && it->path().extension() == ".jsonl") files.push_back(it->path().string());
      }
      std::sort(files.begin(), files.end());
      PETL_CHECK(!files.empty(), "directory '", in, "' holds no *.jsonl result files");
    } else {
      files.push_back(p.string());
    }
    for (auto& f : files) {
      auto canon = fs::weakly_canonical(f, ec);
      if (!seen.insert(ec ? f : canon.string()).second) continue;  // the same file named twice
      out.files.push_back(f);
    }
  }

  Problems problems;
  for (auto& f : out.files) {
    std::ifstream is(f);
    PETL_CHECK(is, "cannot open result file '", f, "'");
    std::string line;
    int lineno = 0;
    while (std::getline(is, line)) {
      ++lineno;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      Source src{f, lineno};
      const std::string where = src.where();
      json j;
      try {
        j = json::parse(line);
      } catch (const json::parse_error& e) {
        std::string m = e.what();
        if (auto b = m.find("] "); m.rfind("[json.exception", 0) == 0 && b != std::string::npos) m = m.substr(b + 2);
        problems.add(where + ": invalid JSON: " + m);
        continue;
      }
      if (!j.is_object()) {
        problems.add(where + ": not a JSON object");
        continue;
      }
      auto sit = j.find("schema");
      if (sit == j.end() || !sit->is_string()) {
        problems.add(where + ": no \"schema\" string — not a petl result record");
        continue;
      }
      if (*sit != "petl.result") {
        out.other_schemas[sit->get<std::string>()]++;
        continue;
      }
      auto vit = j.find("schema_version");
      if (vit == j.end() || !vit->is_number_integer()) {
        problems.add(where + ": petl.result record without an integer \"schema_version\"");
        continue;
      }
      if (vit->get<int64_t>() != 1) {
        problems.add(where + ": schema_version " + vit->dump() +
                     " is not supported (this petl reads petl.result schema_version 1)");
        continue;
      }
      auto st = j.find("status");
      if (st == j.end() || !st->is_string()) {
        problems.add(where + ": missing field(s): status");
        continue;
      }
      const std::string status = *st;
      if (status == "failed" || status == "dry_run") {
        Skipped s;
        s.src = src;
        s.status = status;
        s.method = string_or(j, "method", "?");
        s.task = string_or(j, "task", "?");
        if (auto sd = find_path(j, "seed"); sd && sd->is_number_integer()) s.seed = sd->get<int>();
        s.message = string_or(j, "error", "");
        out.skipped.push_back(s);
        continue;
      }
      if (status != "ok") {
        problems.add(where + ": unknown status '" + status + "' (expected ok, failed or dry_run)");
        continue;
      }

      // Required fields of an ok record, with their types.
      enum Kind { kStr, kNum, kInt, kObj, kArr };
      std::vector<std::string> missing;
      auto need = [&](const std::string& key, Kind kind) -> const json* {
        const json* v = find_path(j, key);
        bool ok = v && (kind == kStr   ? v->is_string()
                        : kind == kNum ? v->is_number()
                        : kind == kInt ? v->is_number_integer()
                        : kind == kObj ? v->is_object()
                                       : v->is_array());
        if (!ok) {
          static const char* names[] = {"a string", "a number", "an integer", "an object", "an array"};
          missing.push_back(v ? key + " (not " + names[kind] + ")" : key);
          return nullptr;
        }
        return v;
      };
      auto method = need("method", kStr);
      auto task = need("task", kStr);
      auto seed = need("seed", kInt);
      auto abp = need("accuracy_by_protocol", kObj);
      auto params = need("trainable_params", kNum);
      auto mem = need("memory.peak_train_mib", kNum);
      auto sha = need("backbone.sha256", kStr);
      auto recipe = need("settings.recipe", kObj);
      auto msettings = need("settings.method", kObj);
      auto evals = need("evals", kArr);
      const json* own_protocol = protocol.empty() ? need("protocol", kStr) : nullptr;
      const json* acc = protocol.empty() ? need("accuracy", kNum) : nullptr;
      if (!missing.empty()) {
        problems.add(where + ": missing field(s): " + join(missing, ", "));
        continue;
      }
      (void)method, (void)task, (void)seed, (void)params, (void)mem, (void)sha, (void)recipe, (void)msettings;
      Run r;
      r.src = src;
      r.method = j["method"];
      r.task = j["task"];
      r.seed = j["seed"];
      r.trainable_params = j["trainable_params"].get<double>();
      r.peak_train_mib = j["memory"]["peak_train_mib"].get<double>();
      if (protocol.empty()) {
        r.protocol = own_protocol->get<std::string>();
        r.accuracy = acc->get<double>();
      } else {
        auto it = abp->find(protocol);
        if (it == abp->end() || !it->is_number()) {
          std::vector<std::string> have;
          for (auto& [k, v] : abp->items())
            if (v.is_number()) have.push_back(k);
          problems.add(where + ": accuracy_by_protocol has no number for protocol '" + protocol + "' (it has: " +
                       join(have, ", ") + ")");
          continue;
        }
        r.protocol = protocol;
        r.accuracy = it->get<double>();
      }
      bool evals_ok = true;
      for (size_t i = 0; i < evals->size(); ++i) {
        const json& e = (*evals)[i];
        if (!e.is_object() || !e.contains("epoch") || !e["epoch"].is_number() || !e.contains("test_acc") ||
            !e["test_acc"].is_number()) {
          problems.add(where + ": evals[" + std::to_string(i) + "] lacks a numeric epoch or test_acc");
          evals_ok = false;
          break;
        }
        r.evals.emplace_back(e["epoch"].get<double>(), e["test_acc"].get<double>());
      }
      if (!evals_ok) continue;
      const std::string arch = string_or(j, "backbone.arch", "?");
      r.backbone_sha256 = j["backbone"]["sha256"];
      r.backbone = arch + " (sha256 " + r.backbone_sha256.substr(0, 12) + ")";
      std::string norm = string_or(j, "data.normalisation", string_or(j, "settings.recipe.normalisation", "?"));
      std::string img = string_or(j, "data.image_size", string_or(j, "memory.image_size", ""));
      r.preprocessing = norm + (img.empty() ? "" : ", " + img + " px");
      for (auto& [k, v] : j["settings"]["method"].items())
        if (!k.empty() && k[0] != '_') r.identity[k] = as_text(v);
      for (auto& [k, v] : j["settings"]["recipe"].items()) {
        if (k == "seed") continue;
        r.identity[r.identity.count(k) ? "recipe." + k : k] = as_text(v);
      }
      // Properties that must agree across a table; with allow_mixed they split rows instead.
      r.identity["backbone"] = arch + "@" + r.backbone_sha256.substr(0, 8);
      if (!img.empty()) r.identity["image_size"] = img;
      if (protocol.empty()) r.identity["protocol"] = r.protocol;
      r.record = std::move(j);
      out.runs.push_back(std::move(r));
    }
  }
  problems.throw_if_any("invalid result records:");
  return out;
}

// ------------------------------------------------------------------ reference CSV

Reference load_reference(const std::string& file, const std::string& label) {
  std::ifstream is(file);
  PETL_CHECK(is, "cannot open reference CSV '", file, "'");
  Reference ref;
  ref.file = file;
  ref.label = !label.empty() ? label
              : fs::path(file).filename() == kReferenceFileName ? std::string(kDefaultReferenceLabel)
                                                                 : fs::path(file).filename().string();
  std::string line;
  int lineno = 0;
  std::vector<std::string> header;
  int c_method = -1, c_setting = -1, c_kind = -1, c_mean = -1, c_params = -1;
  std::vector<std::pair<int, std::string>> task_cols;
  static const std::set<std::string> reserved = {"kind",    "method",   "setting",        "source", "mean",
                                                 "params_m", "peak_train_mib", "n_tasks", "complete"};
  while (std::getline(is, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file + ":" + std::to_string(lineno);
    auto f = csv_split(line, where);
    if (header.empty()) {
      header = f;
      for (int i = 0; i < int(f.size()); ++i) {
        const std::string& h = f[i];
        if (h == "method") c_method = i;
        else if (h == "setting") c_setting = i;
        else if (h == "kind") c_kind = i;
        else if (h == "mean") c_mean = i;
        else if (h == "params_m") c_params = i;
        else if (reserved.count(h) || (h.size() > 5 && (h.rfind("_mean") == h.size() - 5 || h.rfind("_std") == h.size() - 4)))
          continue;
        else if (!h.empty()) task_cols.emplace_back(i, h);
      }
      PETL_CHECK(c_method >= 0, where, ": reference CSV has no 'method' column (header: ", line, ")");
      PETL_CHECK(!task_cols.empty(), where, ": reference CSV has no task columns");
      for (auto& [i, t] : task_cols) ref.tasks.push_back(t);
      continue;
    }
    PETL_CHECK(f.size() == header.size(), where, ": ", f.size(), " fields, the header has ", header.size());
    if (c_kind >= 0 && f[c_kind] != "ours") continue;
    ReferenceRow row;
    row.method = f[c_method];
    PETL_CHECK(!row.method.empty(), where, ": empty method");
    if (c_setting >= 0) row.setting = f[c_setting];
    auto number = [&](int col, double& out) {
      std::string s = f[col];
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t") + 1);
      if (s.empty() || s == "-" || s == kMissing || s == "nan" || s == "NaN") return false;
      PETL_CHECK(parse_number(s, out), where, ": column '", header[col], "': '", s, "' is not a number");
      return true;
    };
    for (auto& [i, t] : task_cols) {
      double v;
      if (number(i, v)) row.acc[t] = v;
    }
    if (c_mean >= 0) number(c_mean, row.mean);
    if (c_params >= 0) number(c_params, row.params_m);
    ref.rows.push_back(std::move(row));
  }
  PETL_CHECK(!header.empty(), "reference CSV '", file, "' is empty");
  return ref;
}

// ------------------------------------------------------------------ the table

Table build_table(Records records, const ReportOptions& opts, const Reference& reference) {
  Table t;
  t.records = std::move(records);
  t.warnings = t.records.warnings;
  auto& runs = t.records.runs;
  auto warn = [&](const std::string& s) { t.warnings.push_back(s); };

  if (runs.empty()) {
    std::string msg = "no successful result records in " + join(t.records.files, ", ");
    int failed = 0, dry = 0;
    const Skipped* first_failed = nullptr;
    for (auto& s : t.records.skipped) {
      if (s.status == "failed") {
        if (!first_failed) first_failed = &s;
        ++failed;
      } else {
        ++dry;
      }
    }
    if (failed) msg += "; " + std::to_string(failed) + " failed (first: " + first_failed->src.where() + ": " +
                       first_failed->method + "/" + first_failed->task + ": " + first_failed->message + ")";
    if (dry) msg += "; " + std::to_string(dry) + " dry run(s)";
    for (auto& [schema, n] : t.records.other_schemas) msg += "; " + std::to_string(n) + " line(s) of schema " + schema;
    throw Error(msg);
  }

  // Duplicates: the later record supersedes the earlier (append-only result files; a re-run).
  {
    std::map<std::string, size_t> by_key;
    std::vector<bool> keep(runs.size(), true);
    std::vector<std::string> dups;
    for (size_t i = 0; i < runs.size(); ++i) {
      const Run& r = runs[i];
      std::string key = r.method + '\x1f' + r.task + '\x1f' + std::to_string(r.seed) + '\x1f' + json(r.identity).dump();
      auto [it, inserted] = by_key.emplace(key, i);
      if (inserted) continue;
      dups.push_back(r.method + "/" + r.task + " seed " + std::to_string(r.seed) + " (same settings): " +
                     runs[it->second].src.where() + " and " + r.src.where() + "; the later one is used");
      keep[it->second] = false;
      it->second = i;
    }
    if (dups.size() <= 5) {
      for (auto& d : dups) warn("duplicate record " + d);
    } else {
      warn(std::to_string(dups.size()) + " duplicate records (same method, task, seed and settings; the later one is used each time), e.g. " +
           dups[0] + "; " + dups[1] + "; " + dups[2]);
    }
    std::vector<Run> kept;
    for (size_t i = 0; i < runs.size(); ++i)
      if (keep[i]) kept.push_back(std::move(runs[i]));
    runs = std::move(kept);
  }

  // Mixed backbones / protocols / preprocessing inside one table.
  auto check_mixed = [&](const std::string& what, auto value_of, const std::string& hint) {
    std::vector<std::string> order;
    std::map<std::string, std::vector<Source>> groups;
    for (auto& r : runs) {
      auto v = value_of(r);
      if (groups[v].empty()) order.push_back(v);
      groups[v].push_back(r.src);
    }
    if (order.size() <= 1) return;
    std::vector<std::string> parts;
    for (auto& v : order)
      parts.push_back("'" + v + "' in " + std::to_string(groups[v].size()) + " record(s) (" + sources_text(groups[v]) + ")");
    std::string msg = "records mix " + what + ": " + join(parts, "; ");
    if (!opts.allow_mixed) PETL_FAIL(msg, ". ", hint, ", or pass --allow-mixed to tabulate them as separate rows");
    warn(msg + "; tabulated as separate rows (--allow-mixed)");
  };
  check_mixed("backbones", [](const Run& r) { return r.backbone; }, "Report one backbone's records at a time");
  if (opts.protocol.empty())
    check_mixed("headline protocols", [](const Run& r) { return r.protocol; },
                "Pass --protocol best_of_10 (or final) to re-derive every accuracy under one protocol");
  check_mixed("preprocessing (normalisation, image size)", [](const Run& r) { return r.preprocessing; },
              "Report one preprocessing at a time");

  // The same task on different test lists: numbers not comparable.
  {
    std::map<std::string, std::map<std::string, Source>> lists;
    for (auto& r : runs)
      if (auto v = find_path(r.record, "data.test_list_sha256"); v && v->is_string())
        lists[r.task].emplace(v->get<std::string>(), r.src);
    for (auto& [task, m] : lists) {
      if (m.size() < 2) continue;
      std::vector<std::string> parts;
      for (auto& [sha, src] : m) parts.push_back(sha.substr(0, 12) + " (" + src.where() + ")");
      warn("task " + task + " is evaluated on different test lists: " + join(parts, ", ") +
           "; its cells mix datasets");
    }
  }

  // Columns.
  std::vector<std::string> seen_tasks, methods;
  {
    std::set<std::string> st, sm;
    for (auto& r : runs) {
      if (st.insert(r.task).second) seen_tasks.push_back(r.task);
      if (sm.insert(r.method).second) methods.push_back(r.method);
    }
  }
  t.vtab = std::any_of(seen_tasks.begin(), seen_tasks.end(), [](auto& s) { return !vtab_group(s).empty(); });
  if (t.vtab) {
    for (auto& g : group_names()) {
      TaskGroup tg{g, {}, true};
      for (auto& task : vtab_tasks())
        if (vtab_group(task) == g) tg.tasks.push_back(task);
      t.groups.push_back(tg);
    }
    TaskGroup other{"Other", {}, false};
    for (auto& task : seen_tasks)
      if (vtab_group(task).empty()) other.tasks.push_back(task);
    if (!other.tasks.empty()) t.groups.push_back(other);
  } else {
    t.groups.push_back({"Tasks", seen_tasks, false});
  }
  for (auto& g : t.groups) t.tasks.insert(t.tasks.end(), g.tasks.begin(), g.tasks.end());

  // Row identities: per method, the identity keys that take different values within one task.
  std::map<std::string, std::vector<size_t>> rows_of_method;
  std::map<std::string, size_t> row_index;
  for (auto& m : methods) {
    std::map<std::string, std::map<std::string, std::set<std::string>>> vals;  // key → task → values
    std::set<std::string> keys;
    for (auto& r : runs)
      if (r.method == m)
        for (auto& [k, v] : r.identity) keys.insert(k);
    for (auto& r : runs) {
      if (r.method != m) continue;
      for (auto& k : keys) {
        auto it = r.identity.find(k);
        vals[k][r.task].insert(it == r.identity.end() ? std::string("(unset)") : it->second);
      }
    }
    std::vector<std::string> dims;
    for (auto& k : keys)
      for (auto& [task, v] : vals[k])
        if (v.size() > 1) {
          dims.push_back(k);
          break;
        }
    t.varying[m] = dims;
    for (size_t i = 0; i < runs.size(); ++i) {
      const Run& r = runs[i];
      if (r.method != m) continue;
      std::map<std::string, std::string> id;
      for (auto& k : dims) {
        auto it = r.identity.find(k);
        id[k] = it == r.identity.end() ? "(unset)" : it->second;
      }
      std::string key = m + '\x1f' + json(id).dump();
      auto [it, inserted] = row_index.emplace(key, t.rows.size());
      if (inserted) {
        Row row;
        row.method = m;
        row.identity = id;
        std::vector<std::string> parts;
        for (auto& [k, v] : id) parts.push_back(k + "=" + v);
        row.setting = join(parts, ", ");
        t.rows.push_back(row);
      }
      t.rows[it->second].cells[r.task].runs.push_back(i);
    }
  }
  // Order: methods as first seen, a method's settings by value (numbers numerically).
  {
    std::map<std::string, size_t> method_rank;
    for (size_t i = 0; i < methods.size(); ++i) method_rank[methods[i]] = i;
    std::stable_sort(t.rows.begin(), t.rows.end(), [&](const Row& a, const Row& b) {
      if (a.method != b.method) return method_rank[a.method] < method_rank[b.method];
      for (auto& [k, v] : a.identity) {
        const std::string& w = b.identity.at(k);
        if (v != w) return value_less(v, w);
      }
      return false;
    });
  }

  // Cells, group means, row means.
  for (auto& row : t.rows) {
    std::vector<double> params, mems;
    for (auto& [task, cell] : row.cells) {
      std::sort(cell.runs.begin(), cell.runs.end(), [&](size_t a, size_t b) { return runs[a].seed < runs[b].seed; });
      std::vector<double> acc, p, mb;
      for (size_t i : cell.runs) {
        acc.push_back(runs[i].accuracy);
        p.push_back(runs[i].trainable_params);
        mb.push_back(runs[i].peak_train_mib);
        cell.seeds.push_back(runs[i].seed);
      }
      cell.acc = mean_std(acc);
      cell.params = mean_of(p);
      cell.peak_train_mib = mean_of(mb);
      params.push_back(cell.params / 1e6);
      mems.push_back(cell.peak_train_mib);
    }
    for (auto& g : t.groups) {
      if (!g.has_mean) {
        row.group_means.push_back(kNaN);
        row.group_complete.push_back(false);
        continue;
      }
      std::vector<double> v;
      for (auto& task : g.tasks)
        if (auto it = row.cells.find(task); it != row.cells.end()) v.push_back(it->second.acc.mean);
      row.group_means.push_back(mean_of(v));
      row.group_complete.push_back(v.size() == g.tasks.size());
    }
    std::vector<double> all;
    for (auto& task : t.tasks)
      if (auto it = row.cells.find(task); it != row.cells.end()) all.push_back(it->second.acc.mean);
    row.mean = mean_of(all);
    row.complete = all.size() == t.tasks.size();
    row.params_m = mean_of(params);
    row.peak_train_mib = mean_of(mems);
  }

  // Caption: every value that defines the numbers; per-method values where they differ.
  auto describe = [&](auto value_of) {
    std::vector<std::string> order;
    std::map<std::string, std::vector<std::string>> methods_of;
    for (auto& r : runs) {
      std::string v = value_of(r);
      auto& ms = methods_of[v];
      if (ms.empty()) order.push_back(v);
      if (std::find(ms.begin(), ms.end(), r.method) == ms.end()) ms.push_back(r.method);
    }
    if (order.size() == 1) return order[0];
    std::vector<std::string> parts;
    for (auto& v : order) parts.push_back(v + " (" + join(methods_of[v], ", ") + ")");
    return join(parts, " / ");
  };
  auto recipe_value = [](const std::string& key) {
    return [key](const Run& r) { return string_or(r.record, "settings.recipe." + key, "?"); };
  };
  t.protocol = describe([](const Run& r) { return r.protocol; });
  std::string protocol_text = "protocol " + t.protocol;
  if (t.protocol == "best_of_10")
    protocol_text += " (maximum test accuracy over the evaluations every " + describe(recipe_value("eval_every")) +
                     " epochs)";
  else if (t.protocol == "final")
    protocol_text += " (test accuracy after the last epoch)";
  std::string caption = "Top-1 test accuracy (%) on ";
  caption += t.vtab && t.groups.size() == 3 ? std::string("VTAB-1k")
                                            : std::to_string(t.tasks.size()) + " task" + (t.tasks.size() == 1 ? "" : "s");
  caption += ", " + protocol_text + ". ";
  caption += "Backbone " + describe([](const Run& r) { return r.backbone; }) + ". ";
  caption += "Preprocessing " + describe([](const Run& r) { return r.preprocessing; }) + ". ";
  caption += "Recipe " + describe(recipe_value("recipe")) + ": " + describe(recipe_value("epochs")) + " epochs, batch size " +
             describe(recipe_value("batch_size")) + ", " +
             describe([](const Run& r) {
               return string_or(r.record, "memory.precision", "?") + " on " + string_or(r.record, "memory.device", "?");
             }) +
             ". ";
  caption += "Cells: mean ± sample std over seeds, n shown where n > 1; – no record; * mean over the tasks present only. ";
  if (t.vtab)
    caption += "Natural / Specialized / Structured: group means; Mean: plain mean over the " +
               std::to_string(t.tasks.size()) + " task columns. ";
  else
    caption += "Mean: plain mean over the task columns. ";
  caption += "Params: trainable parameters (M); Peak train: peak training memory (MiB); both the mean over the row's tasks.";
  t.caption = caption;

  // Reference rows and the Δ view.
  std::string ref_path = fs::path(reference.file).filename().string();
  if (!reference.rows.empty()) {
    std::set<std::string> ref_tasks(reference.tasks.begin(), reference.tasks.end());
    std::set<std::string> table_tasks(t.tasks.begin(), t.tasks.end());
    bool common = std::any_of(t.tasks.begin(), t.tasks.end(), [&](auto& s) { return ref_tasks.count(s) > 0; });
    if (!common) {
      std::string m = "reference " + reference.label + " (" + reference.file + ") shares no task with this table; not shown";
      if (reference.label == kDefaultReferenceLabel)
        t.notes.push_back("Published VTAB-1k numbers (" + reference.label + ") not shown: the table has no VTAB-1k task.");
      else
        warn(m);
    } else {
      t.reference = reference;
      const bool same_tasks = ref_tasks == table_tasks;
      for (auto& rr : reference.rows) {
        RefLine l;
        l.ref = rr;
        for (auto& g : t.groups) {
          std::vector<double> v;
          if (g.has_mean)
            for (auto& task : g.tasks)
              if (auto it = rr.acc.find(task); it != rr.acc.end()) v.push_back(it->second);
          l.group_means.push_back(mean_of(v));
        }
        if (same_tasks && std::isfinite(rr.mean)) {
          l.mean = rr.mean;
          l.mean_published = true;
        } else {
          std::vector<double> v;
          for (auto& task : t.tasks)
            if (auto it = rr.acc.find(task); it != rr.acc.end()) v.push_back(it->second);
          l.mean = mean_of(v);
        }
        t.ref_lines.push_back(l);
      }
      for (auto& row : t.rows) {
        const ReferenceRow* match = nullptr;
        int same_method = 0;
        const ReferenceRow* by_method = nullptr;
        for (auto& rr : reference.rows) {
          if (rr.label() == row.label()) match = &rr;
          if (rr.method == row.method) {
            ++same_method;
            by_method = &rr;
          }
        }
        if (!match && same_method == 1) match = by_method;
        if (!match) continue;
        DeltaLine d;
        d.ours = row.label();
        d.published = match->label();
        for (auto& task : t.tasks) {
          auto c = row.cells.find(task);
          auto p = match->acc.find(task);
          if (c != row.cells.end() && p != match->acc.end()) d.delta[task] = c->second.acc.mean - p->second;
        }
        if (d.delta.empty()) continue;
        for (auto& g : t.groups) {
          std::vector<double> v;
          if (g.has_mean)
            for (auto& task : g.tasks)
              if (auto it = d.delta.find(task); it != d.delta.end()) v.push_back(it->second);
          d.group_means.push_back(mean_of(v));
          d.group_complete.push_back(g.has_mean && v.size() == g.tasks.size());
        }
        std::vector<double> all;
        for (auto& [task, v] : d.delta) all.push_back(v);
        d.mean = mean_of(all);
        d.complete = all.size() == t.tasks.size();
        t.deltas.push_back(d);
      }
      t.caption += " Rows under \"published\": " + reference.label +
                   (reference.label == ref_path ? std::string() : " (" + ref_path + ")") + ", as published.";
      if (reference.label == kDefaultReferenceLabel && t.protocol != "best_of_10")
        warn("the published numbers are best_of_10, this table is " + t.protocol + ": the Δ view compares different protocols");
    }
  }

  // Notes: what was read and what defines the rows.
  int n_failed = 0, n_dry = 0, n_lines = int(runs.size());
  for (auto& s : t.records.skipped) (s.status == "failed" ? n_failed : n_dry)++;
  std::string read = "Read " + std::to_string(t.records.files.size()) + " file(s): " + std::to_string(n_lines) +
                     " ok record(s) tabulated, " + std::to_string(n_failed) + " failed, " + std::to_string(n_dry) +
                     " dry run(s)";
  for (auto& [schema, n] : t.records.other_schemas)
    read += ", " + std::to_string(n) + " line(s) of schema " + schema + " skipped";
  t.notes.insert(t.notes.begin(), read + ".");
  for (auto& m : methods) {
    auto& dims = t.varying[m];
    if (!dims.empty())
      t.notes.push_back("Rows of " + m + " differ in " + join(dims, ", ") + " (values that vary within a task).");
  }
  return t;
}

// ------------------------------------------------------------------ rendering

namespace {

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

std::string cell_text(const Cell& c) {
  if (c.acc.n == 0) return kMissing;
  if (c.acc.n == 1) return fixed(c.acc.mean, 2);
  return fixed(c.acc.mean, 2) + " ± " + fixed(c.acc.std, 2) + " (n=" + std::to_string(c.acc.n) + ")";
}
std::string mean_text(double v, bool complete) {
  if (!std::isfinite(v)) return kMissing;
  return fixed(v, 2) + (complete ? "" : "*");
}

struct Layout {
  std::vector<std::string> header;
  std::vector<bool> right;
  std::vector<int> mean_groups;  // indices of groups with a mean column
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
  l.header.push_back("Params (M)");
  l.header.push_back("Peak train (MiB)");
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
    r.push_back(mean_text(row.mean, row.complete));
    r.push_back(params_text(row.params_m));
    r.push_back(fixed(row.peak_train_mib, 1));
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
      for (int g : l.mean_groups) r.push_back(std::isfinite(rl.group_means[g]) ? fixed(rl.group_means[g], 2) : kMissing);
      r.push_back(!std::isfinite(rl.mean) ? std::string(kMissing) : rl.mean_published ? short_fixed(rl.mean) : fixed(rl.mean, 2));
      r.push_back(params_text(rl.ref.params_m));
      r.push_back(kMissing);
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

std::string render_markdown(const Table& t, const std::vector<std::string>& plot_files) {
  std::string md = "# petl report\n\n" + render_markdown_table(t);
  if (!t.deltas.empty()) {
    auto l = layout(t);
    std::vector<std::string> header(l.header.begin(), l.header.end() - 2);  // no params / memory
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
        r.push_back(std::isfinite(d.group_means[g]) ? signed_fixed(d.group_means[g], 2) + (d.group_complete[g] ? "" : "*")
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
  if (!plot_files.empty()) {
    md += "\n## Plots\n\n";
    for (auto& p : plot_files)
      if (p.size() > 4 && p.substr(p.size() - 4) == ".png") {
        std::string name = fs::path(p).stem().string();
        std::string title = name == "acc_vs_memory"            ? "Accuracy vs peak training memory (mean over tasks)"
                            : name == "acc_vs_memory_per_task" ? "Accuracy vs peak training memory, per task"
                            : name == "acc_vs_params"          ? "Accuracy vs trainable parameters"
                            : name == "evals"                  ? "Test accuracy over evaluations, per run"
                                                               : name;
        md += "![" + title + "](" + p + ")\n\n";
      }
    md += "SVG versions, gnuplot scripts and data beside them in plots/ (re-render: `cd plots && gnuplot NAME.gp`).\n";
  }
  md += "\n## Notes\n\n";
  for (auto& n : t.notes) md += "- " + n + "\n";
  if (!t.warnings.empty()) {
    md += "\n### Warnings\n\n";
    for (auto& w : t.warnings) md += "- " + w + "\n";
  }
  std::vector<const Skipped*> failed;
  for (auto& s : t.records.skipped)
    if (s.status == "failed") failed.push_back(&s);
  if (!failed.empty()) {
    md += "\n### Failed jobs (not tabulated)\n\n";
    for (auto* s : failed) {
      md += "- " + s->method + "/" + s->task + (s->seed >= 0 ? " seed " + std::to_string(s->seed) : std::string()) +
            " (" + s->src.where() + "): " + first_line_cut(s->message);
      for (auto& r : t.records.runs)  // a later successful re-run of the same job
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
  for (auto s : {"mean", "params_m", "peak_train_mib", "n_tasks", "complete", "source"}) h.push_back(s);
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
    emit(r);
  }
  return out;
}

std::string render_cells_csv(const Table& t) {
  std::string out =
      "method,setting,task,group,n,seeds,accuracy_mean,accuracy_std,protocol,trainable_params,peak_train_mib,records\n";
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
                                   join(srcs, ";")};
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
    return fixed(c.acc.mean, 2) + "{\\scriptsize$\\pm$" + fixed(c.acc.std, 2) + "$^{n=" + std::to_string(c.acc.n) + "}$}";
  };
  auto tex_mean = [](double v, bool complete) {
    if (!std::isfinite(v)) return std::string("--");
    return fixed(v, 2) + (complete ? "" : "$^*$");
  };
  std::string spec = "l";
  for (auto& g : t.groups) spec += std::string(g.tasks.size(), 'r');
  spec += std::string(l.mean_groups.size() + 1, 'r') + "rr";
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
    g1 += " & \\multicolumn{" + std::to_string(l.mean_groups.size() + 1) + "}{c}{Means} & & \\\\\n";
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
    r.push_back(tex_mean(row.mean, row.complete));
    r.push_back(tex_escape(params_text(row.params_m)));
    r.push_back(fixed(row.peak_train_mib, 1));
    o += join(r, " & ") + " \\\\\n";
  }
  if (!t.ref_lines.empty()) {
    o += "\\midrule\n\\multicolumn{" + std::to_string(ncol) + "}{l}{\\emph{published: " + tex_escape(t.reference.label) +
         "}} \\\\\n";
    for (auto& rl : t.ref_lines) {
      std::vector<std::string> r{tex_escape(rl.ref.label())};
      for (auto& task : t.tasks) {
        auto it = rl.ref.acc.find(task);
        r.push_back(it == rl.ref.acc.end() ? std::string("--") : short_fixed(it->second));
      }
      for (int g : l.mean_groups) r.push_back(tex_mean(rl.group_means[g], true));
      r.push_back(!std::isfinite(rl.mean) ? std::string("--") : rl.mean_published ? short_fixed(rl.mean) : fixed(rl.mean, 2));
      r.push_back(tex_escape(params_text(rl.ref.params_m)));
      r.push_back("--");
      o += join(r, " & ") + " \\\\\n";
    }
  }
  o += "\\bottomrule\n\\end{tabular}}\n\\end{table*}\n";
  return o;
}

// ------------------------------------------------------------------ plots (gnuplot)

namespace {

const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
const int kPointTypes[] = {7, 5, 9, 13, 11, 15};
std::string color_of(size_t i) { return kColors[i % 10]; }
int pt_of(size_t i) { return kPointTypes[i % 6]; }
long rgb_int(const std::string& hex) { return std::strtol(hex.c_str() + 1, nullptr, 16); }

// The same plot body rendered twice: PNG (pngcairo) and SVG.
std::string two_terminals(const std::string& name, int w, int h, const std::string& body) {
  std::string s = "# " + name + ".gp: written by `petl report`; render with `gnuplot " + name + ".gp` in this folder.\n";
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
      "unset border\nunset tics\nunset xlabel\nunset ylabel\nunset grid\nunset logscale\nunset title\nset offsets 0,0,0,0\n"
      "set xrange [0:1]\nset yrange [0:1]\nset key center center vertical Left reverse box spacing 1.3 width 1 height 0.6\nplot ";
  for (size_t i = 0; i < t.rows.size(); ++i)
    s += std::string(i ? ", \\\n     " : "") + "-1 with " + style + " pt " + std::to_string(pt_of(i)) + " ps 1.5 lw 2 lc rgb '" +
         color_of(i) + "' title " + gp_sq(t.rows[i].label());
  return s + "\n";
}

// One series per row (its own colour, point type and key entry) and its label beside the point,
// alternately above and below so rows at the same spot stay readable.
std::string row_series(const Table& t, const std::string& dat, const std::vector<std::string>& labels) {
  std::string s = "plot ";
  for (size_t i = 0; i < t.rows.size(); ++i)
    s += std::string(i ? ", \\\n     " : "") + gp_sq(dat) + " index " + std::to_string(i) + " using 2:3 with points pt " +
         std::to_string(pt_of(i)) + " ps 2 lc rgb '" + color_of(i) + "' title " + gp_sq(labels[i]);
  for (size_t i = 0; i < t.rows.size(); ++i)
    s += ", \\\n     " + gp_sq(dat) + " index " + std::to_string(i) + " using 2:3:1 with labels offset char 1.2," +
         (i % 2 ? "-0.9" : "0.9") + " left font ',9' tc rgb '" + color_of(i) + "' notitle";
  return s;
}

}  // namespace

std::vector<std::string> write_plots(Table& t, const std::string& out_dir) {
  fs::path dir = fs::path(out_dir) / "plots";
  fs::create_directories(dir);
  std::vector<std::string> scripts;
  const auto& runs = t.records.runs;

  // Subtitle: what the numbers are.
  std::string sub = "protocol " + t.protocol + "; backbone " + (runs.empty() ? std::string("?") : runs[0].backbone) +
                    "; batch size " +
                    (runs.empty() ? std::string("?") : string_or(runs[0].record, "settings.recipe.batch_size", "?"));
  bool any_incomplete = false;
  for (auto& r : t.rows) any_incomplete |= !r.complete;
  std::vector<std::string> labels;
  for (auto& r : t.rows) labels.push_back(r.label() + (r.complete ? "" : "*"));
  const std::string star_note = "* mean over the tasks present only";
  std::vector<std::string> panel_tasks;
  for (auto& task : t.tasks)
    for (auto& r : t.rows)
      if (r.cells.count(task)) {
        panel_tasks.push_back(task);
        break;
      }
  const int panels = int(panel_tasks.size()) + 1;  // + the key panel
  const int cols = panels <= 4 ? panels : panels <= 9 ? 3 : panels <= 16 ? 4 : 5;
  const int prow = (panels + cols - 1) / cols;
  const int mw = std::max(900, cols * 420), mh = prow * 340 + 80;
  auto title = [&](const std::string& head, bool star) {
    std::vector<std::string> l{head, sub};
    if (star && any_incomplete) l.push_back(star_note);
    return gp_lines(l);
  };

  // 1. Accuracy vs peak training memory, mean over each row's tasks.
  {
    std::string dat = "# label peak_train_mib mean_accuracy n_tasks (one block per row)\n";
    std::vector<double> xs;
    for (size_t i = 0; i < t.rows.size(); ++i) {
      char b[256];
      std::snprintf(b, sizeof b, "%s %.6g %.6g %zu\n\n\n", gp_dq(labels[i]).c_str(), t.rows[i].peak_train_mib,
                    t.rows[i].mean, t.rows[i].cells.size());
      dat += b;
      xs.push_back(t.rows[i].peak_train_mib);
    }
    write_text(dir / "acc_vs_memory.dat", dat);
    bool log = false;
    std::string xa = x_axis(xs, &log);
    std::string body = "set title " + title("Accuracy vs peak training memory (mean over tasks)", true) +
                       "\nset xlabel 'Peak training memory (MiB)" + (log ? ", log scale" : "") +
                       "'\nset ylabel 'Top-1 test accuracy (%), mean over tasks'\n"
                       "set grid\nset key outside right top box spacing 1.2 height 0.6\nset offsets 0, 0, graph 0.1, graph 0.1\n" + xa +
                       row_series(t, "acc_vs_memory.dat", labels) + "\n";
    write_text(dir / "acc_vs_memory.gp", two_terminals("acc_vs_memory", 1100, 650, body));
    scripts.push_back("acc_vs_memory");
  }

  // 2. Per task: one panel per task, one point per row (every panel on the same x axis).
  {
    std::string dat = "# label peak_train_mib accuracy pointtype rgb (one block per task)\n";
    std::vector<double> xs;
    for (auto& task : panel_tasks) {
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
    write_text(dir / "acc_vs_memory_per_task.dat", dat);
    bool log = false;
    std::string xa = x_axis(xs, &log);
    std::string body = "set multiplot layout " + std::to_string(prow) + "," + std::to_string(cols) + " title " +
                       title("Accuracy vs peak training memory, per task", false) + "\n";
    body += "set grid\nunset key\nset xlabel 'Peak training memory (MiB)" + std::string(log ? ", log scale" : "") +
            "'\nset ylabel 'Top-1 test accuracy (%)'\nset offsets 0, 0, graph 0.12, graph 0.12\n" + xa;
    for (size_t k = 0; k < panel_tasks.size(); ++k)
      body += "set title " + gp_sq(panel_tasks[k]) + "\nplot 'acc_vs_memory_per_task.dat' index " + std::to_string(k) +
              " using 2:3:4:5 with points pt variable ps 1.5 lc rgb variable notitle\n";
    body += key_panel(t, "points") + "unset multiplot\n";
    write_text(dir / "acc_vs_memory_per_task.gp", two_terminals("acc_vs_memory_per_task", mw, mh, body));
    scripts.push_back("acc_vs_memory_per_task");
  }

  // 3. Accuracy vs trainable parameters (+ published points when the reference is shown).
  {
    std::string dat = "# label trainable_params_m mean_accuracy (one block per row)\n";
    std::vector<double> xs;
    for (size_t i = 0; i < t.rows.size(); ++i) {
      char b[256];
      std::snprintf(b, sizeof b, "%s %.6g %.6g\n\n\n", gp_dq(labels[i]).c_str(), t.rows[i].params_m, t.rows[i].mean);
      dat += b;
      xs.push_back(t.rows[i].params_m);
    }
    write_text(dir / "acc_vs_params.dat", dat);
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
    std::string ptitle = ref_dat.empty() ? title(head, true)
                                         : gp_lines({head, sub, "grey: published, " + t.reference.label +
                                                                    (any_incomplete ? "; " + star_note : "")});
    std::string body = "set title " + ptitle +
                       "\nset xlabel 'Trainable parameters (M)" + std::string(log ? ", log scale" : "") +
                       "'\nset ylabel 'Top-1 test accuracy (%), mean over tasks'\n"
                       "set grid\nset key outside right top box spacing 1.2 height 0.6\nset offsets 0, 0, graph 0.1, graph 0.1\n" + xa +
                       row_series(t, "acc_vs_params.dat", labels);
    if (!ref_dat.empty()) {
      write_text(dir / "acc_vs_params_ref.dat", "# label params_m mean_accuracy (published)\n" + ref_dat);
      body += ", \\\n     'acc_vs_params_ref.dat' using 2:3 with points pt 6 ps 1.5 lc rgb '#999999' title " +
              gp_sq("published") +
              ", \\\n     'acc_vs_params_ref.dat' using 2:3:1 with labels offset char 1,-0.8 left font ',8' tc rgb '#777777' notitle";
    }
    body += "\n";
    write_text(dir / "acc_vs_params.gp", two_terminals("acc_vs_params", 1100, 650, body));
    scripts.push_back("acc_vs_params");
  }

  // 4. Test accuracy over evaluations, one line per run, one panel per task.
  {
    std::string dat = "# epoch test_accuracy rgb (one block per task, one line segment per run)\n";
    for (auto& task : panel_tasks) {
      dat += "# " + task + "\n";
      for (size_t i = 0; i < t.rows.size(); ++i) {
        auto it = t.rows[i].cells.find(task);
        if (it == t.rows[i].cells.end()) continue;
        for (size_t ri : it->second.runs) {
          const Run& run = runs[ri];
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
    write_text(dir / "evals.dat", dat);
    std::string body = "set multiplot layout " + std::to_string(prow) + "," + std::to_string(cols) + " title " +
                       title("Test accuracy over evaluations, one line per run (seed)", false) + "\n";
    body += "set grid\nunset key\nset xlabel 'Epoch'\nset ylabel 'Top-1 test accuracy (%)'\n"
            "set offsets graph 0.03, graph 0.03, graph 0.08, graph 0.08\n";
    for (size_t k = 0; k < panel_tasks.size(); ++k)
      body += "set title " + gp_sq(panel_tasks[k]) + "\nplot 'evals.dat' index " + std::to_string(k) +
              " using 1:2:3 with linespoints pt 7 ps 0.6 lw 1.5 lc rgb variable notitle\n";
    body += key_panel(t, "linespoints") + "unset multiplot\n";
    write_text(dir / "evals.gp", two_terminals("evals", mw, mh, body));
    scripts.push_back("evals");
  }

  // Render.
  std::vector<std::string> images;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    t.warnings.push_back("gnuplot not found: plot scripts and data written to " + dir.string() +
                         " but not rendered (install gnuplot-nox)");
    return images;
  }
  for (auto& s : scripts) {
    fs::path log = dir / (s + ".log");
    std::string cmd = "cd " + sh_sq(dir.string()) + " && gnuplot " + sh_sq(s + ".gp") + " > " + sh_sq(s + ".log") + " 2>&1";
    int rc = std::system(cmd.c_str());
    std::error_code ec;
    bool ok = rc == 0 && fs::exists(dir / (s + ".png"), ec) && fs::exists(dir / (s + ".svg"), ec);
    if (!ok) {
      std::ifstream is(log);
      std::stringstream ss;
      ss << is.rdbuf();
      std::string text = ss.str();
      if (text.size() > 400) text = "…" + text.substr(text.size() - 400);
      t.warnings.push_back("gnuplot failed on plots/" + s + ".gp (exit " + std::to_string(rc) + "): " + text);
      continue;
    }
    fs::remove(log, ec);
    images.push_back("plots/" + s + ".png");
    images.push_back("plots/" + s + ".svg");
  }
  return images;
}

// ------------------------------------------------------------------ the whole report

ReportResult write_report(const std::vector<std::string>& inputs, const ReportOptions& opts) {
  PETL_CHECK(opts.format == "md" || opts.format == "csv" || opts.format == "tex", "--format '", opts.format,
             "': expected md, csv or tex");
  Records recs = load_records(inputs, opts.protocol);
  std::string ref_path = opts.reference;
  std::vector<std::string> pre_notes;
  if (ref_path == "default") {
    ref_path = default_reference_csv();
    if (ref_path.empty()) pre_notes.push_back(std::string("The published reference ") + kReferenceFileName + " was not found; no reference rows.");
  }
  if (ref_path == "none") ref_path.clear();
  Reference ref;
  if (!ref_path.empty()) ref = load_reference(ref_path, opts.reference_label);
  Table t = build_table(std::move(recs), opts, ref);
  for (auto& n : pre_notes) t.notes.push_back(n);

  ReportResult res;
  for (auto& s : t.records.skipped) (s.status == "failed" ? res.n_failed : res.n_dry_run)++;
  res.n_ok = int(t.records.runs.size());
  if (!opts.out_dir.empty()) {
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
    res.files.insert(res.files.begin(), {(out / "report.md").string(), (out / "report.csv").string(),
                                         (out / "report_cells.csv").string()});
    if (opts.format == "tex") {
      write_text(out / "report.tex", render_tex(t));
      res.files.push_back((out / "report.tex").string());
    }
  }
  res.table_markdown = render_markdown_table(t);
  res.printed = opts.format == "md" ? res.table_markdown : opts.format == "csv" ? render_csv(t) : render_tex(t);
  res.warnings = t.warnings;
  if (opts.warn_to_stderr)
    for (auto& w : t.warnings) std::cerr << "[petl] report: warning: " << w << "\n";
  return res;
}

}  // namespace petl::report

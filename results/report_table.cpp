// `petl report`, the table: build_table in named steps — nothing to tabulate, duplicates, mixed
// backbones / protocols / preprocessing, test lists, columns, row identities, cell statistics and
// group means, the caption, reference rows and the Δ view, notes.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/text.h"
#include "results/report.h"
#include "results/report_internal.h"

namespace petl::report {
namespace fs = std::filesystem;
using namespace internal;

namespace {

const std::vector<std::string>& group_names() {
  static const std::vector<std::string> g = {"Natural", "Specialized", "Structured"};
  return g;
}

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

// The run in words for messages: "linear/cifar seed 42", "linear/food101 4-shot split 1 seed 42".
std::string run_name(const Run& r) {
  std::string s = r.method + "/" + r.task;
  if (r.shots > 0) s += " " + std::to_string(r.shots) + "-shot split " + std::to_string(r.split_seed);
  return s + " seed " + std::to_string(r.seed);
}

}  // namespace

namespace internal {

// No ok record: an error naming the failures, dry runs and other schemas that were read.
void fail_without_runs(const Records& records) {
  std::string msg = "no successful result records in " + join(records.files, ", ");
  int failed = 0, dry = 0;
  const Skipped* first_failed = nullptr;
  for (auto& s : records.skipped) {
    if (s.status == RecordStatus::kFailed) {
      if (!first_failed) first_failed = &s;
      ++failed;
    } else {
      ++dry;
    }
  }
  if (failed)
    msg += "; " + std::to_string(failed) + " failed (first: " + first_failed->src.where() + ": " +
           first_failed->method + "/" + first_failed->task + ": " + first_failed->message + ")";
  if (dry) msg += "; " + std::to_string(dry) + " dry run(s)";
  for (auto& [schema, n] : records.other_schemas) msg += "; " + std::to_string(n) + " line(s) of schema " + schema;
  if (records.val_select_search)
    msg += "; " + std::to_string(records.val_select_search) +
           " val_select search record(s) (accuracies on val200, never tabulated)";
  throw Error(msg);
}

// Duplicates: the later record supersedes the earlier (append-only result files; a re-run).
void drop_duplicates(std::vector<Run>& runs, std::vector<std::string>& warnings) {
  std::map<std::string, size_t> by_key;
  std::vector<bool> keep(runs.size(), true);
  std::vector<std::string> dups;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    std::string key = r.method + '\x1f' + r.task + '\x1f' + std::to_string(r.seed) + '\x1f' + r.benchmark + '\x1f' +
                      std::to_string(r.shots) + '\x1f' + std::to_string(r.split_seed) + '\x1f' +
                      json(r.identity).dump();
    auto [it, inserted] = by_key.emplace(key, i);
    if (inserted) continue;
    dups.push_back(run_name(r) + " (same settings): " + runs[it->second].src.where() + " and " + r.src.where() +
                   "; the later one is used");
    keep[it->second] = false;
    it->second = i;
  }
  if (dups.size() <= 5) {
    for (auto& d : dups) warnings.push_back("duplicate record " + d);
  } else {
    warnings.push_back(
        std::to_string(dups.size()) +
        " duplicate records (same method, task, seed and settings; the later one is used each time), e.g. " + dups[0] +
        "; " + dups[1] + "; " + dups[2]);
  }
  std::vector<Run> kept;
  for (size_t i = 0; i < runs.size(); ++i)
    if (keep[i]) kept.push_back(std::move(runs[i]));
  runs = std::move(kept);
}

}  // namespace internal

namespace {

// One property that must agree across the table: an error, or with allow_mixed a warning (the
// property is part of every run's identity, so it then splits rows).
void check_mixed(const std::vector<Run>& runs, const ReportOptions& opts, const std::string& what,
                 const RunText& value_of, const std::string& hint, std::vector<std::string>& warnings) {
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
    parts.push_back("'" + v + "' in " + std::to_string(groups[v].size()) + " record(s) (" + sources_text(groups[v]) +
                    ")");
  std::string msg = "records mix " + what + ": " + join(parts, "; ");
  if (!opts.allow_mixed) PETL_FAIL(msg, ". ", hint, ", or pass --allow-mixed to tabulate them as separate rows");
  warnings.push_back(msg + "; tabulated as separate rows (--allow-mixed)");
}

}  // namespace

namespace internal {

void check_mixed_properties(const std::vector<Run>& runs, const ReportOptions& opts,
                            std::vector<std::string>& warnings) {
  check_mixed(
      runs, opts, "backbones", [](const Run& r) { return r.backbone; }, "Report one backbone's records at a time",
      warnings);
  if (opts.protocol.empty())
    check_mixed(
        runs, opts, "headline protocols", [](const Run& r) { return r.protocol; },
        "Pass --protocol best_of_10 (or final) to re-derive every accuracy under one protocol", warnings);
  check_mixed(
      runs, opts, "preprocessing (normalisation, image size)", [](const Run& r) { return r.preprocessing; },
      "Report one preprocessing at a time", warnings);
}

// The same task on different test lists: numbers not comparable.
void warn_test_lists(const std::vector<Run>& runs, std::vector<std::string>& warnings) {
  std::map<std::string, std::map<std::string, Source>> lists;
  for (auto& r : runs) {
    const json& data = r.record.data;
    if (!data.is_object()) continue;
    if (auto it = data.find("test_list_sha256"); it != data.end() && it->is_string())
      lists[r.task].emplace(it->get<std::string>(), r.src);
  }
  for (auto& [task, m] : lists) {
    if (m.size() < 2) continue;
    std::vector<std::string> parts;
    for (auto& [sha, src] : m) parts.push_back(sha.substr(0, 12) + " (" + src.where() + ")");
    warnings.push_back("task " + task + " is evaluated on different test lists: " + join(parts, ", ") +
                       "; its cells mix datasets");
  }
}

}  // namespace internal

namespace {

// Columns: the VTAB layout (3 groups + Other) when any task is a VTAB task, else one group in
// first-seen order. Returns the methods in first-seen order.
std::vector<std::string> layout_columns(const std::vector<Run>& runs, Table& t) {
  std::vector<std::string> seen_tasks, methods;
  std::set<std::string> st, sm;
  for (auto& r : runs) {
    if (st.insert(r.task).second) seen_tasks.push_back(r.task);
    if (sm.insert(r.method).second) methods.push_back(r.method);
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
  return methods;
}

// The identity keys of a method whose values differ within one cell (they define its rows).
std::vector<std::string> varying_keys(const std::vector<Run>& runs, const std::string& m, const RunText& cell_of) {
  std::map<std::string, std::map<std::string, std::set<std::string>>> vals;  // key → cell → values
  std::set<std::string> keys;
  for (auto& r : runs)
    if (r.method == m)
      for (auto& [k, v] : r.identity) keys.insert(k);
  for (auto& r : runs) {
    if (r.method != m) continue;
    for (auto& k : keys) {
      auto it = r.identity.find(k);
      vals[k][cell_of(r)].insert(it == r.identity.end() ? std::string("(unset)") : it->second);
    }
  }
  std::vector<std::string> dims;
  for (auto& k : keys)
    for (auto& [task, v] : vals[k])
      if (v.size() > 1) {
        dims.push_back(k);
        break;
      }
  return dims;
}

// One part of a row's setting text: "lr=0.005"; a budget as "budget 4.0 MiB" / "no budget"; an
// absent value as what it means ("whole batch", "fp32") or "KEY unset".
std::string setting_part(const std::string& key, const std::string& value) {
  const bool unset = value == "(unset)";
  double v = 0;
  if (key == "memory_budget_mib")
    return unset ? "no budget" : parse_number(value, v) ? "budget " + format_bytes(v * 1048576.0) : "budget " + value;
  if (key == "micro_batch" && unset) return "whole batch";
  if (key == "precision" && unset) return "fp32";
  return unset ? key + " unset" : key + "=" + value;
}

}  // namespace

namespace internal {

// Row identities: per method, one row per combination of its varying keys; each run joins its
// row's cell. Order: methods as given, a method's settings by value.
void build_rows(const std::vector<Run>& runs, const std::vector<std::string>& methods, const RunText& cell_of,
                std::vector<Row>& rows, std::map<std::string, std::vector<std::string>>& varying) {
  std::map<std::string, size_t> row_index;
  for (auto& m : methods) {
    const std::vector<std::string> dims = varying_keys(runs, m, cell_of);
    varying[m] = dims;
    for (size_t i = 0; i < runs.size(); ++i) {
      const Run& r = runs[i];
      if (r.method != m) continue;
      std::map<std::string, std::string> id;
      for (auto& k : dims) {
        auto it = r.identity.find(k);
        id[k] = it == r.identity.end() ? "(unset)" : it->second;
      }
      auto [it, inserted] = row_index.emplace(m + '\x1f' + json(id).dump(), rows.size());
      if (inserted) {
        Row row;
        row.method = m;
        row.identity = id;
        std::vector<std::string> parts;
        for (auto& [k, v] : id) parts.push_back(setting_part(k, v));
        row.setting = join(parts, ", ");
        rows.push_back(row);
      }
      rows[it->second].cells[cell_of(r)].runs.push_back(i);
    }
  }
  std::map<std::string, size_t> method_rank;
  for (size_t i = 0; i < methods.size(); ++i) method_rank[methods[i]] = i;
  std::stable_sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
    if (a.method != b.method) return method_rank[a.method] < method_rank[b.method];
    for (auto& [k, v] : a.identity) {
      const std::string& w = b.identity.at(k);
      if (v != w) return value_less(v, w);
    }
    return false;
  });
  std::map<std::string, int> rows_of, seen;
  for (auto& r : rows) rows_of[r.method]++;
  for (auto& r : rows)
    r.short_label = rows_of[r.method] == 1 ? r.method : r.method + " #" + std::to_string(++seen[r.method]);
}

}  // namespace internal

namespace {

// Per table group: the mean of the values its tasks have (NaN for a group without a mean
// column) and whether every task of the group has one.
using TaskValue = std::function<std::optional<double>(const std::string& task)>;
void group_means(const std::vector<TaskGroup>& groups, const TaskValue& value_of, std::vector<double>& means,
                 std::vector<bool>* complete) {
  for (auto& g : groups) {
    std::vector<double> v;
    if (g.has_mean)
      for (auto& task : g.tasks)
        if (auto x = value_of(task)) v.push_back(*x);
    means.push_back(g.has_mean ? mean_of(v) : kNaN);
    if (complete) complete->push_back(g.has_mean && v.size() == g.tasks.size());
  }
}

// The spread of a row's mean over seeds (Row::seed_means): per seed that every task the mean
// covers has, the mean over those tasks; then mean and sample std of those per-seed means.
Stats seed_means(const std::vector<Run>& runs, const Table& t, const Row& row) {
  std::vector<const Cell*> cells;
  for (auto& task : t.tasks)
    if (auto it = row.cells.find(task); it != row.cells.end()) cells.push_back(&it->second);
  if (cells.empty()) return {};
  std::vector<double> per_seed;
  for (int seed : cells[0]->seeds) {
    std::vector<double> acc;
    for (const Cell* c : cells)
      for (size_t i : c->runs)
        if (runs[i].seed == seed) acc.push_back(runs[i].accuracy);
    if (acc.size() == cells.size()) per_seed.push_back(mean_of(acc));  // one run per seed and cell
  }
  return mean_std(per_seed);
}

// The mean of the finite values; NaN when there is none.
double mean_finite(const std::vector<double>& xs) {
  std::vector<double> v;
  for (double x : xs)
    if (std::isfinite(x)) v.push_back(x);
  return mean_of(v);
}

}  // namespace

namespace internal {

void cell_stats(const std::vector<Run>& runs, Cell& cell) {
  std::sort(cell.runs.begin(), cell.runs.end(), [&](size_t a, size_t b) {
    return std::make_pair(runs[a].split_seed, runs[a].seed) < std::make_pair(runs[b].split_seed, runs[b].seed);
  });
  std::vector<double> acc, p, mb, eval_mb, train_s;
  for (size_t i : cell.runs) {
    acc.push_back(runs[i].accuracy);
    p.push_back(runs[i].trainable_params);
    mb.push_back(runs[i].peak_train_mib);
    eval_mb.push_back(runs[i].peak_eval_mib);
    train_s.push_back(runs[i].train_s);
    if (std::isfinite(runs[i].wall_s)) cell.wall_s_total += runs[i].wall_s;
    cell.seeds.push_back(runs[i].seed);
    if (runs[i].split_seed >= 0) cell.split_seeds.push_back(runs[i].split_seed);
  }
  cell.acc = mean_std(acc);
  cell.params = mean_of(p);
  cell.peak_train_mib = mean_of(mb);
  cell.peak_eval_mib = mean_finite(eval_mb);
  cell.train_s = mean_finite(train_s);
}

}  // namespace internal

namespace {

// Cells (mean ± std over seeds, parameters, memory, time), group means, the row's mean and its
// spread over seeds.
void row_stats(const std::vector<Run>& runs, const Table& t, Row& row) {
  std::vector<double> params, mems, evals, times;
  for (auto& [task, cell] : row.cells) {
    cell_stats(runs, cell);
    params.push_back(cell.params);
    mems.push_back(cell.peak_train_mib);
    evals.push_back(cell.peak_eval_mib);
    times.push_back(cell.train_s);
    row.wall_h += cell.wall_s_total / 3600.0;
  }
  auto cell_mean = [&](const std::string& task) -> std::optional<double> {
    auto it = row.cells.find(task);
    return it == row.cells.end() ? std::nullopt : std::optional<double>(it->second.acc.mean);
  };
  group_means(t.groups, cell_mean, row.group_means, &row.group_complete);
  std::vector<double> all;
  for (auto& task : t.tasks)
    if (auto v = cell_mean(task)) all.push_back(*v);
  row.mean = mean_of(all);
  row.complete = all.size() == t.tasks.size();
  row.params = mean_of(params);
  row.params_m = row.params / 1e6;
  row.peak_train_mib = mean_of(mems);
  row.peak_eval_mib = mean_finite(evals);
  row.train_s = mean_finite(times);
  row.seed_means = seed_means(runs, t, row);
}

// A property over the runs: its one value, or "v1 (methods) / v2 (methods)" where it differs.
std::string describe(const std::vector<Run>& runs, const RunText& value_of) {
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
}

// A recipe value over the runs (per method where it differs).
std::string recipe_text(const std::vector<Run>& runs, const std::string& key) {
  return describe(runs, [key](const Run& r) { return recipe_value(r, key); });
}

}  // namespace

namespace internal {

std::string caption_protocol(const std::vector<Run>& runs, std::string& protocol) {
  protocol = describe(runs, [](const Run& r) { return r.protocol; });
  std::string protocol_text = "protocol " + protocol;
  if (protocol == "best_of_10")
    protocol_text +=
        " (maximum test accuracy over the evaluations every " + recipe_text(runs, "eval_every") + " epochs)";
  else if (protocol == "final")
    protocol_text += " (test accuracy after the last epoch)";
  else if (protocol == "val_select")
    protocol_text +=
        " (settings and epoch count selected on val200; test accuracy after the last epoch of the final run on "
        "train800val200)";
  return protocol_text;
}

std::string caption_setup(const std::vector<Run>& runs) {
  auto recipe = [&](const std::string& key) { return recipe_text(runs, key); };
  std::string caption = "Backbone " + describe(runs, [](const Run& r) { return r.backbone; }) + ". ";
  caption += "Preprocessing " + describe(runs, [](const Run& r) { return r.preprocessing; }) + ". ";
  caption += "Recipe " + recipe("recipe") + ": " + recipe("epochs") + " epochs, batch size " + recipe("batch_size") +
             ", " +
             describe(runs,
                      [](const Run& r) {
                        return member_text(r.record.memory, "precision", "?") + " on " +
                               member_text(r.record.memory, "device", "?");
                      }) +
             ". ";
  return caption;
}

}  // namespace internal

namespace {

// Caption: every value that defines the numbers; per-method values where they differ.
void write_caption(const std::vector<Run>& runs, Table& t) {
  const std::string protocol_text = caption_protocol(runs, t.protocol);
  std::string caption = "Top-1 test accuracy (%) on ";
  caption += t.vtab && t.groups.size() == 3
                 ? std::string("VTAB-1k")
                 : std::to_string(t.tasks.size()) + " task" + (t.tasks.size() == 1 ? "" : "s");
  caption += ", " + protocol_text + ". ";
  caption += caption_setup(runs);
  caption +=
      "Cells: mean ± sample std over seeds, n shown where n > 1; – no record; * mean over the tasks present only. ";
  if (t.vtab)
    caption += "Natural / Specialized / Structured: group means; Mean: plain mean over the " +
               std::to_string(t.tasks.size()) + " task columns";
  else
    caption += "Mean: plain mean over the task columns";
  caption +=
      ", ± the sample std over seeds of the per-seed mean over the same tasks, from the seeds every one of those "
      "tasks has (n of them; no ± with fewer than two). ";
  caption +=
      "Params: trainable parameters (K = 10^3, M = 10^6); Peak train / Peak eval: peak training / evaluation memory "
      "(MiB); Train: training time per job (timing.train_s, each task's mean over seeds); all four the mean over the "
      "row's tasks.";
  t.caption = caption;
}

// A reference row in the table's columns: group means from its task values, the published mean
// when the task sets agree, else the mean over the table's tasks it has.
RefLine ref_line(const ReferenceRow& rr, const Table& t, bool same_tasks) {
  RefLine l;
  l.ref = rr;
  auto value = [&](const std::string& task) -> std::optional<double> {
    auto it = rr.acc.find(task);
    return it == rr.acc.end() ? std::nullopt : std::optional<double>(it->second);
  };
  group_means(t.groups, value, l.group_means, nullptr);
  if (same_tasks && std::isfinite(rr.mean)) {
    l.mean = rr.mean;
    l.mean_published = true;
  } else {
    std::vector<double> v;
    for (auto& task : t.tasks)
      if (auto x = value(task)) v.push_back(*x);
    l.mean = mean_of(v);
  }
  return l;
}

// The reference row of a table row: the same label, else the only row of the same method.
const ReferenceRow* matching_reference(const Row& row, const Reference& reference) {
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
  return match;
}

// Ours − published per task where both exist; false when they share no task.
bool delta_line(const Row& row, const ReferenceRow& match, const Table& t, DeltaLine& d) {
  d.ours = row.label();
  d.published = match.label();
  for (auto& task : t.tasks) {
    auto c = row.cells.find(task);
    auto p = match.acc.find(task);
    if (c != row.cells.end() && p != match.acc.end()) d.delta[task] = c->second.acc.mean - p->second;
  }
  if (d.delta.empty()) return false;
  auto value = [&](const std::string& task) -> std::optional<double> {
    auto it = d.delta.find(task);
    return it == d.delta.end() ? std::nullopt : std::optional<double>(it->second);
  };
  group_means(t.groups, value, d.group_means, &d.group_complete);
  std::vector<double> all;
  for (auto& [task, v] : d.delta) all.push_back(v);
  d.mean = mean_of(all);
  d.complete = all.size() == t.tasks.size();
  return true;
}

// Reference rows and the Δ view (a note or a warning when the reference shares no task).
void add_reference(const Reference& reference, Table& t) {
  if (reference.rows.empty()) return;
  std::set<std::string> ref_tasks(reference.tasks.begin(), reference.tasks.end());
  std::set<std::string> table_tasks(t.tasks.begin(), t.tasks.end());
  bool common = std::any_of(t.tasks.begin(), t.tasks.end(), [&](auto& s) { return ref_tasks.count(s) > 0; });
  if (!common) {
    if (reference.label == kDefaultReferenceLabel)
      t.notes.push_back("Published VTAB-1k numbers (" + reference.label +
                        ") not shown: the table has no VTAB-1k task.");
    else
      t.warnings.push_back("reference " + reference.label + " (" + reference.file +
                           ") shares no task with this table; not shown");
    return;
  }
  t.reference = reference;
  const bool same_tasks = ref_tasks == table_tasks;
  for (auto& rr : reference.rows) t.ref_lines.push_back(ref_line(rr, t, same_tasks));
  for (auto& row : t.rows) {
    const ReferenceRow* match = matching_reference(row, reference);
    DeltaLine d;
    if (match && delta_line(row, *match, t, d)) t.deltas.push_back(d);
  }
  const std::string ref_path = fs::path(reference.file).filename().string();
  t.caption += " Rows under \"published\": " + reference.label +
               (reference.label == ref_path ? std::string() : " (" + ref_path + ")") + ", as published.";
  if (reference.label == kDefaultReferenceLabel && t.protocol != "best_of_10")
    t.warnings.push_back("the published numbers are best_of_10, this table is " + t.protocol +
                         ": the Δ view compares different protocols");
}

}  // namespace

namespace internal {

void add_notes(const Records& records, const std::vector<std::string>& methods,
               const std::map<std::string, std::vector<std::string>>& varying, const std::string& within,
               std::vector<std::string>& notes) {
  int n_failed = 0, n_dry = 0, n_lines = int(records.runs.size());
  for (auto& s : records.skipped) (s.status == RecordStatus::kFailed ? n_failed : n_dry)++;
  std::string read = "Read " + std::to_string(records.files.size()) + " file(s): " + std::to_string(n_lines) +
                     " ok record(s) tabulated, " + std::to_string(n_failed) + " failed, " + std::to_string(n_dry) +
                     " dry run(s)";
  for (auto& [schema, n] : records.other_schemas)
    read += ", " + std::to_string(n) + " line(s) of schema " + schema + " skipped";
  notes.insert(notes.begin(), read + ".");
  notes.insert(notes.begin() + 1, records.read_notes.begin(), records.read_notes.end());
  if (records.val_select_search)
    notes.insert(notes.begin() + 1 + long(records.read_notes.size()),
                 std::to_string(records.val_select_search) +
                     " val_select search record(s) (accuracies on val200) not tabulated.");
  for (auto& m : methods) {
    auto it = varying.find(m);
    if (it != varying.end() && !it->second.empty())
      notes.push_back("Rows of " + m + " differ in " + join(it->second, ", ") + " (values that vary within " + within +
                      ").");
  }
}

}  // namespace internal

double row_max_peak_mib(const Row& row) {
  double m = 0;
  for (auto& [task, cell] : row.cells) m = std::max(m, cell.peak_train_mib);
  return m;
}

double row_max_eval_mib(const Row& row) {
  double m = kNaN;
  for (auto& [task, cell] : row.cells)
    if (std::isfinite(cell.peak_eval_mib)) m = std::isfinite(m) ? std::max(m, cell.peak_eval_mib) : cell.peak_eval_mib;
  return m;
}

namespace {

// What method m reached under a budget of budget_mib: its best complete row that fits, else a
// does_not_fit record that proves it cannot fit (its minimum peak, or failing that the budget it
// was run under, is above this budget), else its row run on the most tasks (then the best mean)
// that fits on every task it has, else not run.
BudgetPick budget_pick(const Table& t, const std::string& m, double budget_mib) {
  BudgetPick p;
  int partial = -1;  // the incomplete row that fits with the most tasks (then the best mean)
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const Row& r = t.rows[i];
    if (r.method != m) continue;
    const double peak = row_max_peak_mib(r);
    if (!std::isfinite(p.lowest_peak_mib) || peak < p.lowest_peak_mib) p.lowest_peak_mib = peak;
    if (peak > budget_mib || !std::isfinite(r.mean)) continue;
    if (r.complete) {
      if (p.row < 0 || r.mean > t.rows[size_t(p.row)].mean) p.row = int(i);
    } else if (partial < 0 || r.cells.size() > t.rows[size_t(partial)].cells.size() ||
               (r.cells.size() == t.rows[size_t(partial)].cells.size() && r.mean > t.rows[size_t(partial)].mean)) {
      partial = int(i);
    }
  }
  if (p.row >= 0) {
    p.kind = BudgetPick::Kind::kBest;
    return p;
  }
  for (auto& s : t.records.skipped) {
    if (s.status != RecordStatus::kDoesNotFit || s.method != m) continue;
    const bool proves = std::isfinite(s.minimum_peak_mib) ? s.minimum_peak_mib > budget_mib
                                                          : std::isfinite(s.budget_mib) && s.budget_mib >= budget_mib;
    if (!proves) continue;
    if (p.kind != BudgetPick::Kind::kDoesNotFit || s.minimum_peak_mib > p.minimum_peak_mib) {
      p.kind = BudgetPick::Kind::kDoesNotFit;
      p.unfit_task = s.task;
      p.minimum_peak_mib = s.minimum_peak_mib;
    }
  }
  if (p.kind == BudgetPick::Kind::kDoesNotFit) return p;
  if (partial >= 0) {
    p.kind = BudgetPick::Kind::kIncomplete;
    p.row = partial;
    p.fit_tasks = int(t.rows[size_t(partial)].cells.size());
  }
  return p;
}

void add_pareto_and_budgets(const ReportOptions& opts, Table& t) {
  std::vector<size_t> order;
  for (size_t i = 0; i < t.rows.size(); ++i)
    if (t.rows[i].complete && std::isfinite(t.rows[i].mean)) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const double pa = t.rows[a].peak_train_mib, pb = t.rows[b].peak_train_mib;  // the table's and plot's column
    return pa != pb ? pa < pb : t.rows[a].mean > t.rows[b].mean;
  });
  double best = -1;
  for (size_t i : order)
    if (t.rows[i].mean > best) {
      best = t.rows[i].mean;
      t.pareto.push_back(i);
    }
  t.budgets = opts.budgets;
  std::sort(t.budgets.begin(), t.budgets.end());
  if (t.budgets.empty()) return;
  std::vector<std::string> methods;
  for (auto& r : t.rows)
    if (std::find(methods.begin(), methods.end(), r.method) == methods.end()) methods.push_back(r.method);
  for (auto& s : t.records.skipped)
    if (s.status == RecordStatus::kDoesNotFit && std::find(methods.begin(), methods.end(), s.method) == methods.end())
      methods.push_back(s.method);
  for (auto& m : methods) {
    std::vector<BudgetPick> picks;
    for (int64_t budget : t.budgets) picks.push_back(budget_pick(t, m, double(budget) / 1048576.0));
    t.budget_best.push_back({m, picks});
  }
}

}  // namespace

Table build_table(Records records, const ReportOptions& opts, const Reference& reference) {
  Table t;
  t.records = std::move(records);
  t.warnings = t.records.warnings;
  auto& runs = t.records.runs;
  if (runs.empty()) fail_without_runs(t.records);
  PETL_CHECK(!is_fewshot(t.records), "few-shot records (benchmark \"", kFewShotBenchmark,
             "\") are tabulated by build_fewshot_table");
  split_selection_runs(t);
  drop_duplicates(runs, t.warnings);
  take_main_finals(t);
  check_mixed_properties(runs, opts, t.warnings);
  warn_test_lists(runs, t.warnings);
  const std::vector<std::string> methods = layout_columns(runs, t);
  build_rows(
      runs, methods, [](const Run& r) { return r.task; }, t.rows, t.varying);
  for (auto& row : t.rows) row_stats(runs, t, row);
  write_caption(runs, t);
  add_reference(reference, t);
  add_notes(t.records, methods, t.varying, "a task", t.notes);
  build_selection(t);
  add_pareto_and_budgets(opts, t);
  return t;
}

}  // namespace petl::report

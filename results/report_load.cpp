// `petl report`, loading: result files and directories → validated Runs (every petl.result line
// goes through record_from_json, results/record.h, the one reader of the schema), and the
// reference CSV. Problems are collected and thrown together, each naming file:line.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/text.h"
#include "results/report.h"
#include "results/report_internal.h"

namespace petl::report {
namespace fs = std::filesystem;
using namespace internal;

namespace {

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

// A sweep journal's file name (harness/sweep/sweep_journal.h, journal_path): results.jsonl, or
// results.shard-I-of-N.jsonl under --shard I/N. The results layer sits below the sweep's, so the
// name is recognised here; tests/io/test_report.cpp builds its sweep folders with journal_path.
bool journal_file_name(const std::string& name) {
  if (name == "results.jsonl") return true;
  const std::string head = "results.shard-", tail = ".jsonl";
  if (name.size() <= head.size() + tail.size() || name.rfind(head, 0) != 0 ||
      name.compare(name.size() - tail.size(), tail.size(), tail) != 0)
    return false;
  const std::string mid = name.substr(head.size(), name.size() - head.size() - tail.size());  // "I-of-N"
  const size_t of = mid.find("-of-");
  auto digits = [](const std::string& x) {
    return !x.empty() && std::all_of(x.begin(), x.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  };
  return of != std::string::npos && digits(mid.substr(0, of)) && digits(mid.substr(of + 4));
}

// True when one of the file's first lines is a JSON object with a "sweep_key" string: a sweep's
// journal (the farm writes it on every line, training and cache builds alike). Only the head is
// read: every results.jsonl under a folder is looked at, and a journal can be large.
bool has_sweep_lines(const fs::path& file) {
  std::ifstream is(file);
  std::string line;
  for (int n = 0; n < 16 && std::getline(is, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++n;
    if (line.find("\"sweep_key\"") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("sweep_key") && j["sweep_key"].is_string()) return true;
  }
  return false;
}

// The files a folder is read through when it is a run's output folder, else empty (read every
// *.jsonl below it). A sweep's folder: its journal(s) only, never the per-job copies under
// jobs/<key>/ (the same records again). A demo's folder: results.jsonl, not last_demo.jsonl (a
// copy of the last invocation's records). `note` says what was read and what was left.
std::vector<std::string> output_folder_files(const fs::path& dir, std::string& note) {
  std::error_code ec;
  std::vector<std::string> journals;
  bool sweep = false, demo_copy = false, plain_results = false;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    if (name == "last_demo.jsonl") demo_copy = true;
    if (!journal_file_name(name)) continue;
    journals.push_back(it->path().string());
    if (name == "results.jsonl") plain_results = true;
    sweep = sweep || has_sweep_lines(it->path());
  }
  std::sort(journals.begin(), journals.end());
  if (sweep) {
    int copies = 0;
    const fs::path jobs = dir / "jobs";
    if (fs::is_directory(jobs, ec))
      for (auto it = fs::recursive_directory_iterator(jobs, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        copies += it->is_regular_file(ec) && it->path().extension() == ".jsonl";
    note = dir.string() + " is a sweep's output folder: read its journal " + join(journals, ", ") + " only" +
           (copies ? " (not the " + std::to_string(copies) + " per-job cop" + (copies == 1 ? "y" : "ies") + " under " +
                         jobs.string() + "/)"
                   : std::string()) +
           "; name a file to read another.";
    return journals;
  }
  if (demo_copy && plain_results) {
    const std::string results = (dir / "results.jsonl").string();
    note = dir.string() + " is a demo's output folder: read " + results + " only (every record; " +
           (dir / "last_demo.jsonl").string() + " is a copy of the last run's); name a file to read another.";
    return {results};
  }
  return {};
}

// The files of the inputs: a file as named; a directory's *.jsonl (recursively, sorted), read
// through its journal where it (or a folder below it) is a sweep's or a demo's output folder; a
// file named twice is read once.
std::vector<std::string> result_files(const std::vector<std::string>& inputs, std::vector<std::string>& notes) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (auto& in : inputs) {
    std::error_code ec;
    fs::path p(in);
    PETL_CHECK(fs::exists(p, ec), "result path '", in, "' does not exist");
    std::vector<std::string> files;
    if (fs::is_directory(p, ec)) {
      std::string note;
      files = output_folder_files(p, note);
      if (!note.empty()) notes.push_back(note);
      const bool walk = files.empty();
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           walk && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) break;
        if (it->is_directory(ec)) {
          std::string sub_note;
          auto sub = output_folder_files(it->path(), sub_note);
          if (!sub.empty()) {
            it.disable_recursion_pending();  // read through its journal, not the copies below it
            notes.push_back(sub_note);
            for (auto& f : sub) files.push_back(f);
          }
          continue;
        }
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
      out.push_back(f);
    }
  }
  return out;
}

// A line as JSON; on a parse error, adds "<where>: invalid JSON: ..." and returns discarded.
json parse_line(const std::string& line, const std::string& where, Problems& problems) {
  try {
    return json::parse(line);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    std::string m = e.what();
    if (auto b = m.find("] "); m.rfind("[json.exception", 0) == 0 && b != std::string::npos) m = m.substr(b + 2);
    problems.add(where + ": invalid JSON: " + m);
    return json(json::value_t::discarded);
  }
}

Skipped skipped_of(const Record& rec, const Source& src) {
  Skipped s;
  s.src = src;
  s.status = rec.status;
  s.method = rec.method.empty() ? "?" : rec.method;
  s.task = rec.task.empty() ? "?" : rec.task;
  s.seed = rec.seed;
  s.message = rec.error;
  if (rec.status == RecordStatus::kDoesNotFit) {
    const auto mb = rec.memory_budget.is_object() ? rec.memory_budget : nlohmann::json::object();
    s.message = str_cat("does not fit a memory budget of ", mb.value("budget_mib", 0.0), " MiB (minimum peak ",
                        mb.value("minimum_peak_mib", 0.0), " MiB)");
    auto number = [&](const char* key) {
      auto it = mb.find(key);
      return it != mb.end() && it->is_number() ? it->get<double>() : kNaN;
    };
    s.budget_mib = number("budget_mib");
    s.minimum_peak_mib = number("minimum_peak_mib");
  }
  return s;
}

// The accuracy of an ok record under `protocol` ("" → its own headline protocol); false (and a
// problem) when the record has no number for that protocol.
bool take_accuracy(const Record& rec, const std::string& protocol, Run& r, const std::string& where,
                   Problems& problems) {
  if (protocol.empty()) {
    r.protocol = to_string(rec.protocol);
    r.accuracy = *rec.accuracy;
    return true;
  }
  auto acc = rec.accuracy_under(protocol);
  if (!acc) {
    problems.add(where + ": accuracy_by_protocol has no number for protocol '" + protocol +
                 "' (it has: " + join(rec.protocols(), ", ") + ")");
    return false;
  }
  r.protocol = protocol;
  r.accuracy = *acc;
  return true;
}

// Fills r (src, protocol and accuracy already set) from a validated ok record: numbers, backbone,
// preprocessing and the row identity. headline: the accuracy is the record's own protocol.
void fill_run(Record rec, bool headline, Run& r) {
  r.method = rec.method;
  r.task = rec.task;
  r.seed = rec.seed;
  r.benchmark = rec.benchmark;
  r.stage = rec.stage;
  const bool fewshot = rec.benchmark == kFewShotBenchmark;
  if (fewshot) {  // take_fewshot checked both
    r.shots = *rec.shots;
    r.split_seed = *rec.split_seed;
  }
  r.trainable_params = double(*rec.trainable_params);
  r.peak_train_mib = rec.memory["peak_train_mib"].get<double>();
  if (auto it = rec.memory.find("peak_eval_mib"); it != rec.memory.end() && it->is_number() && it->get<double>() > 0)
    r.peak_eval_mib = it->get<double>();  // 0: the job evaluated nothing it measured (older records: absent)
  if (rec.timing) {
    r.train_s = rec.timing->train_s;
    r.wall_s = rec.timing->wall_s;
  }
  for (auto& e : rec.evals) r.evals.emplace_back(double(e.epoch), e.test_acc);
  const std::string arch = member_text(rec.backbone, "arch", "?");
  r.backbone_sha256 = rec.backbone["sha256"].get<std::string>();
  // The pre-training family (records of MAE, MoCo v3, CLIP, DINOv2 backbones say it; supervised
  // ViTs' records have no such field) and a resampled position embedding are part of what the
  // numbers are of: the caption names them, and another resampling is another row identity.
  const std::string family = member_text(rec.backbone, "family", "");
  std::string resampled;
  if (auto it = rec.backbone.find("pos_embed_resampled"); it != rec.backbone.end() && it->is_object())
    resampled = member_text(*it, "method", "?");
  std::string about = family.empty() ? "" : family + " pre-training, ";
  if (!resampled.empty())
    about += "pos_embed resampled " + member_text(rec.backbone["pos_embed_resampled"], "from_grid", "?") + "→" +
             member_text(rec.backbone["pos_embed_resampled"], "to_grid", "?") + " (" + resampled + "), ";
  r.backbone = arch + " (" + about + "sha256 " + r.backbone_sha256.substr(0, 12) + ")";
  const json& recipe = rec.settings["recipe"];
  std::string norm = member_text(rec.data, "normalisation", member_text(recipe, "normalisation", "?"));
  std::string img = member_text(rec.data, "image_size", member_text(rec.memory, "image_size", ""));
  r.preprocessing = norm + (img.empty() ? "" : ", " + img + " px");
  for (auto& [k, v] : rec.settings["method"].items())
    if (!k.empty() && k[0] != '_') r.identity[k] = value_text(v);
  for (auto& [k, v] : recipe.items()) {
    // Columns, not settings: a few-shot job's lists follow from its shots and split seed.
    if (k == "seed" || (fewshot && (k == "shots" || k == "split_seed" || k == "train_split" || k == "test_split")))
      continue;
    r.identity[r.identity.count(k) ? "recipe." + k : k] = value_text(v);
  }
  // How the batch was split (petl run --micro-batch) or bounded (--memory-budget): other rows.
  if (auto it = rec.settings.find("micro_batch"); it != rec.settings.end()) r.identity["micro_batch"] = value_text(*it);
  // bf16 runs are other rows (fp32 records, older ones without the field included, are one).
  if (auto it = rec.settings.find("precision"); it != rec.settings.end() && value_text(*it) != "fp32")
    r.identity["precision"] = value_text(*it);
  if (rec.memory_budget.is_object())
    r.identity["memory_budget_mib"] = value_text(rec.memory_budget.value("budget_mib", nlohmann::json()));
  // Properties that must agree across a table; with allow_mixed they split rows instead.
  r.identity["backbone"] = arch + "@" + r.backbone_sha256.substr(0, 8) + (resampled.empty() ? "" : "+" + resampled);
  if (!img.empty()) r.identity["image_size"] = img;
  if (headline) r.identity["protocol"] = r.protocol;
  r.record = std::move(rec);
}

// A few-shot record must say its shots (> 0) and split seed (>= 0); false (and a problem) when not.
bool check_fewshot(const Record& rec, const std::string& where, Problems& problems) {
  if (rec.benchmark != kFewShotBenchmark) return true;
  std::vector<std::string> bad;
  if (!rec.shots || *rec.shots <= 0)
    bad.push_back(rec.shots ? "shots " + std::to_string(*rec.shots) + " (expected > 0)" : "no shots");
  if (!rec.split_seed || *rec.split_seed < 0)
    bad.push_back(rec.split_seed ? "split_seed " + std::to_string(*rec.split_seed) + " (expected >= 0)"
                                 : "no split_seed");
  if (bad.empty()) return true;
  problems.add(where + ": few-shot record (benchmark \"" + kFewShotBenchmark + "\") with " + join(bad, " and "));
  return false;
}

// Reads one file's lines into out; problems name file:line.
void read_file(const std::string& f, const std::string& protocol, Records& out, Problems& problems) {
  std::ifstream is(f);
  PETL_CHECK(is, "cannot open result file '", f, "'");
  std::string line;
  int lineno = 0;
  while (std::getline(is, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Source src{f, lineno};
    const std::string where = src.where();
    if (is.eof()) {  // the last line has no newline: a writer killed mid-write (io/journal.h cuts it)
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        out.warnings.push_back(str_cat(where, ": torn last line (", line.size(),
                                       " bytes, no newline: a writer was stopped mid-write) skipped"));
        continue;
      }
    }
    json j = parse_line(line, where, problems);
    if (j.is_discarded()) continue;
    if (const std::string schema = schema_of(j); !schema.empty() && !is_result_record(j)) {
      out.other_schemas[schema]++;  // e.g. a sweep journal's own lines
      continue;
    }
    Record rec;
    try {
      rec = record_from_json(j, where);
    } catch (const Error& e) {
      problems.add(e.what());
      continue;
    }
    if (!rec.ok()) {
      out.skipped.push_back(skipped_of(rec, src));
      continue;
    }
    if (rec.stage == kStageSearch) {  // val_select search point: val200 accuracies, never a result
      ++out.val_select_search;
      continue;
    }
    Run r;
    r.src = src;
    if (!check_fewshot(rec, where, problems) || !take_accuracy(rec, protocol, r, where, problems)) continue;
    fill_run(std::move(rec), protocol.empty(), r);
    out.runs.push_back(std::move(r));
  }
}

}  // namespace

Records load_records(const std::vector<std::string>& inputs, const std::string& protocol) {
  PETL_CHECK(!inputs.empty(), "no result files or directories given");
  Records out;
  out.files = result_files(inputs, out.read_notes);
  Problems problems;
  for (auto& f : out.files) read_file(f, protocol, out, problems);
  problems.throw_if_any("invalid result records:");
  return out;
}

// ------------------------------------------------------------------ reference CSV

Reference load_reference(const std::string& file, const std::string& label) {
  std::ifstream is(file);
  PETL_CHECK(is, "cannot open reference CSV '", file, "'");
  Reference ref;
  ref.file = file;
  ref.label = !label.empty()                                    ? label
              : fs::path(file).filename() == kReferenceFileName ? std::string(kDefaultReferenceLabel)
                                                                : fs::path(file).filename().string();
  std::string line;
  int lineno = 0;
  std::vector<std::string> header;
  int c_method = -1, c_setting = -1, c_kind = -1, c_mean = -1, c_params = -1;
  std::vector<std::pair<int, std::string>> task_cols;
  // Columns of a report.csv that are not tasks (those ending in _mean or _std neither).
  static const std::set<std::string> reserved = {
      "kind",     "method", "setting",       "source",  "mean",   "params_m", "peak_train_mib", "n_tasks",
      "complete", "params", "peak_eval_mib", "train_s", "wall_h", "mean_std", "mean_n_seeds"};
  while (std::getline(is, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file + ":" + std::to_string(lineno);
    auto f = csv_split(line, where);
    if (header.empty()) {
      header = f;
      for (int i = 0; i < int(f.size()); ++i) {
        const std::string& h = f[i];
        if (h == "method")
          c_method = i;
        else if (h == "setting")
          c_setting = i;
        else if (h == "kind")
          c_kind = i;
        else if (h == "mean")
          c_mean = i;
        else if (h == "params_m")
          c_params = i;
        else if (reserved.count(h) ||
                 (h.size() > 5 && (h.rfind("_mean") == h.size() - 5 || h.rfind("_std") == h.size() - 4)))
          continue;
        else if (!h.empty())
          task_cols.emplace_back(i, h);
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

}  // namespace petl::report

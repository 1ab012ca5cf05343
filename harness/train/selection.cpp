// Protocol val_select (see selection.h).
#include "harness/train/selection.h"

#include <algorithm>
#include <filesystem>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/paths.h"
#include "core/text.h"
#include "io/journal.h"
#include "results/record.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

const char* const kSelectionRule =
    "the (grid point, epoch count) with the highest val200 accuracy over every search evaluation; ties: the "
    "smaller epoch count, then the earlier grid point";

namespace {

// The --set values of a search record that make its grid point (the requested settings).
std::map<std::string, std::string> point_of(const Record& r) {
  std::map<std::string, std::string> sets;
  if (r.settings.is_object() && r.settings.contains("requested") && r.settings["requested"].is_object())
    for (auto& [k, v] : r.settings["requested"].items()) sets[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return sets;
}

// The last ok search record of `file` for the final job's method, task and training seed.
SelectionCandidate read_candidate(const std::string& file, const JobSpec& spec) {
  std::error_code ec;
  PETL_CHECK(fs::is_regular_file(file, ec), "--select-from ", file, ": no such file (a search job's results.jsonl)");
  const auto lines = io::read_json_lines(file, "search results");
  std::optional<Record> found;
  for (size_t i = 0; i < lines.objects.size(); ++i) {
    if (!is_result_record(lines.objects[i])) continue;
    Record r = record_from_json(lines.objects[i], file + ":" + std::to_string(lines.line_numbers[i]));
    if (r.ok() && r.stage == "search" && r.method == spec.method) found = std::move(r);
  }
  PETL_CHECK(found.has_value(), "--select-from ", file, ": no ok search record of method ", spec.method,
             " (stage \"search\", from `petl run --protocol val_select --stage search`)");
  PETL_CHECK(spec.seed == JobSpec::kRecipeValue || found->seed == spec.seed, "--select-from ", file,
             ": its search record trained with seed ", found->seed, ", the final run asks for seed ", spec.seed);
  PETL_CHECK(!found->evals.empty(), "--select-from ", file, ": the search record has no evaluation");
  SelectionCandidate c;
  c.file = file;
  c.job_key = found->job_key;
  c.sets = point_of(*found);
  for (const auto& e : found->evals) c.evals.emplace_back(e.epoch, e.test_acc);
  return c;
}

// --set values `sets` ("key=value", in order) with `over` replacing or adding keys, sorted by key.
std::vector<std::string> with_sets(const std::vector<std::string>& sets,
                                   const std::map<std::string, std::string>& over) {
  std::map<std::string, std::string> m;
  for (const auto& kv : sets) {
    const auto eq = kv.find('=');
    if (eq != std::string::npos) m[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : over) m[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k + "=" + v);
  return out;
}

}  // namespace

json Selection::to_json() const {
  json cands = json::array(), keys = json::array();
  for (const auto& c : candidates) {
    json evals = json::array();
    for (const auto& [epoch, acc] : c.evals) evals.push_back({{"epoch", epoch}, {"val_acc", acc}});
    cands.push_back({{"job_key", c.job_key}, {"file", c.file}, {"sets", c.sets}, {"evals", evals}});
    keys.push_back(c.job_key);
  }
  const auto& ch = candidates.at(chosen);
  return {
      {"split_searched", "train800 -> val200"},
      {"search_job_keys", keys},
      {"rule", kSelectionRule},
      {"chosen",
       {{"grid_index", chosen}, {"job_key", ch.job_key}, {"sets", ch.sets}, {"epochs", epochs}, {"val_acc", val_acc}}},
      {"candidates", cands}};
}

Selection select_on_val(const JobSpec& spec) {
  PETL_CHECK(!spec.select_from.empty(), "protocol val_select: no search results to select from (--select-from)");
  Selection s;
  for (const auto& f : spec.select_from) s.candidates.push_back(read_candidate(f, spec));
  bool any = false;
  for (size_t i = 0; i < s.candidates.size(); ++i)
    for (const auto& [epoch, acc] : s.candidates[i].evals) {
      // Higher accuracy wins; at equal accuracy the smaller epoch count, then the earlier point.
      const bool better = !any || acc > s.val_acc || (acc == s.val_acc && epoch < s.epochs);
      if (!better) continue;
      any = true;
      s.chosen = i;
      s.epochs = epoch;
      s.val_acc = acc;
    }
  return s;
}

JobSpec final_run_spec(const JobSpec& final_spec, const Selection& s) {
  JobSpec r = final_spec;
  r.set = with_sets(final_spec.set, s.candidates.at(s.chosen).sets);
  r.epochs = s.epochs;
  r.stage.clear();
  return r;
}

JobSpec search_spec(const JobSpec& base, const std::map<std::string, std::string>& point) {
  JobSpec s = base;
  s.stage = "search";
  s.select_from.clear();
  s.set = with_sets(base.set, point);
  return s;
}

std::map<std::string, std::vector<std::string>> default_val_grid(const std::string& method, std::string* source) {
  const std::string file = config_dir() + "/val_grids.yaml";
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    PETL_FAIL(file, ":", e.mark.line + 1, ": ", e.msg);
  }
  std::map<std::string, std::vector<std::string>> grid;
  const YAML::Node m = root[method];
  if (!m) return grid;
  PETL_CHECK(m.IsMap(), file, ":", m.Mark().line + 1, ": method '", method,
             "': expected {grid: {key: [values]}, source: ...}");
  if (source && m["source"]) *source = m["source"].as<std::string>();
  const YAML::Node g = m["grid"];
  if (!g) return grid;
  PETL_CHECK(g.IsMap(), file, ":", g.Mark().line + 1, ": method '", method, "': grid must be a map key → list");
  for (auto it = g.begin(); it != g.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    PETL_CHECK(it->second.IsSequence() && it->second.size() > 0, file, ":", it->second.Mark().line + 1, ": method '",
               method, "': grid key '", key, "' needs a non-empty list of values");
    for (const auto& v : it->second) grid[key].push_back(v.Scalar());
  }
  return grid;
}

}  // namespace petl

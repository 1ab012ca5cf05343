// The result record (schema petl.result v1): the only writer (to_json) and the only reader
// (record_from_json) of the JSON lines in results.jsonl and sweep journals. See record.h.
#include "results/record.h"

#include <cmath>
#include <set>

#include "core/error.h"
#include "core/text.h"

namespace petl {
using json = nlohmann::json;

namespace {

enum class Kind { kString, kNumber, kInteger, kObject, kArray, kBool };

const char* expected_text(Kind k) {
  switch (k) {
    case Kind::kString:
      return "a string";
    case Kind::kNumber:
      return "a number";
    case Kind::kInteger:
      return "an integer";
    case Kind::kObject:
      return "an object";
    case Kind::kArray:
      return "an array";
    case Kind::kBool:
      return "true or false";
  }
  return "?";
}

bool is_kind(const json& v, Kind k) {
  switch (k) {
    case Kind::kString:
      return v.is_string();
    case Kind::kNumber:
      return v.is_number();
    case Kind::kInteger:
      return v.is_number_integer();
    case Kind::kObject:
      return v.is_object();
    case Kind::kArray:
      return v.is_array();
    case Kind::kBool:
      return v.is_boolean();
  }
  return false;
}

// What was found instead, short: `string "42"`, `array`, `number 1.5`.
std::string found_text(const json& v) {
  if (v.is_object() || v.is_array()) return v.type_name();
  std::string d = v.dump();
  if (d.size() > 40) d = d.substr(0, 40) + "…";
  return std::string(v.type_name()) + " " + d;
}

// Reads typed fields of one JSON object and collects every problem, so one message names all of
// them: "missing field(s): a, b; mistyped field(s): c (expected an integer, got string "42")".
class FieldReader {
 public:
  explicit FieldReader(const json& root) : root_(root) {}

  // The value at a dotted path ("memory.peak_train_mib") when it has the kind; nullptr when it is
  // absent or null (noted as missing when required) or of another kind (noted as mistyped).
  const json* at(const std::string& path, Kind kind, bool required) {
    const json* v = find(path);
    if (!v || v->is_null()) {
      if (required) missing_.push_back(path);
      return nullptr;
    }
    if (!is_kind(*v, kind)) {
      mistyped(path, expected_text(kind), *v);
      return nullptr;
    }
    return v;
  }
  std::string string_at(const std::string& path, bool required = false) {
    const json* v = at(path, Kind::kString, required);
    return v ? v->get<std::string>() : std::string();
  }
  std::optional<double> number_at(const std::string& path, bool required = false) {
    const json* v = at(path, Kind::kNumber, required);
    return v ? std::optional<double>(v->get<double>()) : std::nullopt;
  }
  std::optional<int64_t> integer_at(const std::string& path, bool required = false) {
    const json* v = at(path, Kind::kInteger, required);
    return v ? std::optional<int64_t>(v->get<int64_t>()) : std::nullopt;
  }
  // An object section kept verbatim; null when absent.
  json object_at(const std::string& path, bool required = false) {
    const json* v = at(path, Kind::kObject, required);
    return v ? *v : json();
  }

  void mistyped(const std::string& field, const std::string& expected, const json& found) {
    mistyped_.push_back(field + " (expected " + expected + ", got " + found_text(found) + ")");
  }
  void problem(const std::string& text) { other_.push_back(text); }

  // Throws "<where>: <every problem>" when there is any.
  void throw_if_any(const std::string& where) const {
    std::vector<std::string> parts;
    if (!missing_.empty()) parts.push_back("missing field(s): " + join(missing_, ", "));
    if (!mistyped_.empty()) parts.push_back("mistyped field(s): " + join(mistyped_, ", "));
    parts.insert(parts.end(), other_.begin(), other_.end());
    if (!parts.empty()) throw Error(where + ": " + join(parts, "; "));
  }

 private:
  const json* find(const std::string& dotted) const {
    const json* cur = &root_;
    for (const std::string& key : split(dotted, '.')) {
      if (!cur->is_object()) return nullptr;
      auto it = cur->find(key);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    }
    return cur;
  }

  const json& root_;
  std::vector<std::string> missing_, mistyped_, other_;
};

// Top-level fields this module knows; everything else goes to Record::extra.
const std::set<std::string>& known_fields() {
  static const std::set<std::string> k = {"schema",
                                          "schema_version",
                                          "status",
                                          "error",
                                          "method",
                                          "task",
                                          "seed",
                                          "protocol",
                                          "benchmark",
                                          "shots",
                                          "split_seed",
                                          "stage",
                                          "selection",
                                          "accuracy",
                                          "accuracy_by_protocol",
                                          "evals",
                                          "epoch_train_loss",
                                          "trainable_params",
                                          "backbone_params",
                                          "timing",
                                          "memory",
                                          "settings",
                                          "backbone",
                                          "data",
                                          "provenance",
                                          "job_key",
                                          "checkpoint",
                                          "feature_cache",
                                          "data_parallel",
                                          "sweep_key",
                                          "sweep",
                                          "log",
                                          "reused",
                                          "memory_budget",
                                          "resumed",
                                          "bundle",
                                          "sweep_rank",
                                          "sweep_wall_s"};
  return k;
}

const std::set<std::string>& known_provenance_fields() {
  static const std::set<std::string> k = {
      "git_commit", "host",       "libtorch_version", "time_utc",           "device", "threads", "threads_chosen_by",
      "cores",      "free_cores", "omp_wait_policy",  "omp_wait_policy_by", "argv"};
  return k;
}

// Reads accuracy, accuracy_by_protocol (best_of_10, final, best_of_10_epochs, the rest verbatim).
void read_accuracy(FieldReader& f, bool ok, Record& r) {
  const json* abp = f.at("accuracy_by_protocol", Kind::kObject, ok);
  if (abp) {
    r.best_of_10 = f.number_at("accuracy_by_protocol.best_of_10");
    r.final_accuracy = f.number_at("accuracy_by_protocol.final");
    if (const json* e = f.at("accuracy_by_protocol.best_of_10_epochs", Kind::kArray, false)) {
      for (size_t i = 0; i < e->size(); ++i) {
        if ((*e)[i].is_number_integer())
          r.best_of_10_epochs.push_back((*e)[i].get<int>());
        else
          f.mistyped("accuracy_by_protocol.best_of_10_epochs[" + std::to_string(i) + "]", "an integer", (*e)[i]);
      }
    }
    for (auto& [k, v] : abp->items())
      if (k != "best_of_10" && k != "final" && k != "best_of_10_epochs") r.other_protocols[k] = v;
  }
}

// Reads evals [{epoch, test_acc, train_loss}]; the first bad entry is named.
void read_evals(FieldReader& f, bool ok, Record& r) {
  const json* evals = f.at("evals", Kind::kArray, ok);
  if (!evals) return;
  for (size_t i = 0; i < evals->size(); ++i) {
    const json& e = (*evals)[i];
    const bool good = e.is_object() && e.contains("epoch") && e["epoch"].is_number() && e.contains("test_acc") &&
                      e["test_acc"].is_number();
    const double epoch = good ? e["epoch"].get<double>() : 0;
    if (!good || epoch != std::floor(epoch)) {
      f.problem("evals[" + std::to_string(i) +
                "] lacks a numeric epoch or test_acc (expected {\"epoch\": integer, \"test_acc\": number, "
                "\"train_loss\": number})");
      r.evals.clear();
      return;
    }
    EvalPoint p;
    p.epoch = int(epoch);
    p.test_acc = e["test_acc"].get<double>();
    if (auto l = e.find("train_loss"); l != e.end() && l->is_number()) p.train_loss = l->get<double>();
    r.evals.push_back(p);
  }
}

void read_timing(FieldReader& f, Record& r) {
  if (!f.at("timing", Kind::kObject, false)) return;
  Timing t;
  t.wall_s = f.number_at("timing.wall_s").value_or(0);
  t.train_s = f.number_at("timing.train_s").value_or(0);
  t.eval_s = f.number_at("timing.eval_s").value_or(0);
  t.train_images_per_s = f.number_at("timing.train_images_per_s").value_or(0);
  r.timing = t;
}

// Provenance fields into p; `prefix` is "provenance." inside a record, "" on its own.
void read_provenance(FieldReader& f, const json& obj, const std::string& prefix, Provenance& p) {
  p.git_commit = f.string_at(prefix + "git_commit");
  p.host = f.string_at(prefix + "host");
  p.libtorch_version = f.string_at(prefix + "libtorch_version");
  p.time_utc = f.string_at(prefix + "time_utc");
  p.device = f.string_at(prefix + "device");
  p.threads = int(f.integer_at(prefix + "threads").value_or(0));
  p.threads_chosen_by = f.string_at(prefix + "threads_chosen_by");
  p.cores = int(f.integer_at(prefix + "cores").value_or(0));
  p.free_cores = f.number_at(prefix + "free_cores");
  p.omp_wait_policy = f.string_at(prefix + "omp_wait_policy");
  p.omp_wait_policy_by = f.string_at(prefix + "omp_wait_policy_by");
  if (const json* a = f.at(prefix + "argv", Kind::kArray, false)) {
    for (size_t i = 0; i < a->size(); ++i) {
      if ((*a)[i].is_string())
        p.argv.push_back((*a)[i].get<std::string>());
      else
        f.mistyped(prefix + "argv[" + std::to_string(i) + "]", "a string", (*a)[i]);
    }
  }
  for (auto& [k, v] : obj.items())
    if (!known_provenance_fields().count(k)) p.extra[k] = v;
}

// The version and status checks that come before any field: one message each.
void check_header(const json& j, const std::string& where) {
  PETL_CHECK(j.is_object(), where, ": not a JSON object");
  const std::string schema = schema_of(j);
  PETL_CHECK(!schema.empty(), where, ": no \"schema\" string — not a petl result record");
  PETL_CHECK(schema == kRecordSchema, where, ": schema '", schema, "' is not ", kRecordSchema);
  auto v = j.find("schema_version");
  PETL_CHECK(v != j.end() && v->is_number_integer(), where, ": ", kRecordSchema,
             " record without an integer \"schema_version\"");
  PETL_CHECK(v->get<int64_t>() == kRecordSchemaVersion, where, ": schema_version ", v->dump(),
             " is not supported (this petl reads ", kRecordSchema, " schema_version ", kRecordSchemaVersion, ")");
  auto st = j.find("status");
  PETL_CHECK(st != j.end() && st->is_string(), where, ": missing field(s): status");
  const std::string status = *st;
  PETL_CHECK(try_parse_enum<RecordStatus>(status), where, ": unknown status '", status, "' (expected ",
             enum_choices<RecordStatus>(""), ")");
}

json provenance_json(const Provenance& p) {
  json o = p.extra.is_object() ? p.extra : json::object();
  auto put = [&](const char* k, const std::string& v) {
    if (!v.empty()) o[k] = v;
  };
  put("git_commit", p.git_commit);
  put("host", p.host);
  put("libtorch_version", p.libtorch_version);
  put("time_utc", p.time_utc);
  put("device", p.device);
  o["threads"] = p.threads;
  put("threads_chosen_by", p.threads_chosen_by);
  if (p.cores > 0) o["cores"] = p.cores;
  if (p.free_cores) o["free_cores"] = *p.free_cores;
  put("omp_wait_policy", p.omp_wait_policy);
  put("omp_wait_policy_by", p.omp_wait_policy_by);
  o["argv"] = p.argv;
  return o;
}

}  // namespace

// ------------------------------------------------------------------ Record helpers

std::optional<double> Record::accuracy_under(const std::string& protocol) const {
  if (protocol == "best_of_10") return best_of_10;
  if (protocol == "final") return final_accuracy;
  auto it = other_protocols.find(protocol);
  if (it != other_protocols.end() && it->is_number()) return it->get<double>();
  return std::nullopt;
}

std::vector<std::string> Record::protocols() const {
  std::set<std::string> names;
  if (best_of_10) names.insert("best_of_10");
  if (final_accuracy) names.insert("final");
  for (auto& [k, v] : other_protocols.items())
    if (v.is_number()) names.insert(k);
  return {names.begin(), names.end()};
}

bool is_result_record(const json& j) { return schema_of(j) == kRecordSchema; }

std::string schema_of(const json& j) {
  if (!j.is_object()) return "";
  auto it = j.find("schema");
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// ------------------------------------------------------------------ writing

json to_json(const Provenance& p) { return provenance_json(p); }

json to_json(const Record& r) {
  json o = r.extra.is_object() ? r.extra : json::object();
  o["schema"] = kRecordSchema;
  o["schema_version"] = kRecordSchemaVersion;
  o["status"] = to_string(r.status);
  if (r.status == RecordStatus::kFailed || !r.error.empty()) o["error"] = r.error;
  o["method"] = r.method;
  o["task"] = r.task;
  o["seed"] = r.seed;
  o["protocol"] = to_string(r.protocol);
  if (!r.benchmark.empty()) o["benchmark"] = r.benchmark;
  if (r.shots) o["shots"] = *r.shots;
  if (r.split_seed) o["split_seed"] = *r.split_seed;
  if (!r.stage.empty()) o["stage"] = r.stage;
  if (!r.selection.is_null()) o["selection"] = r.selection;
  if (r.accuracy) o["accuracy"] = *r.accuracy;
  if (r.ok() || r.best_of_10 || r.final_accuracy || !r.best_of_10_epochs.empty() || !r.other_protocols.empty()) {
    json abp = r.other_protocols.is_object() ? r.other_protocols : json::object();
    if (r.best_of_10) abp["best_of_10"] = *r.best_of_10;
    if (r.final_accuracy) abp["final"] = *r.final_accuracy;
    abp["best_of_10_epochs"] = r.best_of_10_epochs;
    o["accuracy_by_protocol"] = abp;
  }
  if (r.ok() || !r.evals.empty()) {
    json evals = json::array();
    for (auto& e : r.evals)
      evals.push_back({{"epoch", e.epoch}, {"test_acc", e.test_acc}, {"train_loss", e.train_loss}});
    o["evals"] = evals;
  }
  if (r.ok() || !r.epoch_train_loss.empty()) o["epoch_train_loss"] = r.epoch_train_loss;
  if (r.trainable_params) o["trainable_params"] = *r.trainable_params;
  if (r.backbone_params) o["backbone_params"] = *r.backbone_params;
  if (r.timing)
    o["timing"] = {{"wall_s", r.timing->wall_s},
                   {"train_s", r.timing->train_s},
                   {"eval_s", r.timing->eval_s},
                   {"train_images_per_s", r.timing->train_images_per_s}};
  const std::pair<const char*, const json*> sections[] = {{"memory", &r.memory},
                                                          {"settings", &r.settings},
                                                          {"backbone", &r.backbone},
                                                          {"data", &r.data},
                                                          {"feature_cache", &r.feature_cache},
                                                          {"data_parallel", &r.data_parallel},
                                                          {"memory_budget", &r.memory_budget},
                                                          {"resumed", &r.resumed},
                                                          {"bundle", &r.bundle}};
  for (auto& [name, v] : sections)
    if (!v->is_null()) o[name] = *v;
  if (r.provenance) o["provenance"] = provenance_json(*r.provenance);
  const std::pair<const char*, const std::string*> strings[] = {{"job_key", &r.job_key},
                                                                {"checkpoint", &r.checkpoint},
                                                                {"sweep_key", &r.sweep_key},
                                                                {"sweep", &r.sweep},
                                                                {"log", &r.log}};
  for (auto& [name, v] : strings)
    if (!v->empty()) o[name] = *v;
  if (r.sweep_rank) o["sweep_rank"] = *r.sweep_rank;
  if (r.sweep_wall_s) o["sweep_wall_s"] = *r.sweep_wall_s;
  if (r.reused) o["reused"] = true;
  return o;
}

// ------------------------------------------------------------------ reading

Provenance provenance_from_json(const json& j, const std::string& where) {
  PETL_CHECK(j.is_object(), where, ": provenance is not an object (got ", found_text(j), ")");
  FieldReader f(j);
  Provenance p;
  read_provenance(f, j, "", p);
  f.throw_if_any(where);
  return p;
}

Record record_from_json(const json& j, const std::string& where) {
  check_header(j, where);
  Record r;
  r.status = parse_enum<RecordStatus>(j["status"].get<std::string>(), where + ": status");
  const bool ok = r.ok();
  FieldReader f(j);
  // Required fields of an ok record first, in the order messages list them.
  r.method = f.string_at("method", ok);
  r.task = f.string_at("task", ok);
  if (auto s = f.at("seed", Kind::kInteger, ok)) r.seed = s->get<int>();
  read_accuracy(f, ok, r);
  r.trainable_params = f.integer_at("trainable_params", ok);
  f.at("memory.peak_train_mib", Kind::kNumber, ok);
  f.at("backbone.sha256", Kind::kString, ok);
  f.at("settings.recipe", Kind::kObject, ok);
  f.at("settings.method", Kind::kObject, ok);
  read_evals(f, ok, r);
  if (auto p = f.at("protocol", Kind::kString, ok)) {
    if (auto v = try_parse_enum<Protocol>(p->get<std::string>()))
      r.protocol = *v;
    else
      f.mistyped("protocol", enum_choices<Protocol>(""), *p);
  }
  r.accuracy = f.number_at("accuracy", ok);
  // Optional fields.
  r.error = f.string_at("error");
  r.benchmark = f.string_at("benchmark");
  if (const json* k = f.at("shots", Kind::kInteger, false)) r.shots = k->get<int>();
  if (const json* k = f.at("split_seed", Kind::kInteger, false)) r.split_seed = k->get<int>();
  r.stage = f.string_at("stage");
  if (!r.stage.empty() && r.stage != "search" && r.stage != "final")
    f.mistyped("stage", "\"search\" or \"final\"", j["stage"]);
  r.selection = f.object_at("selection");
  if (const json* l = f.at("epoch_train_loss", Kind::kArray, false)) {
    for (size_t i = 0; i < l->size(); ++i) {
      if ((*l)[i].is_number())
        r.epoch_train_loss.push_back((*l)[i].get<double>());
      else
        f.mistyped("epoch_train_loss[" + std::to_string(i) + "]", "a number", (*l)[i]);
    }
  }
  r.backbone_params = f.integer_at("backbone_params");
  read_timing(f, r);
  r.memory = f.object_at("memory");
  r.settings = f.object_at("settings");
  r.backbone = f.object_at("backbone");
  r.data = f.object_at("data");
  r.feature_cache = f.object_at("feature_cache");
  r.data_parallel = f.object_at("data_parallel");
  r.memory_budget = f.object_at("memory_budget");
  r.resumed = f.object_at("resumed");
  r.bundle = f.object_at("bundle");
  if (const json* p = f.at("provenance", Kind::kObject, false)) {
    r.provenance.emplace();
    read_provenance(f, *p, "provenance.", *r.provenance);
  }
  r.job_key = f.string_at("job_key");
  r.checkpoint = f.string_at("checkpoint");
  r.sweep_key = f.string_at("sweep_key");
  r.sweep = f.string_at("sweep");
  if (auto l = j.find("log"); l != j.end() && l->is_null())
    r.extra["log"] = nullptr;  // a sweep job that never ran has no log
  else
    r.log = f.string_at("log");
  if (const json* u = f.at("reused", Kind::kBool, false)) r.reused = u->get<bool>();
  if (const json* w = f.at("sweep_rank", Kind::kInteger, false)) r.sweep_rank = w->get<int>();
  r.sweep_wall_s = f.number_at("sweep_wall_s");
  for (auto& [k, v] : j.items())
    if (!known_fields().count(k)) r.extra[k] = v;
  f.throw_if_any(where);
  return r;
}

// ------------------------------------------------------------------ failed records

Record failed_record(const std::string& method, const std::string& task, int seed, Protocol protocol,
                     const std::string& message, const Provenance& provenance) {
  Record r;
  r.status = RecordStatus::kFailed;
  r.error = message;
  r.method = method;
  r.task = task;
  r.seed = seed;
  r.protocol = protocol;
  r.provenance = provenance;
  return r;
}

}  // namespace petl

// The result record, schema "petl.result" v1 — the one module that writes and reads it. Every job
// (`petl run`, `eval`, `bench`, `demo`, every sweep child and the sweep farm for jobs that died)
// produces one Record; to_json() is the only writer, record_from_json() the only reader, and the
// schema version is checked here and nowhere else. Torch-free.
//
// JSON layout (one object per line of results.jsonl; keys as below, nested objects kept verbatim):
//   schema "petl.result", schema_version 1, status "ok" | "failed" | "dry_run" | "does_not_fit" (the
//   job cannot train under its --memory-budget even one image at a time: a result, with the
//   memory_budget section naming the minimum peak), error (failed),
//   method, task, seed, protocol, benchmark ("fewshot"; absent: VTAB-1k), shots and split_seed
//   (few-shot only), stage ("search" | "final", protocol val_select only), selection {...} (final
//   only), accuracy, accuracy_by_protocol {best_of_10, final,
//   best_of_10_epochs}, evals [{epoch, test_acc, train_loss}], epoch_train_loss [...],
//   trainable_params, backbone_params, memory {...}, timing {wall_s, train_s, eval_s,
//   train_images_per_s}, settings {recipe, recipe_source, recipe_task_overrides, method, requested,
//   needs}, backbone {arch, config, path, format, sha256}, data {...}, provenance {git_commit,
//   host, threads, libtorch_version, time_utc, argv, device, ...}, job_key, checkpoint,
//   feature_cache {...}, data_parallel {...}, memory_budget {...} (--memory-budget), resumed {...}
//   (continued from a saved state), bundle {...} (trained in a bundle); sweep journals add
//   sweep_key, sweep, log, sweep_rank, sweep_wall_s; a reused record (resume) carries reused: true.
// Fields a writer did not set are omitted (a failed record has no accuracy; empty strings, unset
// optionals and null sections are not written; an ok record always has evals and
// accuracy_by_protocol, a provenance always threads and argv). Unknown fields of a record read
// back (none of the above) are kept in `extra` (top level), Provenance::extra and Record::other_protocols (members of
// accuracy_by_protocol) and written again, so to_json(record_from_json(j)) == j for every record
// petl writes.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/enums.h"

namespace petl {

constexpr const char* kRecordSchema = "petl.result";
constexpr int kRecordSchemaVersion = 1;

struct EvalPoint {
  int epoch = 0;
  double test_acc = 0;    // percent
  double train_loss = 0;  // mean training loss of that epoch
};

struct Timing {
  double wall_s = 0, train_s = 0, eval_s = 0, train_images_per_s = 0;
};

struct Provenance {
  std::string git_commit, host, libtorch_version, time_utc, device;  // "" = absent
  int threads = 0;
  // The thread policy (core/threads.h): how `threads` was chosen ("--threads", "OMP_NUM_THREADS",
  // "free cores", ...), the CPUs of the affinity mask, the free cores measured when they chose it,
  // and the OpenMP wait policy the runtime started with and who set it ("petl", "environment").
  std::string threads_chosen_by, omp_wait_policy, omp_wait_policy_by;  // "" = absent
  int cores = 0;                                                       // 0 = absent
  std::optional<double> free_cores;
  std::vector<std::string> argv;
  nlohmann::json extra = nlohmann::json::object();  // anything else a writer adds (rank, ...)
};

struct Record {
  RecordStatus status = RecordStatus::kOk;
  std::string error;  // failed only
  std::string method, task;
  int seed = -1;
  Protocol protocol = Protocol::kBestOf10;
  // The benchmark of the task: "" is VTAB-1k (older records have no field); "fewshot" is NOAH's
  // few-shot FGVC, whose records also carry the shots per class and the split seed of the train list.
  std::string benchmark;
  std::optional<int> shots, split_seed;
  // Protocol val_select (results/README.md "Selection without the test set"): "search" for a grid
  // point trained on train800 and evaluated on val200 (its evals are val200 accuracies), "final" for
  // the run on train800val200 with the chosen point and epoch count; "" for every other record.
  std::string stage;
  // A final record's selection: the search jobs' keys and records it chose from, every candidate's
  // val200 evaluations, the rule, the chosen settings, epoch count and val200 accuracy.
  nlohmann::json selection;
  // Results (ok records).
  std::optional<double> accuracy;                    // under `protocol`
  std::optional<double> best_of_10, final_accuracy;  // accuracy_by_protocol.best_of_10 / .final
  std::vector<int> best_of_10_epochs;
  nlohmann::json other_protocols = nlohmann::json::object();  // other members of accuracy_by_protocol
  std::vector<EvalPoint> evals;
  std::vector<double> epoch_train_loss;
  std::optional<int64_t> trainable_params, backbone_params;
  std::optional<Timing> timing;
  // Sections kept as JSON objects (their fields are documented in README.md; null = absent).
  nlohmann::json memory, settings, backbone, data, feature_cache, data_parallel;
  nlohmann::json memory_budget;  // the budget, the memory model, the choice and the measured peak
  nlohmann::json resumed;        // where a job resumed from its saved state
  nlohmann::json bundle;         // the bundle the job trained in and its shared test pass
  std::optional<Provenance> provenance;
  std::string job_key, checkpoint;
  // Sweep journal fields.
  std::string sweep_key, sweep, log;   // "" = absent (a null log stays in extra)
  std::optional<int> sweep_rank;       // the rank that ran the job
  std::optional<double> sweep_wall_s;  // the job's child process, start to end
  bool reused = false;
  nlohmann::json extra = nlohmann::json::object();  // unknown fields read back, written again

  bool ok() const { return status == RecordStatus::kOk; }
  // accuracy_by_protocol[protocol] when it is a number (best_of_10, final or another member).
  std::optional<double> accuracy_under(const std::string& protocol) const;
  // The members of accuracy_by_protocol that are numbers, in key order.
  std::vector<std::string> protocols() const;
};

// The JSON object of a record (the schema above).
nlohmann::json to_json(const Record& r);
// Reads a record. Throws petl::Error "<where>: ..." naming the field(s) and what was expected when
// j is not an object, the schema is not petl.result, the version is not 1, the status is not ok /
// failed / dry_run / does_not_fit, a field has the wrong type, an evals entry lacks a numeric epoch or test_acc,
// or an ok record lacks a required field (method, task, seed, accuracy_by_protocol,
// trainable_params, memory.peak_train_mib, backbone.sha256, settings.recipe, settings.method,
// evals, protocol, accuracy), or the protocol is not one petl knows. Every problem of the record is
// listed in the one message.
Record record_from_json(const nlohmann::json& j, const std::string& where);
// True when j is an object of schema petl.result (any version).
bool is_result_record(const nlohmann::json& j);
// The "schema" string of an object, "" when j is not an object or has none.
std::string schema_of(const nlohmann::json& j);

// The provenance object (the "provenance" field of a record) and its reader; `where` as above.
nlohmann::json to_json(const Provenance& p);
Provenance provenance_from_json(const nlohmann::json& j, const std::string& where);

// A failed job's record: status failed, the message, the identity and the provenance.
Record failed_record(const std::string& method, const std::string& task, int seed, Protocol protocol,
                     const std::string& message, const Provenance& provenance);

}  // namespace petl

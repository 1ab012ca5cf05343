// The sweep journal <out>/results.jsonl: one JSON line per finished job, appended (one write()
// on an O_APPEND descriptor, then fsync) by rank 0 only. Pure file functions, no MPI.
//
// Lines:
//   training jobs  schema "petl.result" v1 — the child's own record (status "ok") plus
//                  "sweep_key" (the planned job's sweep key) and "sweep" (config name); or a failed record,
//                  to_json(failed_job_record(...)) (results/record.h: schema, schema_version,
//                  status "failed", error, method, task, seed, protocol, provenance {...}) plus
//                  sweep_key, sweep, "log" (null for a job that never ran).
//   cache builds   schema "petl.sweep_cache" v1, "kind": "cache", status ok|failed, sweep_key,
//                  sweep, task, taps, splits, dtype, error (failed), log, provenance. `petl report`
//                  counts lines of another schema and skips them, so they can share the file.
// Reading: a key's status is "ok" if any of its lines is ok (an ok line is never followed by
// another line of the same key), else "failed". A last line without '\n' is torn (a writer killed
// mid-write): it is ignored with a warning, and repair_journal truncates it away.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results/record.h"

namespace petl {

struct Journal {
  std::map<std::string, RecordStatus> status;    // sweep_key → ok | does_not_fit | failed
  std::map<std::string, nlohmann::json> record;  // sweep_key → its ok line, else its last failed line
  std::map<std::string, int> count;              // sweep_key → number of lines (duplicates show as > 1)
  int64_t lines = 0;                             // complete lines read
  int64_t good_bytes = 0;                        // length of the prefix made of complete lines
  bool torn = false;                             // the file ends in a partial line
  std::vector<std::string> warnings;             // torn tail, unparsable lines (file:line)
};

// Reads a journal; a missing file is an empty journal. Lines without "sweep_key" are counted in
// `lines` but otherwise ignored.
Journal read_journal(const std::string& path);

// Truncates a torn tail (see Journal::torn) so the next append starts on a fresh line; fsyncs.
// Returns true when something was cut. Throws petl::Error when the file cannot be rewritten.
bool repair_journal(const std::string& path, const Journal& j);

// Appends one JSON line with a single write() on an O_APPEND descriptor, then fsync; creates the
// parent directory. Throws petl::Error naming the file on failure.
void append_journal_line(const std::string& path, const nlohmann::json& record);

// The journal file of a sweep in `out_dir`: results.jsonl, or results.shard-I-of-N.jsonl for
// `--shard I/N` (every shard's rank 0 writes its own file, so no two processes append to one file).
std::string journal_path(const std::string& out_dir, int shard_index = 0, int shard_count = 1);
// The other journals in out_dir (results*.jsonl except `own`), sorted: read for resume, never written.
std::vector<std::string> sibling_journals(const std::string& out_dir, const std::string& own);
// A key whose journal status is this is finished: never run again (ok, or a result that says the
// job does not fit its memory budget).
inline bool journal_done(RecordStatus status) {
  return status == RecordStatus::kOk || status == RecordStatus::kDoesNotFit;
}

// Merged status over several journals: finished if any says so, else failed.
std::map<std::string, RecordStatus> merged_status(const std::vector<std::string>& journals,
                                                  std::vector<std::string>* warnings = nullptr);

// A failed training job's record: petl::failed_record with the job's identity (method, task, seed
// (-1 when absent), protocol (best_of_10 when absent)); the farm writes to_json() of it.
Record failed_job_record(const nlohmann::json& identity, const std::string& message, const Provenance& provenance);

// A cache-build record (schema petl.sweep_cache v1). identity: task, taps, splits, dtype.
nlohmann::json sweep_cache_record(const nlohmann::json& identity, bool ok, const std::string& message,
                                  const nlohmann::json& provenance);

}  // namespace petl

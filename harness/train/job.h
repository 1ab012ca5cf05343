// One training job: a pure function of a typed JobSpec → one flat result record (JSON), plus a
// checkpoint of the trainable tensors under the reference code's names.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace petl {

struct JobSpec {
  std::string method;
  std::string task;
  std::string data_root;
  std::string backbone_file;  // empty: the embedded backbone (unless arch is given)
  std::string arch;           // timm name; with no backbone file → random weights (dry-run only)
  std::string recipe;         // empty: the method's default recipe
  std::string protocol = "best_of_10";  // best_of_10 | final
  std::string out_dir;        // records (results.jsonl), checkpoints/, logs
  int epochs = -1, batch_size = -1, seed = -1;  // -1: the recipe's value
  int threads = 0;            // 0: cores available to the process
  std::string device = "cpu"; // cpu | cuda | cuda:N (CUDA LibTorch builds only)
  std::vector<std::string> set;  // key=value overrides (recipe keys and method keys)
  bool dry_run = false;
  bool skip_bad = false;      // skip undecodable / missing images (counted in the record)
  bool progress = true;
  bool save_checkpoint = true;
  bool reuse_done = false;    // an ok record with the same job key in out_dir: return it, train nothing
  int64_t limit_train = -1, limit_test = -1;  // for tests and benchmarks
  // Train from frozen-backbone features cached in this directory (built when missing) instead of
  // live backbone passes; only for methods whose needs() are cacheable. Empty: live.
  std::string feature_cache;
  std::string cache_dtype = "float32";
  // Data parallelism over this many MPI ranks (the job runs under mpirun -np dp; rank 0 writes).
  int dp = 1;  // float32 (exact: same losses and logits as live) | float16
  std::vector<std::string> argv;  // for provenance
};

// Runs the job; on success appends the record to <out_dir>/results.jsonl (fsync'd) when out_dir
// is set and returns it. Errors propagate as exceptions (petl::Error for user mistakes).
nlohmann::json run_job(const JobSpec& spec);

// A failed job's record (status "failed" with the message), same identity fields.
nlohmann::json failed_record(const JobSpec& spec, const std::string& message);

// Appends one JSON line and fsyncs the file.
void append_record(const std::string& path, const nlohmann::json& record);




}  // namespace petl

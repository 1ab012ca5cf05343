// Tests of results/record.{h,cpp}, the one writer and reader of petl.result v1 records: round
// trips of a full ok record, a failed record and a dry run; unknown fields kept; the golden report
// inputs read back and re-write to the same JSON; every error names the where-string and the field
// (wrong schema, version 2, an ok record without accuracy, wrong types, bad evals).
#include <fstream>
#include <gtest/gtest.h>
#include <string>

#include "core/error.h"
#include "results/record.h"

namespace petl {
namespace {

using json = nlohmann::json;

const std::string kTests = PETL_TEST_DIR;

// Runs f, expects petl::Error, returns its message.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected petl::Error";
  return "";
}
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

Provenance full_provenance() {
  Provenance p;
  p.git_commit = "0123456789ab";
  p.host = "node7";
  p.libtorch_version = "2.3.0";
  p.time_utc = "2024-05-01T12:00:00Z";
  p.device = "cuda";
  p.threads = 8;
  p.threads_chosen_by = "free cores";
  p.cores = 8;
  p.free_cores = 7.5;
  p.omp_wait_policy = "GOMP_SPINCOUNT=1000";
  p.omp_wait_policy_by = "petl";
  p.argv = {"petl", "run", "--method", "linear"};
  p.extra["rank"] = 1;
  return p;
}

// Every field a training job sets.
Record full_record() {
  Record r;
  r.method = "synqt";
  r.task = "cifar";
  r.seed = 42;
  r.protocol = Protocol::kBestOf10;
  r.accuracy = 71.25;
  r.best_of_10 = 71.25;
  r.final_accuracy = 70.5;
  r.best_of_10_epochs = {10, 20};
  r.evals = {{10, 65.5, 1.25}, {20, 71.25, 0.5}};
  r.epoch_train_loss = {2.0, 1.25, 0.75, 0.5};
  r.trainable_params = 2658294;
  r.backbone_params = 85798656;
  r.timing = Timing{100.5, 90.25, 10.25, 512.0};
  r.memory = {{"peak_train_mib", 1500.25}, {"device", "cuda"}, {"precision", "fp32"}, {"image_size", 224}};
  r.settings = {
      {"recipe", {{"lr", "0.001"}, {"seed", "42"}}}, {"method", {{"token_nums", 2}}}, {"requested", json::object()}};
  r.backbone = {{"arch", "vit_base_patch16_224_in21k"}, {"sha256", "5b2f6e0c9d8e"}, {"config", {{"depth", 12}}}};
  r.data = {{"task", "cifar"}, {"n_train", 1000}, {"test_list_sha256", "abc"}};
  r.feature_cache = {{"train", "/c/train.h5"}, {"taps", "cls"}};
  r.data_parallel = {{"ranks", 2}, {"backend", "gloo"}};
  r.provenance = full_provenance();
  r.job_key = "0011223344556677";
  r.checkpoint = "/out/checkpoints/x.safetensors";
  r.sweep_key = "k1";
  r.sweep = "grid";
  r.log = "/out/logs/k1.log";
  r.reused = true;
  return r;
}

TEST(Record, FullOkRecordRoundTrips) {
  const json j = to_json(full_record());
  EXPECT_EQ(j["schema"], kRecordSchema);
  EXPECT_EQ(j["schema_version"], kRecordSchemaVersion);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_FALSE(j.contains("error"));
  EXPECT_EQ(j["accuracy_by_protocol"]["best_of_10"], 71.25);
  EXPECT_EQ(j["accuracy_by_protocol"]["final"], 70.5);
  EXPECT_EQ(j["accuracy_by_protocol"]["best_of_10_epochs"], json({10, 20}));
  EXPECT_EQ(j["evals"][1], json({{"epoch", 20}, {"test_acc", 71.25}, {"train_loss", 0.5}}));
  EXPECT_EQ(j["timing"]["train_images_per_s"], 512.0);
  EXPECT_EQ(j["provenance"]["rank"], 1);
  EXPECT_EQ(j["provenance"]["argv"][3], "linear");
  EXPECT_EQ(j["reused"], true);

  const Record r = record_from_json(j, "full.jsonl:1");
  EXPECT_EQ(r.method, "synqt");
  EXPECT_EQ(r.seed, 42);
  EXPECT_DOUBLE_EQ(r.accuracy.value(), 71.25);
  EXPECT_DOUBLE_EQ(r.accuracy_under("final").value(), 70.5);
  EXPECT_EQ(r.protocols(), (std::vector<std::string>{"best_of_10", "final"}));
  EXPECT_EQ(r.evals.size(), 2u);
  EXPECT_EQ(r.trainable_params.value(), 2658294);
  EXPECT_EQ(r.provenance->threads, 8);
  EXPECT_EQ(r.provenance->threads_chosen_by, "free cores");
  EXPECT_EQ(r.provenance->cores, 8);
  EXPECT_DOUBLE_EQ(r.provenance->free_cores.value(), 7.5);
  EXPECT_EQ(r.provenance->omp_wait_policy, "GOMP_SPINCOUNT=1000");
  EXPECT_EQ(r.provenance->omp_wait_policy_by, "petl");
  EXPECT_EQ(r.provenance->extra["rank"], 1);
  EXPECT_TRUE(r.provenance->extra.find("free_cores") == r.provenance->extra.end());
  EXPECT_TRUE(r.extra.empty()) << r.extra.dump();
  EXPECT_EQ(to_json(r), j);
}

TEST(Record, FailedRecordRoundTrips) {
  const Record f =
      failed_record("full", "dtd", 7, Protocol::kFinal, "CUDA out of memory\nsecond line", full_provenance());
  const json j = to_json(f);
  for (auto* k : {"schema", "schema_version", "status", "error", "method", "task", "seed", "protocol", "provenance"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["error"], "CUDA out of memory\nsecond line");
  for (auto* k : {"accuracy", "accuracy_by_protocol", "evals", "epoch_train_loss", "trainable_params", "memory",
                  "settings", "backbone", "timing", "job_key", "log"})
    EXPECT_FALSE(j.contains(k)) << k;
  const Record r = record_from_json(j, "failed.jsonl:3");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error, f.error);
  EXPECT_EQ(r.seed, 7);
  EXPECT_EQ(to_json(r), j);
  // An empty error is still written: a failed record always says why (even when it cannot).
  EXPECT_TRUE(to_json(failed_record("m", "t", 1, Protocol::kBestOf10, "", Provenance{})).contains("error"));
}

TEST(Record, DryRunNeedsNoResults) {
  Record d;
  d.status = RecordStatus::kDryRun;
  d.method = "synqt";
  d.task = "dtd";
  d.seed = 42;
  d.trainable_params = 2700000;
  d.data = {{"num_classes", 47}};
  const json j = to_json(d);
  EXPECT_FALSE(j.contains("evals"));
  EXPECT_FALSE(j.contains("accuracy_by_protocol"));
  EXPECT_EQ(to_json(record_from_json(j, "dry:1")), j);
}

TEST(Record, UnknownFieldsArePreserved) {
  json j = to_json(full_record());
  j["sweep_rank"] = 3;
  j["sweep_wall_s"] = 12.5;
  j["future"] = {{"nested", {1, 2, 3}}};
  j["provenance"]["slurm_job_id"] = "123";
  j["accuracy_by_protocol"]["best_of_5"] = 70.0;
  j["log"] = nullptr;  // a sweep job that never ran
  const Record r = record_from_json(j, "x:1");
  EXPECT_EQ(r.sweep_rank, 3);  // known sweep fields are typed, not "unknown"
  EXPECT_EQ(r.sweep_wall_s, 12.5);
  EXPECT_FALSE(r.extra.contains("sweep_rank"));
  EXPECT_EQ(r.extra["future"]["nested"][2], 3);
  EXPECT_EQ(r.provenance->extra["slurm_job_id"], "123");
  EXPECT_DOUBLE_EQ(r.accuracy_under("best_of_5").value(), 70.0);
  EXPECT_EQ(r.protocols(), (std::vector<std::string>{"best_of_10", "best_of_5", "final"}));
  EXPECT_TRUE(r.log.empty());
  EXPECT_EQ(to_json(r), j);
}

TEST(Record, GoldenReportInputsReadBackAndRewriteUnchanged) {
  int ok = 0, other = 0;
  for (auto* rel : {"vtab/results.jsonl", "vtab/sweep/journal.jsonl", "mini/results.jsonl"}) {
    std::ifstream is(kTests + "/io/data/report/" + rel);
    ASSERT_TRUE(is) << rel;
    std::string line;
    int n = 0;
    while (std::getline(is, line)) {
      ++n;
      const json j = json::parse(line);
      const std::string where = std::string(rel) + ":" + std::to_string(n);
      if (!is_result_record(j)) {
        EXPECT_FALSE(schema_of(j).empty()) << where;
        ++other;
        continue;
      }
      const Record r = record_from_json(j, where);
      if (!r.ok()) continue;
      ++ok;
      // Written again, an ok record keeps every field petl writes (the fixtures' provenance has no
      // threads / argv: those two are always written).
      json again = to_json(r);
      again["provenance"].erase("threads");
      again["provenance"].erase("argv");
      EXPECT_EQ(again, j) << where;
    }
  }
  EXPECT_GT(ok, 20);
  EXPECT_EQ(other, 2);  // the sweep journal's own start/done lines
}

// ------------------------------------------------------------------ errors name where and field

json good() { return to_json(full_record()); }

TEST(RecordErrors, WrongSchema) {
  json j = good();
  j["schema"] = "petl.sweep_cache";
  auto m = error_of([&] { record_from_json(j, "r.jsonl:4"); });
  EXPECT_TRUE(has(m, "r.jsonl:4: schema 'petl.sweep_cache' is not petl.result")) << m;
  j.erase("schema");
  m = error_of([&] { record_from_json(j, "r.jsonl:5"); });
  EXPECT_TRUE(has(m, "r.jsonl:5: no \"schema\" string")) << m;
  m = error_of([&] { record_from_json(json::array({1, 2}), "r.jsonl:6"); });
  EXPECT_TRUE(has(m, "r.jsonl:6: not a JSON object")) << m;
}

TEST(RecordErrors, Version2) {
  json j = good();
  j["schema_version"] = 2;
  auto m = error_of([&] { record_from_json(j, "r.jsonl:2"); });
  EXPECT_TRUE(has(m, "r.jsonl:2: schema_version 2 is not supported")) << m;
  EXPECT_TRUE(has(m, "schema_version 1")) << m;
  j["schema_version"] = "1";
  m = error_of([&] { record_from_json(j, "r.jsonl:3"); });
  EXPECT_TRUE(has(m, "r.jsonl:3: petl.result record without an integer \"schema_version\"")) << m;
}

TEST(RecordErrors, OkRecordWithoutAccuracy) {
  json j = good();
  j.erase("accuracy");
  auto m = error_of([&] { record_from_json(j, "runs/a.jsonl:9"); });
  EXPECT_TRUE(has(m, "runs/a.jsonl:9: missing field(s): accuracy")) << m;
  // A failed record needs no accuracy.
  j["status"] = "failed";
  j["error"] = "boom";
  EXPECT_EQ(record_from_json(j, "runs/a.jsonl:9").error, "boom");
}

TEST(RecordErrors, EveryMissingRequiredFieldIsNamed) {
  json j = good();
  for (auto* k : {"method", "seed", "evals", "protocol"}) j.erase(k);
  j["memory"].erase("peak_train_mib");
  j["backbone"].erase("sha256");
  auto m = error_of([&] { record_from_json(j, "w:1"); });
  EXPECT_TRUE(has(m, "w:1: missing field(s): method, seed, memory.peak_train_mib, backbone.sha256, evals, protocol"))
      << m;
}

TEST(RecordErrors, WrongTypesNameFieldExpectedAndFound) {
  json j = good();
  j["seed"] = "42";
  j["accuracy"] = "71";
  j["trainable_params"] = 1.5;
  j["memory"] = "lots";
  j["provenance"]["threads"] = "8";
  j["reused"] = 1;
  auto m = error_of([&] { record_from_json(j, "t.jsonl:7"); });
  EXPECT_TRUE(has(m, "t.jsonl:7: ")) << m;
  EXPECT_TRUE(has(m, "missing field(s): memory.peak_train_mib")) << m;
  EXPECT_TRUE(has(m, "seed (expected an integer, got string \"42\")")) << m;
  EXPECT_TRUE(has(m, "accuracy (expected a number, got string \"71\")")) << m;
  EXPECT_TRUE(has(m, "trainable_params (expected an integer, got number 1.5)")) << m;
  EXPECT_TRUE(has(m, "memory (expected an object, got string \"lots\")")) << m;
  EXPECT_TRUE(has(m, "provenance.threads (expected an integer, got string \"8\")")) << m;
  EXPECT_TRUE(has(m, "reused (expected true or false, got number 1)")) << m;
}

TEST(RecordErrors, BadEvalsAndStatus) {
  json j = good();
  j["evals"][1].erase("test_acc");
  auto m = error_of([&] { record_from_json(j, "e:2"); });
  EXPECT_TRUE(has(m, "e:2: evals[1] lacks a numeric epoch or test_acc")) << m;
  j = good();
  j["status"] = "running";
  m = error_of([&] { record_from_json(j, "e:3"); });
  EXPECT_TRUE(has(m, "e:3: unknown status 'running' (expected ok, failed, dry_run or does_not_fit)")) << m;
  j.erase("status");
  m = error_of([&] { record_from_json(j, "e:4"); });
  EXPECT_TRUE(has(m, "e:4: missing field(s): status")) << m;
}

TEST(RecordProvenance, ReadsAndWritesOnItsOwn) {
  const json p = to_json(full_provenance());
  EXPECT_EQ(p["device"], "cuda");
  EXPECT_EQ(to_json(provenance_from_json(p, "prov")), p);
  Provenance bare;
  const json b = to_json(bare);  // empty strings are absent; threads and argv always written
  EXPECT_EQ(b, json({{"threads", 0}, {"argv", json::array()}}));
  auto m = error_of([&] { provenance_from_json({{"argv", {"a", 3}}}, "sweep provenance"); });
  EXPECT_TRUE(has(m, "sweep provenance: mistyped field(s): argv[1] (expected a string, got number 3)")) << m;
}

}  // namespace
}  // namespace petl

// Mutation fuzz tests of petl's readers (harness: fuzz.h; readers and seeds: targets.h). One test
// per reader runs its campaign — the seeds, their truncations and a fixed number of random mutants
// with a fixed RNG seed, so every run feeds the same inputs — and FuzzRegressions replays every input
// kept under tests/fuzz/regressions/<reader>/. Input counts (seeds + truncations + mutants) are in
// the table below; the whole suite takes about 25 s on the 2-core development machine.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <gtest/gtest.h>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz.h"
#include "targets.h"

namespace petl::fuzz {
namespace {

namespace fs = std::filesystem;

struct Plan {
  const char* target;
  uint64_t rng_seed;
  int mutants;
  int truncations_per_seed;
};

// Inputs per reader = seeds × (1 + truncations) + mutants; seconds as measured alone on the 2-core
// development machine (about 25 s in all; reader time, the rest is negligible).
const Plan kPlans[] = {
    {"txt_list", 101, 15000, 256},       // 15 116 inputs, 2.2 s
    {"json_list", 102, 15000, 256},      // 15 090 inputs, 2.1 s
    {"petl_task_json", 103, 6000, 64},   //  6 088 inputs, 2.7 s (three files and two folder scans each)
    {"safetensors", 104, 15000, 256},    // 15 727 inputs, 2.1 s
    {"npy", 105, 15000, 256},            // 15 899 inputs, 2.1 s
    {"npz", 106, 15000, 256},            // 15 530 inputs, 2.0 s
    {"feature_store", 107, 15000, 256},  // 15 795 inputs, 7.5 s (HDF5 open, every read, verify, list)
    {"sweep_yaml", 108, 15000, 128},     // 15 274 inputs, 1.0 s
    {"journal", 109, 8000, 256},         //  8 530 inputs, 2.1 s (three readers and a report each)
};

// Longer or different campaigns by hand (CI uses the defaults): PETL_FUZZ_SCALE=20 runs 20× the
// mutants, PETL_FUZZ_RNG_OFFSET=N shifts every RNG seed; with PETL_FUZZ_FORK=1 a crash or hang is one
// failed input instead of the end of the campaign.
uint64_t env_number(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

void run_plan(const std::string& name) {
  for (const Plan& p : kPlans) {
    if (name != p.target) continue;
    TempDir dir(name);
    const Target t = make_target(name, dir.path());
    Campaign c;
    c.rng_seed = p.rng_seed + env_number("PETL_FUZZ_RNG_OFFSET", 0);
    c.mutants = int(p.mutants * env_number("PETL_FUZZ_SCALE", 1));
    c.truncations_per_seed = p.truncations_per_seed;
    const Stats st = run_campaign(t, seeds_for(name, dir.path()), c);
    EXPECT_EQ(st.failed, 0) << st.failed << " of " << st.inputs << " inputs of " << name
                            << " failed (the first ones are listed above)";
    return;
  }
  FAIL() << "no fuzz plan for " << name;
}

TEST(Fuzz, TxtList) { run_plan("txt_list"); }
TEST(Fuzz, JsonList) { run_plan("json_list"); }
TEST(Fuzz, PetlTaskJson) { run_plan("petl_task_json"); }
TEST(Fuzz, Safetensors) { run_plan("safetensors"); }
TEST(Fuzz, Npy) { run_plan("npy"); }
TEST(Fuzz, Npz) { run_plan("npz"); }
TEST(Fuzz, FeatureStore) { run_plan("feature_store"); }
TEST(Fuzz, SweepYaml) { run_plan("sweep_yaml"); }
TEST(Fuzz, Journal) { run_plan("journal"); }

// Every input that once made a reader fail (crash, hang, foreign exception), replayed.
TEST(FuzzRegressions, Replay) {
  int replayed = 0;
  for (const std::string& name : target_names()) {
    TempDir dir(name);
    const Target t = make_target(name, dir.path());
    Stats st;
    for (const std::string& file : file_names_in("regressions", name)) {
      run_one(t, read_bytes(file), file, st);
      ++replayed;
    }
  }
  std::printf("[fuzz] replayed %d regression inputs\n", replayed);
  // The folder exists and every file in it was replayed: a missing or misnamed folder (a typo would
  // silently skip its files) replays nothing and fails here instead of passing.
  const fs::path root = fs::path(PETL_FUZZ_DIR) / "regressions";
  ASSERT_TRUE(fs::is_directory(root)) << root << " is missing";
  int files = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory()) continue;
    const std::string n = e.path().filename().string();
    EXPECT_NE(std::find(target_names().begin(), target_names().end(), n), target_names().end())
        << "tests/fuzz/regressions/" << n << " does not name a fuzz target";
    int here = 0;
    for (const auto& f : fs::directory_iterator(e.path()))
      here += f.is_regular_file() && f.path().filename().string()[0] != '.';
    EXPECT_GT(here, 0) << "tests/fuzz/regressions/" << n << " is empty";
    files += here;
  }
  EXPECT_GT(replayed, 0) << "no regression input was replayed";
  EXPECT_EQ(replayed, files) << "every file under tests/fuzz/regressions/ is replayed";
}

}  // namespace
}  // namespace petl::fuzz

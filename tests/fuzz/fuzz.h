// Mutation fuzzing of petl's readers (tests/fuzz/test_fuzz_*.cpp): deterministic-seeded mutations of
// valid seed inputs — bit flips, byte and integer overwrites, truncations, splices of two seeds,
// duplicated / removed / inserted chunks, dictionary tokens and number swaps for text formats — fed
// to the real reader. An input passes when the reader accepts it or throws petl::Error; any other
// exception (std::bad_alloc, std::out_of_range, nlohmann / yaml-cpp / HDF5 exceptions, ...) fails
// the test, and the input is saved under $PETL_FUZZ_FAILURE_DIR/<reader>/ for triage (found ones
// are kept as regressions in tests/fuzz/regressions/<reader>/, replayed by test_fuzz_regressions).
//
// Guards while a reader runs:
//   hang       a watchdog thread stops the process (saving the input, naming reader and input) when
//              one input runs past kInputBudgetSeconds; the slowest input of a campaign is reported.
//   allocation operator new refuses (std::bad_alloc, reported as a failure naming the size) any
//              single allocation above kAllocLimitBytes: a size read from a corrupt header must be
//              checked against the file size before anything is allocated. RLIMIT_AS bounds the
//              malloc of C libraries (HDF5, libzip) the same way.
//   crash      a crash is a crash of the test process; the input is the reader's input file, left in
//              the campaign's directory (its path is printed by the failing test's log).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace petl::fuzz {

constexpr double kInputBudgetSeconds = 10.0;           // one input, generous for a loaded 2-core machine
constexpr size_t kAllocLimitBytes = size_t(64) << 20;  // seed inputs are a few KiB

// splitmix64: the same sequence on every platform and run.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }  // [0, n)
  bool one_in(uint64_t n) { return below(n) == 0; }

 private:
  uint64_t state_;
};

// A reader under test: `name` names its folders under seeds/ and regressions/; `read` feeds the bytes
// to the real reader (writing them to a file when the reader reads files) and returns normally when
// the input is accepted; it may throw petl::Error for a rejected one.
struct Target {
  std::string name;
  std::function<void(const std::string& bytes)> read;
  std::vector<std::string> tokens;  // dictionary for text formats (JSON / YAML syntax, key names)
  bool text = false;                // also apply text mutations (number swaps, token insertion)
};

// One mutant: 1–4 stacked mutations of a randomly chosen seed (splices take a second seed).
std::string mutate(const std::vector<std::string>& seeds, const Target& target, Rng& rng);

struct Stats {
  int64_t inputs = 0, accepted = 0, rejected = 0, failed = 0;
  double seconds = 0, slowest_seconds = 0;
  std::string slowest;         // a description of the slowest input
  std::string last_rejection;  // the message of the last petl::Error
};

enum class Verdict { accepted, rejected, failed };

// Runs target.read(bytes) once under the hang watchdog and the allocation guard. A failure is an
// ADD_FAILURE naming the reader, the exception type and message, and the saved copy of the input.
Verdict run_one(const Target& target, const std::string& bytes, const std::string& label, Stats& stats);

struct Campaign {
  uint64_t rng_seed = 1;
  int mutants = 1000;              // stacked random mutations
  int truncations_per_seed = 256;  // every length when the seed is shorter, else evenly spaced lengths
};

// The seeds as they are (each must be accepted: the campaign starts from valid inputs), their
// truncations, then `mutants` random mutants. Prints a summary line; returns the stats.
Stats run_campaign(const Target& target, const std::vector<std::string>& seeds, const Campaign& campaign);

// The files of tests/fuzz/<kind>/<target> ("seeds" or "regressions"), sorted, as bytes; empty when
// the folder does not exist.
std::vector<std::string> files_in(const std::string& kind, const std::string& target);
std::vector<std::string> file_names_in(const std::string& kind, const std::string& target);
std::string read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::string& bytes);

// A fresh directory under the temp dir, removed at scope exit.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace petl::fuzz

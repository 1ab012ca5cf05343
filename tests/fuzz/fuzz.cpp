// The fuzzing harness of tests/fuzz (see fuzz.h): mutator, run_one / run_campaign, the hang
// watchdog, the allocation guard (a replacement global operator new) and the crash reporter.
#include "fuzz.h"

#include <cxxabi.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <mutex>
#include <new>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <typeinfo>

#include "core/error.h"

namespace fs = std::filesystem;

// ------------------------------------------------------------------------------ allocation guard
// Replacement operator new (the whole executable, libraries included): while a reader runs, one
// allocation above kAllocLimitBytes is refused with std::bad_alloc and its size remembered, so
// run_one can say which size a reader tried to allocate.

namespace {
std::atomic<bool> g_alloc_guard{false};
std::atomic<size_t> g_refused_bytes{0};

void* checked_malloc(std::size_t n) {
  if (g_alloc_guard.load(std::memory_order_relaxed) && n > petl::fuzz::kAllocLimitBytes) {
    g_refused_bytes.store(n);
    throw std::bad_alloc();
  }
  if (n == 0) n = 1;
  while (true) {
    if (void* p = std::malloc(n)) return p;
    std::new_handler h = std::get_new_handler();
    if (!h) throw std::bad_alloc();
    h();
  }
}
}  // namespace

void* operator new(std::size_t n) { return checked_malloc(n); }
void* operator new[](std::size_t n) { return checked_malloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace petl::fuzz {
namespace {

std::string failure_dir() {
  if (const char* d = std::getenv("PETL_FUZZ_FAILURE_DIR"); d && *d) return d;
  return PETL_FUZZ_FAILURE_DIR;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Saves a failing input as <failure_dir>/<reader>/<hash>.bin; returns the path.
std::string save_failure(const std::string& reader, const std::string& bytes) {
  char name[32];
  std::snprintf(name, sizeof name, "%016llx.bin", static_cast<unsigned long long>(fnv1a(bytes)));
  const fs::path dir = fs::path(failure_dir()) / reader;
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string path = (dir / name).string();
  write_bytes(path, bytes);
  return path;
}

std::string demangled(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : mangled;
  std::free(d);
  return out;
}

// ------------------------------------------------------------------------------ hang watchdog
// One thread for the process. arm() before each input, disarm() after; an input still running
// kInputBudgetSeconds after arm() is saved and the process exits with a message (a hang would
// otherwise only show as ctest's timeout, without the input). The armed input's bytes and crash
// file path are also what the crash handler writes out.

class Watchdog {
 public:
  static Watchdog& get() {
    static Watchdog* w = new Watchdog();  // never destroyed: the thread runs until exit
    return *w;
  }

  void arm(const std::string& reader, const std::string& label, const std::string& bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    reader_ = reader;
    label_ = label;
    bytes_ = bytes;
    deadline_ =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(kInputBudgetSeconds * 1000));
    armed_ = true;
    // For the crash handler (async-signal-safe use only: prepared C strings).
    const fs::path dir = fs::path(failure_dir()) / reader;
    crash_path_ = (dir / "crash-last-input.bin").string();
    crash_dir_ = dir.string();
    crash_note_ =
        "\n[fuzz] CRASH in reader '" + reader + "' on " + label + "; the input is saved as " + crash_path_ + "\n";
    crash_bytes_ = bytes_.data();
    crash_size_ = bytes_.size();
    crash_ready_.store(true);
  }
  void disarm() {
    std::lock_guard<std::mutex> lock(mu_);
    crash_ready_.store(false);
    armed_ = false;
  }

  // Called from the fatal-signal handler.
  void write_crash_input() {
    if (!crash_ready_.load()) return;
    ::mkdir(crash_dir_.c_str(), 0755);
    int fd = ::open(crash_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      size_t done = 0;
      while (done < crash_size_) {
        ssize_t n = ::write(fd, crash_bytes_ + done, crash_size_ - done);
        if (n <= 0) break;
        done += size_t(n);
      }
      ::close(fd);
    }
    ssize_t ignored = ::write(2, crash_note_.data(), crash_note_.size());
    (void)ignored;
  }

 private:
  Watchdog() {
    std::thread([this] { loop(); }).detach();
  }
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      if (armed_ && std::chrono::steady_clock::now() > deadline_) {
        const std::string path = save_failure(reader_, bytes_);
        std::fprintf(stderr, "\n[fuzz] HANG: reader '%s' ran more than %.0f s on %s; the input is saved as %s\n",
                     reader_.c_str(), kInputBudgetSeconds, label_.c_str(), path.c_str());
        std::fflush(stderr);
        std::_Exit(86);
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::string reader_, label_, bytes_;
  std::string crash_path_, crash_dir_, crash_note_;
  const char* crash_bytes_ = nullptr;
  size_t crash_size_ = 0;
  std::atomic<bool> crash_ready_{false};
};

void on_fatal_signal(int sig) {
  Watchdog::get().write_crash_input();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Process setup for every fuzz test: the crash handler (on an alternate stack, so a stack overflow
// is reported too) and an address-space limit for the C libraries' malloc.
class FuzzEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    Watchdog::get();
    static std::vector<char> alt_stack(1 << 16);
    stack_t ss{};
    ss.ss_sp = alt_stack.data();
    ss.ss_size = alt_stack.size();
    ::sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_ONSTACK;
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) ::sigaction(sig, &sa, nullptr);
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_AS, &rl) == 0) {
      const rlim_t cap = rlim_t(8) << 30;  // 8 GiB of address space: far above what a reader needs
      if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > cap) {
        rl.rlim_cur = cap;
        ::setrlimit(RLIMIT_AS, &rl);
      }
    }
  }
};
[[maybe_unused]] ::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(new FuzzEnvironment);

// ------------------------------------------------------------------------------ mutations

const uint64_t kInterestingInts[] = {0,
                                     1,
                                     2,
                                     0x7F,
                                     0x80,
                                     0xFF,
                                     0x100,
                                     0x7FFF,
                                     0x8000,
                                     0xFFFF,
                                     0x10000,
                                     0x7FFFFFFF,
                                     0x80000000,
                                     0xFFFFFFFF,
                                     uint64_t(1) << 32,
                                     uint64_t(1) << 40,
                                     uint64_t(1) << 60,
                                     0x7FFFFFFFFFFFFFFFull,
                                     0x8000000000000000ull,
                                     ~uint64_t(0)};

const char* const kInterestingNumbers[] = {"0",
                                           "-1",
                                           "1",
                                           "-0",
                                           "2147483647",
                                           "2147483648",
                                           "-2147483649",
                                           "4294967296",
                                           "9223372036854775807",
                                           "9223372036854775808",
                                           "-9223372036854775809",
                                           "18446744073709551615",
                                           "18446744073709551616",
                                           "1152921504606846976",
                                           "99999999999999999999999999",
                                           "1e999",
                                           "-1e999",
                                           "1e-999",
                                           "1.5",
                                           "nan",
                                           "NaN",
                                           "inf",
                                           ".5",
                                           "0x10",
                                           "1e3",
                                           "007",
                                           "+3",
                                           ""};

const unsigned char kInterestingBytes[] = {0x00, 0xFF, 0x7F, 0x80, '\n', '\r', ' ', '"',  '\'', '\\', ':',  ',',
                                           '[',  ']',  '{',  '}',  '-',  '0',  '9', '\t', 0xC3, 0xED, 0xA0, '#'};

unsigned char interesting_byte(Rng& rng) {
  return rng.one_in(2) ? static_cast<unsigned char>(rng.below(256))
                       : kInterestingBytes[rng.below(std::size(kInterestingBytes))];
}

void flip_bits(std::string& s, Rng& rng) {
  if (s.empty()) return;
  const int n = 1 + int(rng.below(4));
  for (int i = 0; i < n; ++i) s[rng.below(s.size())] ^= char(1u << rng.below(8));
}

void set_bytes(std::string& s, Rng& rng) {
  if (s.empty()) return;
  const int n = 1 + int(rng.below(4));
  for (int i = 0; i < n; ++i) s[rng.below(s.size())] = char(interesting_byte(rng));
}

// An interesting 1/2/4/8-byte integer (little- or big-endian, sometimes ± a little) at a random
// position: header sizes, lengths, offsets and counts of binary formats.
void set_integer(std::string& s, Rng& rng) {
  static const int widths[] = {1, 2, 4, 8};
  const int w = widths[rng.below(4)];
  if (s.size() < size_t(w)) return;
  uint64_t v = kInterestingInts[rng.below(std::size(kInterestingInts))];
  if (rng.one_in(4)) v += rng.below(9) - 4;
  size_t pos = rng.below(s.size() - size_t(w) + 1);
  if (rng.one_in(2)) pos -= pos % size_t(w);
  const bool big = rng.one_in(4);
  for (int i = 0; i < w; ++i) {
    const int shift = 8 * (big ? w - 1 - i : i);
    s[pos + size_t(i)] = char((v >> shift) & 0xFF);
  }
}

void truncate(std::string& s, Rng& rng) { s.resize(rng.below(s.size() + 1)); }

void splice(std::string& s, const std::vector<std::string>& seeds, Rng& rng) {
  const std::string& other = seeds[rng.below(seeds.size())];
  const size_t a = rng.below(s.size() + 1), b = rng.below(other.size() + 1);
  s = s.substr(0, a) + other.substr(b);
}

size_t chunk_len(const std::string& s, Rng& rng) {
  const size_t cap = std::max<size_t>(1, rng.one_in(4) ? s.size() / 2 : 32);
  return 1 + rng.below(cap);
}

void duplicate_chunk(std::string& s, Rng& rng) {
  if (s.empty()) return;
  const size_t at = rng.below(s.size());
  const std::string chunk = s.substr(at, chunk_len(s, rng));
  const int copies = rng.one_in(8) ? 2 + int(rng.below(30)) : 1;
  const size_t to = rng.below(s.size() + 1);
  std::string ins;
  for (int i = 0; i < copies; ++i) ins += chunk;
  s.insert(to, ins);
}

void remove_chunk(std::string& s, Rng& rng) {
  if (s.empty()) return;
  const size_t at = rng.below(s.size());
  s.erase(at, chunk_len(s, rng));
}

void insert_bytes(std::string& s, Rng& rng) {
  const size_t n = 1 + rng.below(16);
  std::string ins;
  for (size_t i = 0; i < n; ++i) ins.push_back(char(interesting_byte(rng)));
  s.insert(rng.below(s.size() + 1), ins);
}

// Text: the digit run at or after a random position (with its sign) becomes an interesting number.
void swap_number(std::string& s, Rng& rng) {
  if (s.empty()) return;
  size_t p = rng.below(s.size());
  while (p < s.size() && !std::isdigit(static_cast<unsigned char>(s[p]))) ++p;
  if (p == s.size()) return;
  size_t b = p, e = p;
  while (b > 0 && (std::isdigit(static_cast<unsigned char>(s[b - 1])) || s[b - 1] == '-' || s[b - 1] == '.')) --b;
  while (e < s.size() && (std::isdigit(static_cast<unsigned char>(s[e])) || s[e] == '.' || s[e] == 'e')) ++e;
  s.replace(b, e - b, kInterestingNumbers[rng.below(std::size(kInterestingNumbers))]);
}

void insert_token(std::string& s, const Target& t, Rng& rng) {
  if (t.tokens.empty()) return;
  const std::string& tok = t.tokens[rng.below(t.tokens.size())];
  const size_t at = rng.below(s.size() + 1);
  if (rng.one_in(2) || s.empty())
    s.insert(at, tok);
  else
    s.replace(at, std::min(s.size() - at, 1 + rng.below(8)), tok);
}

// Text: duplicate, delete or swap whole lines.
void line_op(std::string& s, Rng& rng) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back(s.substr(pos));
      break;
    }
    lines.push_back(s.substr(pos, nl - pos + 1));
    pos = nl + 1;
  }
  if (lines.empty()) return;
  const size_t i = rng.below(lines.size()), j = rng.below(lines.size());
  switch (rng.below(3)) {
    case 0:
      lines.insert(lines.begin() + long(j), lines[i]);
      break;
    case 1:
      lines.erase(lines.begin() + long(i));
      break;
    default:
      std::swap(lines[i], lines[j]);
      break;
  }
  s.clear();
  for (auto& l : lines) s += l;
}

}  // namespace

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string mutate(const std::vector<std::string>& seeds, const Target& target, Rng& rng) {
  std::string s = seeds[rng.below(seeds.size())];
  const int n_ops = rng.one_in(2) ? 1 : 2 + int(rng.below(3));
  const uint64_t kinds = target.text ? 12 : 9;
  for (int op = 0; op < n_ops; ++op) {
    switch (rng.below(kinds)) {
      case 0:
        flip_bits(s, rng);
        break;
      case 1:
        set_bytes(s, rng);
        break;
      case 2:
        set_integer(s, rng);
        break;
      case 3:
        truncate(s, rng);
        break;
      case 4:
        splice(s, seeds, rng);
        break;
      case 5:
        duplicate_chunk(s, rng);
        break;
      case 6:
        remove_chunk(s, rng);
        break;
      case 7:
        insert_bytes(s, rng);
        break;
      case 8:
        flip_bits(s, rng);
        break;  // bit flips twice as often: the commonest corruption
      case 9:
        swap_number(s, rng);
        break;
      case 10:
        insert_token(s, target, rng);
        break;
      default:
        line_op(s, rng);
        break;
    }
  }
  return s;
}

namespace {

// PETL_FUZZ_FORK=1: each input runs in a child process, so a crash or a hang is reported as a failure
// of that input and the campaign goes on (for finding every crashing input at once; slower).
bool fork_mode() {
  static const bool on = [] {
    const char* v = std::getenv("PETL_FUZZ_FORK");
    return v && std::string(v) == "1";
  }();
  return on;
}

// The child's exit codes in fork mode.
constexpr int kChildAccepted = 0, kChildRejected = 1, kChildFailed = 2;

Verdict run_in_child(const Target& target, const std::string& bytes, std::string* failure) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(unsigned(kInputBudgetSeconds));
    ::signal(SIGSEGV, SIG_DFL);
    ::signal(SIGBUS, SIG_DFL);
    ::signal(SIGABRT, SIG_DFL);
    int code = kChildFailed;
    g_alloc_guard.store(true);
    try {
      target.read(bytes);
      code = kChildAccepted;
    } catch (const petl::Error&) {
      code = kChildRejected;
    } catch (const std::exception& e) {
      g_alloc_guard.store(false);
      std::fprintf(stderr, "[fuzz child] %s: %s\n", demangled(typeid(e).name()).c_str(), e.what());
    } catch (...) {
    }
    std::fflush(stderr);
    std::_Exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kChildAccepted) return Verdict::accepted;
  if (WIFEXITED(status) && WEXITSTATUS(status) == kChildRejected) return Verdict::rejected;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    *failure = "a hang: still running after " + std::to_string(int(kInputBudgetSeconds)) + " s";
  else if (WIFSIGNALED(status))
    *failure =
        std::string("a crash: signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  else
    *failure = "a foreign exception (printed by the child above)";
  return Verdict::failed;
}

}  // namespace

Verdict run_one(const Target& target, const std::string& bytes, const std::string& label, Stats& stats) {
  Watchdog& dog = Watchdog::get();
  dog.arm(target.name, label, bytes);
  g_refused_bytes.store(0);
  const auto t0 = std::chrono::steady_clock::now();
  std::string failure;
  Verdict verdict = Verdict::failed;
  if (fork_mode()) {
    verdict = run_in_child(target, bytes, &failure);
  } else {
    g_alloc_guard.store(true);
    try {
      target.read(bytes);
      verdict = Verdict::accepted;
    } catch (const petl::Error& e) {
      stats.last_rejection = e.what();
      verdict = Verdict::rejected;
    } catch (const std::bad_alloc& e) {
      g_alloc_guard.store(false);
      const size_t refused = g_refused_bytes.load();
      failure = refused ? "std::bad_alloc: an allocation of " + std::to_string(refused) +
                              " bytes was attempted (limit " + std::to_string(kAllocLimitBytes) +
                              "): a size from the input is trusted before it is checked against the file size"
                        : std::string("std::bad_alloc: ") + e.what();
    } catch (const std::exception& e) {
      g_alloc_guard.store(false);
      failure = demangled(typeid(e).name()) + ": " + e.what();
    } catch (...) {
      g_alloc_guard.store(false);
      failure = "an exception of an unknown type";
    }
  }
  g_alloc_guard.store(false);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  dog.disarm();

  ++stats.inputs;
  stats.seconds += dt;
  if (dt > stats.slowest_seconds) {
    stats.slowest_seconds = dt;
    stats.slowest = label + " (" + std::to_string(bytes.size()) + " bytes)";
  }
  if (verdict == Verdict::accepted) ++stats.accepted;
  if (verdict == Verdict::rejected) ++stats.rejected;
  if (!failure.empty()) {
    ++stats.failed;
    const std::string saved = save_failure(target.name, bytes);
    if (stats.failed <= 10)
      ADD_FAILURE() << "reader '" << target.name << "' on " << label << " threw " << failure
                    << "\n  (expected acceptance or petl::Error); input saved as " << saved;
  }
  return verdict;
}

Stats run_campaign(const Target& target, const std::vector<std::string>& seeds, const Campaign& campaign) {
  Stats st;
  EXPECT_FALSE(seeds.empty()) << "no seeds for " << target.name;
  if (seeds.empty()) return st;
  for (size_t i = 0; i < seeds.size(); ++i) {
    const Verdict v = run_one(target, seeds[i], "seed #" + std::to_string(i), st);
    EXPECT_EQ(v, Verdict::accepted) << "seed #" << i << " of " << target.name
                                    << " is not accepted: the campaign must start from valid inputs\n  "
                                    << (v == Verdict::rejected ? st.last_rejection : "");
  }
  for (size_t i = 0; i < seeds.size(); ++i) {
    const size_t n = seeds[i].size(), k = size_t(campaign.truncations_per_seed);
    std::vector<size_t> lengths;
    if (n <= k) {
      for (size_t len = 0; len < n; ++len) lengths.push_back(len);
    } else {
      for (size_t j = 0; j < k; ++j) lengths.push_back(j * n / k);
      for (size_t d = 1; d <= 8 && d <= n; ++d) lengths.push_back(n - d);  // a torn last few bytes
    }
    for (size_t len : lengths)
      run_one(target, seeds[i].substr(0, len),
              "seed #" + std::to_string(i) + " truncated to " + std::to_string(len) + " bytes", st);
  }
  Rng rng(campaign.rng_seed);
  for (int i = 0; i < campaign.mutants; ++i) {
    const std::string m = mutate(seeds, target, rng);
    run_one(target, m, "mutant #" + std::to_string(i) + " (rng seed " + std::to_string(campaign.rng_seed) + ")", st);
  }
  std::printf(
      "[fuzz] %s: %lld inputs (%lld accepted, %lld rejected with petl::Error, %lld failed) in %.2f s; "
      "slowest %.1f ms: %s\n",
      target.name.c_str(), static_cast<long long>(st.inputs), static_cast<long long>(st.accepted),
      static_cast<long long>(st.rejected), static_cast<long long>(st.failed), st.seconds, st.slowest_seconds * 1000,
      st.slowest.c_str());
  std::fflush(stdout);
  return st;
}

// ------------------------------------------------------------------------------ files

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("fuzz: cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("fuzz: cannot write " + path);
}

std::vector<std::string> file_names_in(const std::string& kind, const std::string& target) {
  const fs::path dir = fs::path(PETL_FUZZ_DIR) / kind / target;
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && e.path().filename().string()[0] != '.') out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> files_in(const std::string& kind, const std::string& target) {
  std::vector<std::string> out;
  for (const auto& p : file_names_in(kind, target)) out.push_back(read_bytes(p));
  return out;
}

TempDir::TempDir(const std::string& tag) {
  std::string tmpl = (fs::temp_directory_path() / ("petl_fuzz_" + tag + "_XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("fuzz: mkdtemp failed for " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace petl::fuzz

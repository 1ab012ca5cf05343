// The one append path of every journal (io/journal.h): torn tails cut before appending, a short
// write (full disk, simulated with RLIMIT_FSIZE) leaves the file as it was, concurrent appenders in
// separate processes never interleave.
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "core/error.h"
#include "io/journal.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct JournalTest : ::testing::Test {
  fs::path dir_;
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("petl_journal_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path() const { return (dir_ / "results.jsonl").string(); }
};

std::string slurp(const std::string& p) {
  std::ifstream is(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(is), {});
}

TEST_F(JournalTest, AppendCutsATornLastLineFirst) {
  petl::io::append_json_line(path(), {{"k", 1}});
  const auto good = fs::file_size(path());
  { std::ofstream(path(), std::ios::app) << "{\"k\": 2, \"half"; }  // a writer killed mid-write
  testing::internal::CaptureStderr();
  petl::io::append_json_line(path(), {{"k", 3}});
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cut a torn last line (bytes " + std::to_string(good)), std::string::npos) << err;
  EXPECT_NE(err.find(path()), std::string::npos) << err;
  EXPECT_EQ(slurp(path()), "{\"k\":1}\n{\"k\":3}\n");
  auto j = petl::io::read_json_lines(path());
  EXPECT_FALSE(j.torn);
  ASSERT_EQ(j.objects.size(), 2u);
  // A file that is nothing but a fragment is cut to empty.
  { std::ofstream(path(), std::ios::trunc) << "{\"torn"; }
  testing::internal::CaptureStderr();
  petl::io::append_json_line(path(), {{"k", 4}});
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(slurp(path()), "{\"k\":4}\n");
}

TEST_F(JournalTest, ShortWriteLeavesNoFragment) {
  petl::io::append_json_line(path(), {{"k", 1}});
  const std::string before = slurp(path());
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child can write 10 more bytes: the next line is longer, so write() comes up short.
    std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl {};
    rl.rlim_cur = rl.rlim_max = before.size() + 10;
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(10);
    try {
      petl::io::append_json_line(path(), {{"key", std::string(100, 'x')}}, "results file");
    } catch (const petl::Error& e) {
      const std::string m = e.what();
      const bool named = m.find("short write to results file '" + path() + "'") != std::string::npos &&
                         m.find("the partial line was removed") != std::string::npos;
      ::_exit(named ? 0 : 11);
    }
    ::_exit(12);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setrlimit failed, 11: message, 12: no error";
  EXPECT_EQ(slurp(path()), before);  // no fragment left behind
  petl::io::append_json_line(path(), {{"k", 2}});
  EXPECT_EQ(petl::io::read_json_lines(path()).objects.size(), 2u);
}

TEST_F(JournalTest, ConcurrentProcessesNeverInterleave) {
  constexpr int kProcs = 4, kLines = 60;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        for (int i = 0; i < kLines; ++i)
          petl::io::append_json_line(path(), {{"p", p}, {"i", i}, {"pad", std::string(size_t(500 + 37 * i), 'a' + p)}});
      } catch (...) {
        ::_exit(1);
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto j = petl::io::read_json_lines(path());
  EXPECT_FALSE(j.torn);
  EXPECT_TRUE(j.warnings.empty());
  ASSERT_EQ(j.objects.size(), size_t(kProcs * kLines));
  std::vector<int> next(kProcs, 0);
  for (auto& o : j.objects) {  // each process's lines in its own order
    const int p = o["p"];
    EXPECT_EQ(o["i"].get<int>(), next[size_t(p)]++);
  }
}

}  // namespace

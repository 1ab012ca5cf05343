// Tests for core/process (children without fork): spawn and poll — exit status, a signal, the log
// file (stdout + stderr, stdin /dev/null), the added environment, a missing program or log
// directory, and this executable's path.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <gtest/gtest.h>
#include <thread>

#include "core/error.h"
#include "core/process.h"

namespace petl {
namespace {

namespace fs = std::filesystem;

// Waits for a child, polling as petl demo does.
process::ExitStatus wait_for(pid_t pid) {
  for (int i = 0; i < 1000; ++i) {
    if (auto s = process::poll(pid)) return *s;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ADD_FAILURE() << "child " << pid << " did not end within 10 s";
  return *process::poll(pid);
}

TEST(Process, ExitStatusLogAndEnvironment) {
  const fs::path dir = fs::temp_directory_path() / ("petl_process_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  process::SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "echo out $PETL_TEST_VALUE; echo err >&2; read x; echo \"stdin:$x\"; exit 3"};
  o.env["PETL_TEST_VALUE"] = "forty-two";
  o.log_file = (dir / "child.log").string();
  const pid_t pid = process::spawn(o);
  const auto st = wait_for(pid);
  EXPECT_EQ(st.code, 3);
  EXPECT_EQ(st.signal, 0);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.text(), "exit status 3");
  EXPECT_EQ(process::file_tail(o.log_file), "out forty-two\nerr\nstdin:\n");  // stdin is /dev/null
  EXPECT_EQ(process::file_tail(o.log_file, 1), "stdin:\n");
  fs::remove_all(dir);
}

TEST(Process, KilledBySignal) {
  process::SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "kill -9 $$"};
  const auto st = wait_for(process::spawn(o));
  EXPECT_EQ(st.signal, 9);
  EXPECT_NE(st.text().find("killed by signal 9"), std::string::npos) << st.text();
}

TEST(Process, MissingProgramIsAnError) {
  process::SpawnOptions o;
  o.argv = {"/nonexistent/petl-child"};
  // posix_spawn reports a missing program either at once or as the child's exit status 127.
  try {
    const auto st = wait_for(process::spawn(o));
    EXPECT_EQ(st.code, 127);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/petl-child"), std::string::npos) << e.what();
  }
  process::SpawnOptions bad_log;
  bad_log.argv = {"/bin/true"};
  bad_log.log_file = "/nonexistent-dir/x.log";
  EXPECT_THROW(process::spawn(bad_log), Error);
}

TEST(Process, SelfExecutable) {
  EXPECT_TRUE(fs::exists(process::self_executable()));
  EXPECT_NE(process::self_executable(), "/proc/self/exe");
}

}  // namespace
}  // namespace petl

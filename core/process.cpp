#include "core/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <sys/wait.h>

#include "core/error.h"

extern char** environ;

namespace petl::process {

std::string ExitStatus::text() const {
  if (signal) return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "exit status " + std::to_string(code);
}

pid_t spawn(const SpawnOptions& o) {
  PETL_CHECK(!o.argv.empty(), "spawn: no program");
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = kv.substr(0, eq);
    bool drop = false;
    for (const auto& p : o.drop_env_prefixes) drop = drop || k.rfind(p, 0) == 0;
    if (!drop) env[k] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : o.env) env[k] = v;
  std::vector<std::string> env_s, argv_s = o.argv;
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  std::vector<char*> envp, argvp;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (auto& s : argv_s) argvp.push_back(s.data());
  argvp.push_back(nullptr);

  int fd = -1;
  if (!o.log_file.empty()) {
    fd = ::open(o.log_file.c_str(), O_WRONLY | O_CREAT | (o.append_log ? O_APPEND : O_TRUNC) | O_CLOEXEC, 0644);
    PETL_CHECK(fd >= 0, "cannot open log file ", o.log_file, ": ", std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
  }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Nothing of ours but stdin/stdout/stderr: no MPI sockets or launcher pipes (a child that
  // outlives its parent must not keep mpirun waiting for them).
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
  // The child starts with no blocked signals and default handlers, whatever this process set.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGUSR1, SIGUSR2, SIGINT, SIGHUP, SIGPIPE, SIGQUIT, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o.new_process_group) {
    posix_spawnattr_setpgroup(&attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv_s[0].c_str(), &fa, &attr, argvp.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (fd >= 0) ::close(fd);
  PETL_CHECK(rc == 0, "cannot start ", argv_s[0], ": ", std::strerror(rc));
  return pid;
}

std::optional<ExitStatus> poll(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  ExitStatus s;
  if (r < 0) {  // not our child any more (reaped elsewhere): report it as a failure
    s.code = 255;
    return s;
  }
  if (WIFSIGNALED(status))
    s.signal = WTERMSIG(status);
  else if (WIFEXITED(status))
    s.code = WEXITSTATUS(status);
  return s;
}

std::string self_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "/proc/self/exe";
  buf[n] = 0;
  return buf;
}

std::string file_tail(const std::string& path, int max_lines) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (int(lines.size()) > max_lines) lines.pop_front();
  }
  std::string out;
  for (auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace petl::process

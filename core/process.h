// Child processes without fork(): posix_spawn of a program (a process that has started OpenMP or
// LibTorch threads must not fork), stdin /dev/null, stdout and stderr into a log file, polled
// without blocking. Torch-free. `petl demo` runs its parallel jobs as `petl run` children with it.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace petl::process {

struct SpawnOptions {
  std::vector<std::string> argv;           // argv[0] is the program's path
  std::map<std::string, std::string> env;  // set in the child on top of this process's environment
  std::string log_file;                    // stdout + stderr (created or truncated); "" = inherited
  bool append_log = false;                 // append to log_file instead of truncating it
  // Variables of this process's environment left out (prefixes: "OMPI_" drops OMPI_COMM_WORLD_RANK, ...).
  std::vector<std::string> drop_env_prefixes;
  bool new_process_group = false;  // the child leads a group of its own (killpg reaches its children)
};

// Starts the child (in this process's process group unless new_process_group: a terminal's Ctrl-C
// reaches it too) with stdin /dev/null, no inherited descriptor above 2, no blocked signals and
// default handlers. Throws petl::Error naming the program or the log file when it cannot.
pid_t spawn(const SpawnOptions& options);

struct ExitStatus {
  int code = 0;    // exit status when it exited
  int signal = 0;  // the signal that ended it, 0 when it exited
  bool ok() const { return signal == 0 && code == 0; }
  std::string text() const;  // "exit status 2", "killed by signal 9 (Killed)"
};

// The child's status once it has ended (reaped), nullopt while it runs. Never blocks.
std::optional<ExitStatus> poll(pid_t pid);

// This executable's path (/proc/self/exe resolved), for starting more of itself.
std::string self_executable();

// The last `max_lines` lines of a text file ("" when it cannot be read).
std::string file_tail(const std::string& path, int max_lines = 20);

}  // namespace petl::process

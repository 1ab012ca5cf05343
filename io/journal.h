// JSON-lines journals (results.jsonl and the sweep journal): one JSON object per line. Every writer
// (run, eval, demo, sweep) appends through append_json_line(): an advisory lock on the file, a torn
// last line cut first (with a warning naming the file and byte offsets), one write() on an O_APPEND
// descriptor, fsync, and on a short write (full disk) the file truncated back to its previous
// length — so appenders never interleave and no fragment is ever left by a failed write. A kill
// mid-write can still leave a torn last line: readers report and skip it, the next append cuts it.
// Torch-free; knows no record schema.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace petl::io {

struct JsonLines {
  std::vector<nlohmann::json> objects;  // every line that parsed as a JSON object, in file order
  std::vector<int64_t> line_numbers;    // of each object (1-based)
  int64_t lines = 0;                    // complete lines read
  int64_t good_bytes = 0;               // length of the prefix made of complete lines
  bool torn = false;                    // the file ends in a partial line (a writer killed mid-write)
  std::vector<std::string> warnings;    // torn tail, unparsable lines (file:line)
};

// Reads a journal; a missing file is empty. `what` names the file kind in errors ("sweep journal").
JsonLines read_json_lines(const std::string& path, const std::string& what = "journal");

// Truncates the file to good_bytes (cutting a torn tail) and fsyncs; petl::Error naming the file.
void cut_torn_tail(const std::string& path, int64_t good_bytes, const std::string& what = "journal");

// Takes the journal's lock and cuts a torn last line, if any (with the warning); true if it cut.
// For readers that will not append (a --resume that reuses a finished record).
bool cut_torn_tail_now(const std::string& path, const std::string& what = "journal");

// Appends record.dump() + '\n' as described above; creates the parent directory. Throws petl::Error
// naming the file on failure, leaving the file as it was before the call (less any torn tail).
void append_json_line(const std::string& path, const nlohmann::json& record, const std::string& what = "journal");

}  // namespace petl::io

namespace petl::io {

// An advisory lock held for the life of this object on `path` (created; holds "host pid time" of
// its holder). The kernel releases it when the holder dies, so a stale lock file of a dead process
// is simply taken over. Taking a lock another live process holds throws petl::Error naming `what`,
// the file and the holder. Not inherited by child processes (close-on-exec).
// Makes `dir` (creating it) and proves a file can be written there (a test file is written, fsync'd
// and removed), so that a job fails before any work instead of losing its result. `what` names the
// flag ("--out"). Throws petl::Error naming the directory and the reason.
void check_writable_dir(const std::string& dir, const std::string& what);

class ProcessLock {
 public:
  ProcessLock(const std::string& path, const std::string& what);
  ~ProcessLock();
  ProcessLock(const ProcessLock&) = delete;
  ProcessLock& operator=(const ProcessLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace petl::io

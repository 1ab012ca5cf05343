#include "io/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/system.h"

namespace petl::io {
namespace fs = std::filesystem;
using json = nlohmann::json;

JsonLines read_json_lines(const std::string& path, const std::string& what) {
  JsonLines j;
  std::ifstream is(path, std::ios::binary);
  if (!is) {
    std::error_code ec;
    PETL_CHECK(!fs::exists(path, ec), "cannot read ", what, " '", path, "'");
    return j;
  }
  std::stringstream ss;
  ss << is.rdbuf();
  const std::string data = ss.str();
  size_t pos = 0;
  int64_t lineno = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) {
      j.torn = true;
      j.warnings.push_back(path + ":" + std::to_string(lineno + 1) + ": torn last line (" +
                           std::to_string(data.size() - pos) +
                           " bytes without a newline, a writer was killed mid-write): ignored");
      break;
    }
    ++lineno;
    const std::string line = data.substr(pos, nl - pos);
    pos = nl + 1;
    j.good_bytes = int64_t(pos);
    j.lines = lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json rec = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (rec.is_discarded()) {
      j.warnings.push_back(path + ":" + std::to_string(lineno) + ": not valid JSON: ignored");
      continue;
    }
    if (!rec.is_object()) continue;
    j.objects.push_back(std::move(rec));
    j.line_numbers.push_back(lineno);
  }
  return j;
}

void cut_torn_tail(const std::string& path, int64_t good_bytes, const std::string& what) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  PETL_CHECK(fd >= 0, "cannot open ", what, " '", path, "' to cut its torn last line: ", std::strerror(errno));
  int rc = ::ftruncate(fd, off_t(good_bytes));
  int err = errno;
  ::fsync(fd);
  ::close(fd);
  PETL_CHECK(rc == 0, "cannot truncate ", what, " '", path, "' to ", good_bytes, " bytes: ", std::strerror(err));
}

namespace {

// Closes a descriptor on scope exit (the advisory lock goes with it).
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Offset just past the last '\n' in the first `size` bytes of fd (0 when there is none).
int64_t end_of_last_line(int fd, int64_t size) {
  char buf[4096];
  int64_t end = size;
  while (end > 0) {
    const int64_t start = std::max<int64_t>(0, end - int64_t(sizeof buf));
    const ssize_t n = ::pread(fd, buf, size_t(end - start), off_t(start));
    if (n != ssize_t(end - start)) return -1;
    for (int64_t i = n - 1; i >= 0; --i)
      if (buf[i] == '\n') return start + i + 1;
    end = start;
  }
  return 0;
}

// With the lock held: cuts a torn last line of the open journal (warning with the byte offsets);
// returns the file's length afterwards.
int64_t cut_torn_tail_locked(int fd, const std::string& path, const std::string& what) {
  struct stat st {};
  PETL_CHECK(::fstat(fd, &st) == 0, "cannot stat ", what, " '", path, "': ", std::strerror(errno));
  int64_t size = int64_t(st.st_size);
  if (size == 0) return 0;
  char last = 0;
  PETL_CHECK(::pread(fd, &last, 1, off_t(size - 1)) == 1, "cannot read ", what, " '", path, "'");
  if (last == '\n') return size;
  const int64_t good = end_of_last_line(fd, size);
  PETL_CHECK(good >= 0, "cannot read ", what, " '", path, "' to find its last complete line");
  PETL_CHECK(::ftruncate(fd, off_t(good)) == 0, "cannot cut the torn last line of ", what, " '", path, "' at byte ",
             good, ": ", std::strerror(errno));
  ::fsync(fd);
  std::fprintf(stderr,
               "[petl] warning: %s '%s': cut a torn last line (bytes %lld..%lld, a writer was killed "
               "mid-write)\n",
               what.c_str(), path.c_str(), (long long)good, (long long)size);
  return good;
}

}  // namespace

bool cut_torn_tail_now(const std::string& path, const std::string& what) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (f.fd < 0) return false;  // no journal, nothing to cut
  PETL_CHECK(::flock(f.fd, LOCK_EX) == 0, "cannot lock ", what, " '", path, "': ", std::strerror(errno));
  struct stat st {};
  PETL_CHECK(::fstat(f.fd, &st) == 0, "cannot stat ", what, " '", path, "'");
  return cut_torn_tail_locked(f.fd, path, what) != int64_t(st.st_size);
}

void append_json_line(const std::string& path, const json& record, const std::string& what) {
  fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  const std::string line = record.dump() + "\n";
  Fd f;
  f.fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  PETL_CHECK(f.fd >= 0, "cannot open ", what, " '", path, "' for appending: ", std::strerror(errno));
  // Every writer of a journal (run, eval, demo, sweep) comes through here: one at a time.
  PETL_CHECK(::flock(f.fd, LOCK_EX) == 0, "cannot lock ", what, " '", path, "': ", std::strerror(errno));
  const int64_t size = cut_torn_tail_locked(f.fd, path, what);
  const ssize_t w = ::write(f.fd, line.data(), line.size());
  const int err = errno;
  if (w != ssize_t(line.size())) {
    // A full disk or a file-size limit: leave no fragment behind.
    const bool cut = ::ftruncate(f.fd, off_t(size)) == 0;
    ::fsync(f.fd);
    PETL_FAIL("short write to ", what, " '", path, "' (", w < 0 ? 0 : w, " of ", line.size(),
              " bytes: ", w < 0 ? std::strerror(err) : "disk full or file too large", "); ",
              cut ? "the partial line was removed, the file is as before" : "could not remove the partial line");
  }
  PETL_CHECK(::fsync(f.fd) == 0, "fsync of ", what, " '", path, "' failed: ", std::strerror(errno));
}

}  // namespace petl::io

namespace petl::io {

ProcessLock::ProcessLock(const std::string& path, const std::string& what) {
  std::error_code ec;
  fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  PETL_CHECK(fd_ >= 0, "cannot open the lock file '", path, "' of ", what, ": ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[256] = {0};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, size_t(n)) : std::string("unknown");
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    PETL_CHECK(err != EWOULDBLOCK, what, " is in use: another process holds '", path, "' (", holder,
               "); wait for it to finish, stop it, or choose another output directory");
    PETL_FAIL("cannot lock '", path, "' of ", what, ": ", std::strerror(err));
  }
  const std::string who = "host " + host_name() + ", pid " + std::to_string(::getpid()) + ", since " + now_utc() + "\n";
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, who.data(), who.size(), 0) == ssize_t(who.size())) ::fsync(fd_);
}

ProcessLock::~ProcessLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace petl::io

namespace petl::io {

void check_writable_dir(const std::string& dir, const std::string& what) {
  std::error_code ec;
  PETL_CHECK(!fs::exists(dir, ec) || fs::is_directory(dir, ec), what, " '", dir,
             "': expected a directory, found a file");
  fs::create_directories(dir, ec);
  PETL_CHECK(!ec, what, " '", dir, "': cannot create the directory: ", ec.message());
  const std::string probe = (fs::path(dir) / (".petl-write-test." + std::to_string(::getpid()))).string();
  Fd f;
  f.fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  PETL_CHECK(f.fd >= 0, what, " '", dir, "': cannot write there: ", std::strerror(errno));
  const bool ok = ::write(f.fd, "petl\n", 5) == 5 && ::fsync(f.fd) == 0;
  const int err = errno;
  ::unlink(probe.c_str());
  PETL_CHECK(ok, what, " '", dir, "': a test write failed: ", std::strerror(err));
}

}  // namespace petl::io

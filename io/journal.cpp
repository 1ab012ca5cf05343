#include "io/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

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

void append_json_line(const std::string& path, const json& record, const std::string& what) {
  fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  const std::string line = record.dump() + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  PETL_CHECK(fd >= 0, "cannot open ", what, " '", path, "' for appending: ", std::strerror(errno));
  ssize_t w = ::write(fd, line.data(), line.size());
  int err = errno;
  int s = ::fsync(fd);
  ::close(fd);
  PETL_CHECK(w == ssize_t(line.size()), "short write to ", what, " '", path, "' (", w, " of ", line.size(),
             " bytes): ", std::strerror(err));
  PETL_CHECK(s == 0, "fsync of ", what, " '", path, "' failed");
}

}  // namespace petl::io

// Sweep journal reading, torn-tail repair and fsync'd appends (see sweep_journal.h).
#include "harness/sweep_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/error.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Journal read_journal(const std::string& path) {
  Journal j;
  std::ifstream is(path, std::ios::binary);
  if (!is) {
    std::error_code ec;
    PETL_CHECK(!fs::exists(path, ec), "cannot read sweep journal '", path, "'");
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
    json rec;
    try {
      rec = json::parse(line);
    } catch (const json::exception&) {
      j.warnings.push_back(path + ":" + std::to_string(lineno) + ": not valid JSON: ignored");
      continue;
    }
    if (!rec.is_object()) continue;
    auto k = rec.find("sweep_key");
    if (k == rec.end() || !k->is_string()) continue;
    const std::string key = *k;
    const std::string st = rec.value("status", std::string());
    j.count[key]++;
    if (st == "ok") {
      j.status[key] = "ok";
      j.record[key] = rec;
    } else if (j.status[key] != "ok") {
      j.status[key] = "failed";
      j.record[key] = rec;
    }
  }
  return j;
}

bool repair_journal(const std::string& path, const Journal& j) {
  if (!j.torn) return false;
  int fd = ::open(path.c_str(), O_WRONLY);
  PETL_CHECK(fd >= 0, "cannot open sweep journal '", path, "' to cut its torn last line: ", std::strerror(errno));
  int rc = ::ftruncate(fd, off_t(j.good_bytes));
  int err = errno;
  ::fsync(fd);
  ::close(fd);
  PETL_CHECK(rc == 0, "cannot truncate sweep journal '", path, "' to ", j.good_bytes, " bytes: ", std::strerror(err));
  return true;
}

void append_journal_line(const std::string& path, const json& record) {
  fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  const std::string line = record.dump() + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  PETL_CHECK(fd >= 0, "cannot open sweep journal '", path, "' for appending: ", std::strerror(errno));
  ssize_t w = ::write(fd, line.data(), line.size());
  int err = errno;
  int s = ::fsync(fd);
  ::close(fd);
  PETL_CHECK(w == ssize_t(line.size()), "short write to sweep journal '", path, "' (", w, " of ", line.size(),
             " bytes): ", std::strerror(err));
  PETL_CHECK(s == 0, "fsync of sweep journal '", path, "' failed");
}

std::string journal_path(const std::string& out_dir, int shard_index, int shard_count) {
  if (shard_count <= 1) return (fs::path(out_dir) / "results.jsonl").string();
  return (fs::path(out_dir) / ("results.shard-" + std::to_string(shard_index) + "-of-" + std::to_string(shard_count) +
                               ".jsonl"))
      .string();
}

std::vector<std::string> sibling_journals(const std::string& out_dir, const std::string& own) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(out_dir, ec)) return out;
  const auto own_abs = fs::absolute(own).lexically_normal();
  for (auto it = fs::directory_iterator(out_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("results", 0) != 0 || it->path().extension() != ".jsonl" || !it->is_regular_file(ec)) continue;
    if (fs::absolute(it->path()).lexically_normal() == own_abs) continue;
    out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::string> merged_status(const std::vector<std::string>& journals,
                                                 std::vector<std::string>* warnings) {
  std::map<std::string, std::string> st;
  for (const auto& p : journals) {
    Journal j = read_journal(p);
    if (warnings) warnings->insert(warnings->end(), j.warnings.begin(), j.warnings.end());
    for (auto& [k, s] : j.status)
      if (s == "ok" || !st.count(k)) st[k] = s;
  }
  return st;
}

json sweep_failed_record(const json& identity, const std::string& message, const json& provenance) {
  return {{"schema", "petl.result"},
          {"schema_version", 1},
          {"status", "failed"},
          {"error", message},
          {"method", identity.value("method", std::string())},
          {"task", identity.value("task", std::string())},
          {"seed", identity.value("seed", -1)},
          {"protocol", identity.value("protocol", std::string("best_of_10"))},
          {"provenance", provenance}};
}

json sweep_cache_record(const json& identity, bool ok, const std::string& message, const json& provenance) {
  json r = {{"schema", "petl.sweep_cache"},
            {"schema_version", 1},
            {"kind", "cache"},
            {"status", ok ? "ok" : "failed"},
            {"task", identity.value("task", std::string())},
            {"taps", identity.value("taps", std::string())},
            {"splits", identity.value("splits", json::array())},
            {"dtype", identity.value("dtype", std::string())},
            {"provenance", provenance}};
  if (!ok) r["error"] = message;
  return r;
}

}  // namespace petl

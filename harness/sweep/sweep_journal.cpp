// Sweep journal reading, torn-tail repair and fsync'd appends (see sweep_journal.h).
#include "harness/sweep/sweep_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/system.h"
#include "io/journal.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;

Journal read_journal(const std::string& path) {
  Journal j;
  io::JsonLines jl = io::read_json_lines(path, "sweep journal");
  j.lines = jl.lines;
  j.good_bytes = jl.good_bytes;
  j.torn = jl.torn;
  j.warnings = std::move(jl.warnings);
  for (auto& rec : jl.objects) {
    auto k = rec.find("sweep_key");
    if (k == rec.end() || !k->is_string()) continue;
    const std::string key = *k;
    auto s = rec.find("status");  // a status that is not one petl writes counts as failed
    const std::optional<RecordStatus> st =
        s != rec.end() && s->is_string() ? try_parse_enum<RecordStatus>(s->get<std::string>()) : std::nullopt;
    j.count[key]++;
    auto known = j.status.find(key);
    if (st && journal_done(*st)) {
      j.status[key] = *st;
      j.record[key] = rec;
    } else if (known == j.status.end() || !journal_done(known->second)) {
      j.status[key] = RecordStatus::kFailed;
      j.record[key] = rec;
    }
  }
  return j;
}

bool repair_journal(const std::string& path, const Journal& j) {
  if (!j.torn) return false;
  io::cut_torn_tail(path, j.good_bytes, "sweep journal");
  return true;
}

void append_journal_line(const std::string& path, const json& record) {
  io::append_json_line(path, record, "sweep journal");
}

std::string journal_path(const std::string& out_dir, int shard_index, int shard_count) {
  if (shard_count <= 1) return (fs::path(out_dir) / "results.jsonl").string();
  return (fs::path(out_dir) /
          ("results.shard-" + std::to_string(shard_index) + "-of-" + std::to_string(shard_count) + ".jsonl"))
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

std::map<std::string, RecordStatus> merged_status(const std::vector<std::string>& journals,
                                                  std::vector<std::string>* warnings) {
  std::map<std::string, RecordStatus> st;
  for (const auto& p : journals) {
    Journal j = read_journal(p);
    if (warnings) warnings->insert(warnings->end(), j.warnings.begin(), j.warnings.end());
    for (auto& [k, s] : j.status)
      if (journal_done(s) || !st.count(k)) st[k] = s;
  }
  return st;
}

Record failed_job_record(const json& identity, const std::string& message, const Provenance& provenance) {
  Record r = failed_record(
      identity.value("method", std::string()), identity.value("task", std::string()), identity.value("seed", -1),
      try_parse_enum<Protocol>(identity.value("protocol", std::string())).value_or(Protocol::kBestOf10), message,
      provenance);
  if (identity.contains("shots")) {  // a few-shot job
    r.benchmark = "fewshot";
    r.shots = identity.value("shots", 0);
    r.split_seed = identity.value("split_seed", -1);
  }
  return r;
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

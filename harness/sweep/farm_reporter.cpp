// The sweep's journal and progress lines (see farm_reporter.h).
#include "harness/sweep/farm_reporter.h"

#include <cstdarg>
#include <cstdio>

#include "core/system.h"
#include "core/text.h"

namespace petl {
using json = nlohmann::json;

void SweepReporter::say(const char* fmt, ...) {
  if (!o_.verbose) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stdout, fmt, ap);
  va_end(ap);
  std::fflush(stdout);
}

std::map<std::string, EarlierOutcome> SweepReporter::earlier() {
  Journal jr = read_journal(o_.journal);
  for (auto& w : jr.warnings) std::fprintf(stderr, "petl sweep: warning: %s\n", w.c_str());
  if (repair_journal(o_.journal, jr))
    std::fprintf(stderr, "petl sweep: cut the torn last line of %s (%lld bytes kept)\n", o_.journal.c_str(),
                 (long long)jr.good_bytes);
  // Another shard's line counts where this journal has none, or only a failed one and it is finished.
  for (const auto& other : o_.other_journals) {
    Journal oj = read_journal(other);
    for (auto& w : oj.warnings) std::fprintf(stderr, "petl sweep: warning: %s\n", w.c_str());
    for (auto& [k, st] : oj.status) {
      auto mine = jr.status.find(k);
      if (mine != jr.status.end() && (journal_done(mine->second) || !journal_done(st))) continue;
      jr.status[k] = st;
      jr.record[k] = oj.record[k];
    }
  }
  std::map<std::string, EarlierOutcome> out;
  for (auto& [k, st] : jr.status) {
    if (journal_done(st)) ok_keys_.insert(k);
    const json& rec = jr.record[k];
    out[k] = {st, rec.is_object() ? rec.value("error", std::string()) : std::string()};
  }
  return out;
}

void SweepReporter::started(const JobGraph& g, const RankInfo& info) {
  say("petl sweep %s: %zu jobs; %d already ok, %d failed earlier%s, %d to run on %d rank(s) × %d thread(s)%s\n",
      o_.sweep_name.c_str(), g.size(), g.earlier_ok(), g.earlier_failed(),
      o_.retry_failed ? "" : " (skipped; retry_failed re-runs them)", g.to_run(), info.size, info.threads,
      g.unneeded() ? (", " + std::to_string(g.unneeded()) + " cache build(s) not needed").c_str() : "");
}

// The provenance of a job's record: the sweep's own (git_commit, libtorch_version) and the
// outcome's host, threads, time, argv and rank.
Provenance SweepReporter::provenance(const FarmOutcome& o) const {
  Provenance p = provenance_from_json(o_.provenance.is_object() ? o_.provenance : json::object(), "sweep provenance");
  p.host = o.host.empty() ? host_name() : o.host;
  p.threads = o.threads;
  p.time_utc = o.time_utc.empty() ? now_utc() : o.time_utc;
  p.argv = o.argv;
  p.extra["rank"] = o.rank < 0 ? -1 : o.rank;
  return p;
}

// The journal line of an outcome: the child's ok record, a cache record, or a failed record.
json SweepReporter::record_of(const FarmJob& job, const FarmOutcome& o) const {
  json rec;
  const bool ran = o.rank >= 0;
  if (job.is_cache) {
    rec = sweep_cache_record(job.identity, o.ok, o.error, to_json(provenance(o)));
    if (ran) rec["wall_s"] = o.wall_s;
  } else if (o.ok) {
    rec = o.record.is_object() ? o.record : json::object();
  } else {
    rec = to_json(failed_job_record(job.identity, o.error, provenance(o)));
  }
  if (!o.ok || job.is_cache) rec["log"] = ran ? json(job.log_file) : json(nullptr);
  if (ran) {
    rec["sweep_rank"] = o.rank;
    rec["sweep_wall_s"] = o.wall_s;
  }
  rec["sweep_key"] = job.key;
  rec["sweep"] = o_.sweep_name;
  return rec;
}

void SweepReporter::finished(const FarmJob& job, const FarmOutcome& o, int done, int total) {
  const json rec = record_of(job, o);
  if (ok_keys_.count(job.key)) {
    std::fprintf(stderr, "petl sweep: %s already has an ok record; not writing another\n", job.key.c_str());
  } else {
    append_journal_line(o_.journal, rec);  // a petl::Error stops the farm (kFarmError)
    if (auto s = try_parse_enum<RecordStatus>(rec.value("status", std::string())); s && journal_done(*s))
      ok_keys_.insert(job.key);
  }
  print_line(job, o, rec, done, total);
}

void SweepReporter::print_line(const FarmJob& job, const FarmOutcome& o, const json& rec, int done, int total) {
  std::string what;
  if (job.is_cache) {
    what = "cache " + job.identity.value("task", std::string()) + " taps=" + job.identity.value("taps", std::string());
  } else {
    what = job.identity.value("method", std::string()) + " " + job.identity.value("task", std::string()) +
           (job.identity.contains("shots")  // a few-shot job: its list
                ? " " + std::to_string(job.identity.value("shots", 0)) + "-shot split " +
                      std::to_string(job.identity.value("split_seed", -1))
                : std::string()) +
           " seed " + std::to_string(job.identity.value("seed", -1)) +
           (job.identity.contains("stage") ? " [" + job.identity.value("stage", std::string()) + "]" : std::string());
    if (job.identity.contains("sets"))
      for (auto& [k, v] : job.identity["sets"].items()) what += " " + k + "=" + v.get<std::string>();
  }
  std::string acc;
  if (o.ok && rec.contains("accuracy") && rec["accuracy"].is_number()) {
    char b[32];
    std::snprintf(b, sizeof b, " %.2f%%", rec["accuracy"].get<double>());
    acc = b;
  }
  const std::string why = o.ok ? "" : ": " + first_line(o.error);
  const std::string rank = o.rank < 0 ? "-" : std::to_string(o.rank);
  say("[%d/%d] %-6s %s %s%s%s (%.1f s, rank %s)\n", done, total, o.ok ? "ok" : "FAILED", job.key.c_str(), what.c_str(),
      acc.c_str(), why.c_str(), o.rank < 0 ? 0.0 : o.wall_s, rank.c_str());
}

void SweepReporter::stopping(const std::string& why, double grace_s) {
  say("petl sweep: stop requested (%s): stopping every job (SIGTERM, SIGKILL after %g s); finished jobs stay "
      "recorded, re-run the same command to resume\n",
      why.c_str(), grace_s);
}

void SweepReporter::summary(const JobGraph& g, int n_ok, int n_failed, int exit_code,
                            const std::string& interrupted_by) {
  int ok = 0, failed = 0, todo = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (g.job(i).is_cache) continue;
    if (g.state(i) == JobGraph::State::kOk)
      ++ok;
    else if (g.state(i) == JobGraph::State::kFailed)
      ++failed;
    else
      ++todo;
  }
  say("petl sweep %s: %d ok, %d failed, %d not finished (training jobs); this run: %d ok, %d failed in %.1f s; "
      "journal %s\n",
      o_.sweep_name.c_str(), ok, failed, todo, n_ok, n_failed, seconds_since(start_), o_.journal.c_str());
  if (exit_code == kFarmInterrupted)
    say("petl sweep: interrupted (%s); exit status %d — re-run the same command to resume\n", interrupted_by.c_str(),
        kFarmInterrupted);
}

}  // namespace petl

// run_bundle (see bundle.h): the jobs of one task through the job runner's steps on shared inputs,
// then one test pass for every deferred snapshot.
#include "harness/train/bundle.h"

#include <cstdio>
#include <map>
#include <memory>
#include <tuple>

#include "core/clock.h"
#include "core/error.h"
#include "core/stop.h"
#include "core/text.h"
#include "harness/train/job_runner.h"

namespace petl {
using json = nlohmann::json;

namespace {

struct Member {
  size_t index = 0;
  JobSpec spec;
  DeferEvaluation deferred;
  std::unique_ptr<JobRunner> runner;
  std::string label() const { return runner ? runner->label() : spec.method + "/" + spec.task; }
};

void check_shared(const std::vector<JobSpec>& specs) {
  PETL_CHECK(!specs.empty(), "petl bundle: no jobs given");
  const JobSpec& a = specs[0];
  for (size_t i = 0; i < specs.size(); ++i) {
    const JobSpec& b = specs[i];
    auto same = [&](const std::string& x, const std::string& y, const char* what) {
      PETL_CHECK(x == y, "petl bundle: job ", i + 1, " (", b.method, ") has ", what, " '", y, "' but job 1 (", a.method,
                 ") has '", x, "': the jobs of a bundle share it");
    };
    same(a.data_root, b.data_root, "--data-root");
    same(a.task, b.task, "--task");
    same(a.backbone_file, b.backbone_file, "--backbone");
    same(a.arch, b.arch, "--arch");
    same(a.device, b.device, "--device");
    same(to_string(a.precision), to_string(b.precision), "--precision");
    same(std::to_string(a.threads), std::to_string(b.threads), "--threads");
    PETL_CHECK(b.dp == 1, "petl bundle: job ", i + 1, " (", b.method, ") asks for --dp ", b.dp,
               ": data-parallel jobs run alone (petl run --dp)");
    PETL_CHECK(!b.dry_run, "petl bundle: --dry-run is not supported (job ", i + 1, ")");
  }
}

class BundleRunner {
 public:
  explicit BundleRunner(const std::vector<JobSpec>& specs) : members_(specs.size()), out_(specs.size()) {
    for (size_t i = 0; i < specs.size(); ++i) {
      members_[i].index = i;
      members_[i].spec = specs[i];
      out_[i].method = specs[i].method;
      out_[i].task = specs[i].task;
    }
  }

  std::vector<BundleOutcome> run() {
    stop::Scope stoppable;  // a stop between jobs or during the test pass: every trained job's state is saved
    try {
      for (auto& m : members_) {
        stop::check();
        try {
          train(m);
        } catch (const stop::Stopped&) {
          throw;
        } catch (const std::exception& e) {
          m.deferred.clear();
          write_failed(m, e.what());
        }
      }
      evaluate_pending();
    } catch (const stop::Stopped& s) {
      std::fprintf(stderr,
                   "[petl] bundle stopped by %s; every job trained so far has its state saved: re-run with "
                   "--resume to continue\n",
                   stop::signal_name(s.signal()).c_str());
      std::fflush(stderr);
      stop::die(s.signal());
    }
    return out_;
  }

 private:
  // A job's steps up to its training; jobs whose evaluation is not deferred are finished too.
  void train(Member& m) {
    m.runner = std::make_unique<JobRunner>(m.spec, inputs_, m.deferred);
    JobRunner& r = *m.runner;
    r.resolve();
    r.build();
    if (r.reuse_finished()) {
      out_[m.index].record = r.record();
      m.runner.reset();
      return;
    }
    r.load_sources();
    r.train();
    if (r.evaluated()) finish(m);  // evaluated already (or does_not_fit)
  }

  void finish(Member& m) {
    m.runner->finish();
    out_[m.index].record = m.runner->record();
    m.runner.reset();
  }

  void write_failed(Member& m, const std::string& why) {
    std::fprintf(stderr, "[petl] %s: FAILED: %s\n", m.label().c_str(), first_line(why).c_str());
    out_[m.index].error = why;
    m.runner.reset();
    if (m.spec.out_dir.empty()) return;
    try {
      append_record(m.spec.out_dir, failed_record(m.spec, why));
    } catch (const std::exception& w) {  // the job's own error is the one to report
      std::fprintf(stderr, "[petl] %s: the failed record was not written: %s\n", m.label().c_str(), w.what());
    }
  }

  // One pass per test source (and evaluation batch size and backbone) for every pending snapshot.
  void evaluate_pending() {
    std::map<std::tuple<const FeatureSources*, int64_t, const JobBackbone*>, std::vector<Member*>> groups;
    for (auto& m : members_)
      if (m.runner && m.deferred.pending())
        groups[{&m.runner->sources(), m.runner->job().recipe().eval_batch_size, &m.runner->backbone()}].push_back(&m);
    for (auto& [key, group] : groups) evaluate_group(group, std::get<1>(key));
  }

  void evaluate_group(const std::vector<Member*>& group, int64_t eval_batch) {
    std::vector<SnapshotSet> sets;
    CacheTaps taps;
    size_t n_snap = 0;
    for (Member* m : group) {
      sets.push_back({&m->runner->method(), &m->deferred.snapshots()});
      taps = taps | m->deferred.taps();
      n_snap += m->deferred.snapshots().size();
    }
    JobRunner& first = *group.front()->runner;
    const auto t0 = SteadyClock::now();
    std::vector<std::vector<EvalResult>> results;
    try {
      results =
          evaluate_snapshot_sets(sets, *first.sources().test, first.backbone().model, taps, eval_batch,
                                 first.job().device, first.spec().progress, "eval bundle " + first.job().task.name);
    } catch (const stop::Stopped&) {
      throw;
    } catch (const std::exception& e) {
      for (Member* m : group) write_failed(*m, std::string("the bundle's test pass failed: ") + e.what());
      return;
    }
    const double pass_s = seconds_since(t0);
    const double share = pass_s / double(group.size());
    std::fprintf(stderr, "[petl] bundle %s: one test pass evaluated %zu snapshots of %zu jobs in %.1f s\n",
                 first.job().task.name.c_str(), n_snap, group.size(), pass_s);
    const std::string how =
        "snapshots of the trainable tensors at each evaluation epoch, evaluated in one pass over "
        "the test split's frozen-backbone features (" +
        taps.str() + ") shared by the " + std::to_string(group.size()) + " job(s) of a bundle";
    for (size_t j = 0; j < group.size(); ++j) {
      Member& m = *group[j];
      JobRunner& r = *m.runner;
      r.add_evaluations(m.deferred.snapshots(), results[j], how);
      r.record().timing->eval_s += share;
      r.record().bundle = {{"jobs", members_.size()},
                           {"position", m.index + 1},
                           {"jobs_in_test_pass", group.size()},
                           {"snapshots_in_test_pass", n_snap},
                           {"test_pass_s", pass_s},
                           {"note", "timing.eval_s is this job's equal share of the one test pass"}};
      r.add_seconds(share);
      m.deferred.clear();
      try {
        finish(m);
      } catch (const std::exception& e) {
        write_failed(m, e.what());
      }
    }
  }

  std::vector<Member> members_;
  std::vector<BundleOutcome> out_;
  JobInputs inputs_{/*shared=*/true};
};

}  // namespace

std::vector<BundleOutcome> run_bundle(const std::vector<JobSpec>& specs) {
  check_shared(specs);
  return BundleRunner(specs).run();
}

}  // namespace petl

// run_bundle (see bundle.h): the jobs of one task on shared inputs, one test pass for every snapshot.
#include "harness/train/bundle.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "core/error.h"
#include "core/stop.h"
#include "core/text.h"
#include "harness/train/precision.h"
#include "harness/train/feature_source.h"
#include "harness/train/job_state.h"
#include "harness/train/job_steps.h"
#include "io/journal.h"

namespace petl {
namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace job_steps;

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Member {
  size_t index = 0;
  JobSpec spec;
  std::optional<ResolvedJob> job;
  std::shared_ptr<JobBackbone> bb;
  std::shared_ptr<Method> method;
  std::shared_ptr<FeatureSources> src;
  Record r;
  DeferredEval pending;
  int num_classes = 0, image_size = 0, eval_batch = 0;
  double wall_s = 0;  // this job's own work (its share of the test pass is added to it)
  std::string label() const { return spec.method + "/" + (job ? job->task.name : spec.task); }
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
    same(to_string(parse_precision(a.precision, "--precision")), to_string(parse_precision(b.precision, "--precision")),
         "--precision");
    PETL_CHECK(a.threads == b.threads, "petl bundle: job ", i + 1, " has --threads ", b.threads, " but job 1 has ",
               a.threads, ": the jobs of a bundle share it");
    PETL_CHECK(b.dp == 1, "petl bundle: job ", i + 1, " (", b.method, ") asks for --dp ", b.dp,
               ": data-parallel jobs run alone (petl run --dp)");
    PETL_CHECK(!b.dry_run, "petl bundle: --dry-run is not supported (job ", i + 1, ")");
  }
}

// What makes two jobs' feature sources the same objects.
std::string sources_key(const ResolvedJob& job, const JobBackbone& bb, const BackboneNeeds& needs) {
  const auto& s = job.spec;
  const auto& r = job.recipe();
  return json{{"cache", s.feature_cache.empty() ? "" : fs::absolute(s.feature_cache).string()},
              {"taps", s.feature_cache.empty() ? "live" : cache_taps_for(needs).str()},
              {"dtype", s.cache_dtype},
              {"budget", s.feature_memory_budget},
              {"normalisation", r.normalisation},
              {"train", r.train_split},
              {"test", r.test_split},
              {"limits", {s.limit_train, s.limit_test}},
              {"skip_bad", s.skip_bad},
              {"backbone", bb.info.value("sha256", json())},
              {"image_size", bb.model->cfg_.img_size}}
      .dump();
}

void write_failed(Member& m, const std::string& why, std::vector<BundleOutcome>& out) {
  std::fprintf(stderr, "[petl] %s: FAILED: %s\n", m.label().c_str(), first_line(why).c_str());
  out[m.index].error = why;
  if (m.spec.out_dir.empty()) return;
  try {
    append_record(m.spec.out_dir, failed_record(m.spec, why));
  } catch (const std::exception& w) {  // the job's own error is the one to report
    std::fprintf(stderr, "[petl] %s: the failed record was not written: %s\n", m.label().c_str(), w.what());
  }
}

class BundleRunner {
 public:
  explicit BundleRunner(const std::vector<JobSpec>& specs) : out_(specs.size()) {
    for (size_t i = 0; i < specs.size(); ++i) {
      members_.push_back(Member{});
      members_.back().index = i;
      members_.back().spec = specs[i];
      out_[i].method = specs[i].method;
      out_[i].task = specs[i].task;
    }
  }

  std::vector<BundleOutcome> run() {
    stop::Scope stoppable;  // a stop between jobs or during the test pass: every trained job's state is saved
    try {
      for (auto& m : members_) {
        stop::check();
        const auto t0 = Clock::now();
        try {
          train(m);
        } catch (const stop::Stopped&) {
          throw;
        } catch (const std::exception& e) {
          m.pending.snapshots.clear();
          write_failed(m, e.what(), out_);
        }
        m.wall_s += seconds_since(t0);
      }
      evaluate_pending();
    } catch (const stop::Stopped& s) {
      std::fprintf(stderr, "[petl] bundle stopped by %s; every job trained so far has its state saved: re-run with "
                   "--resume to continue\n", stop::signal_name(s.signal()).c_str());
      std::fflush(stderr);
      stop::die(s.signal());
    }
    return out_;
  }

 private:
  std::shared_ptr<JobBackbone> backbone_for(const ResolvedJob& job) {
    // A method that back-propagates through the backbone may change it (LoRA, adapters): its own copy.
    const BackboneNeeds needs = probe_needs(job.spec.method, job.eff.settings, job.recipe().drop_path_rate);
    const std::string key = job.spec.backbone_file + "|" + job.spec.arch + "|" + format_double(job.recipe().drop_path_rate);
    if (!needs.grad_through_backbone) {
      auto it = backbones_.find(key);
      if (it != backbones_.end()) return it->second;
    }
    auto bb = std::make_shared<JobBackbone>(load_job_backbone(job));
    bb->model->to(job.device);
    if (!needs.grad_through_backbone) backbones_[key] = bb;
    return bb;
  }

  void train(Member& m) {
    const ResolvedJob& job = m.job.emplace(resolve_job(m.spec));
    if (!m.spec.out_dir.empty()) io::check_writable_dir(m.spec.out_dir, "--out");
    m.bb = backbone_for(job);
    m.image_size = m.bb->model->cfg_.img_size;
    m.num_classes = job_num_classes(job);
    m.method = build_job_method(job, m.bb->model, m.num_classes);
    m.method->to(job.device);
    m.r = record_header(job, *m.method, *m.bb);
    if (auto done = reuse_finished(job, m.r.job_key)) {
      out_[m.index].record = *done;
      m.method.reset();
      return;
    }
    const std::string skey = sources_key(job, *m.bb, m.method->needs());
    auto& src = sources_[skey];
    if (!src) src = std::make_shared<FeatureSources>(make_feature_sources(job, *m.bb, m.method->needs()));
    m.src = src;
    check_test_labels(job, *m.src, m.num_classes);
    if (!m.src->cache_info.is_null()) m.r.feature_cache = m.src->cache_info;
    const std::string state_path =
        m.spec.out_dir.empty() || m.spec.state_every_min < 0 ? "" : job_state_path(m.spec.out_dir, m.r.job_key);
    m.eval_batch = int(job.recipe().eval_batch_size);
    train_and_evaluate(job, *m.method, m.bb->model, *m.src, m.r, m.image_size, state_path, &m.pending);
    if (m.pending.snapshots.empty()) finish(m, 0.0);  // evaluated already (or does_not_fit)
  }

  void finish(Member& m, double eval_share_s) {
    m.wall_s += eval_share_s;
    finish_record(*m.job, *m.method, m.r, *m.src, m.num_classes, m.image_size, m.wall_s, 0);
    out_[m.index].record = m.r;
    m.method.reset();
  }

  // One pass per test source (and evaluation batch size and backbone) for every pending snapshot.
  void evaluate_pending() {
    std::map<std::tuple<const FeatureSources*, int, const JobBackbone*>, std::vector<Member*>> groups;
    for (auto& m : members_)
      if (!m.pending.snapshots.empty()) groups[{m.src.get(), m.eval_batch, m.bb.get()}].push_back(&m);
    for (auto& [k, group] : groups) {
      std::vector<SnapshotSet> sets;
      CacheTaps taps;
      size_t n_snap = 0;
      for (Member* m : group) {
        sets.push_back({m->method.get(), &m->pending.snapshots});
        taps.cls |= m->pending.taps.cls;
        taps.kv |= m->pending.taps.kv;
        n_snap += m->pending.snapshots.size();
      }
      Member& first = *group.front();
      const auto t0 = Clock::now();
      std::vector<std::vector<EvalResult>> results;
      try {
        results = evaluate_snapshot_sets(sets, *first.src->test, first.bb->model, taps, std::get<1>(k),
                                         first.job->device, first.spec.progress, "eval bundle " + first.job->task.name);
      } catch (const stop::Stopped&) {
        throw;
      } catch (const std::exception& e) {
        for (Member* m : group) {
          m->pending.snapshots.clear();
          write_failed(*m, std::string("the bundle's test pass failed: ") + e.what(), out_);
        }
        continue;
      }
      const double pass_s = seconds_since(t0);
      const double share = pass_s / double(group.size());
      std::fprintf(stderr, "[petl] bundle %s: one test pass evaluated %zu snapshots of %zu jobs in %.1f s\n",
                   first.job->task.name.c_str(), n_snap, group.size(), pass_s);
      for (size_t j = 0; j < group.size(); ++j) {
        Member& m = *group[j];
        const auto& snaps = m.pending.snapshots;
        for (size_t i = 0; i < snaps.size(); ++i) {
          m.r.evals.push_back({snaps[i].epoch, results[j][i].accuracy, snaps[i].train_loss});
          std::fprintf(stderr, "[petl] %s epoch %d: loss %.4f, test acc %.2f%%\n", m.label().c_str(), snaps[i].epoch,
                       snaps[i].train_loss, results[j][i].accuracy);
        }
        m.r.settings["evaluation"] =
            "snapshots of the trainable tensors at each evaluation epoch, evaluated in one pass over the test "
            "split's frozen-backbone features (" + taps.str() + ") shared by the " + std::to_string(group.size()) +
            " job(s) of a bundle";
        m.r.timing->eval_s += share;
        m.r.extra["bundle"] = {{"jobs", members_.size()},
                               {"position", m.index + 1},
                               {"jobs_in_test_pass", group.size()},
                               {"snapshots_in_test_pass", n_snap},
                               {"test_pass_s", pass_s},
                               {"note", "timing.eval_s is this job's equal share of the one test pass"}};
        try {
          finish(m, share);
        } catch (const std::exception& e) {
          write_failed(m, e.what(), out_);
        }
        m.pending.snapshots.clear();
      }
    }
  }

  std::vector<Member> members_;
  std::vector<BundleOutcome> out_;
  std::map<std::string, std::shared_ptr<JobBackbone>> backbones_;
  std::map<std::string, std::shared_ptr<FeatureSources>> sources_;
};

}  // namespace

std::vector<BundleOutcome> run_bundle(const std::vector<JobSpec>& specs) {
  check_shared(specs);
  return BundleRunner(specs).run();
}

}  // namespace petl

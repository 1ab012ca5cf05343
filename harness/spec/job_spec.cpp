// Field-by-field equality of the specs (the command-line round-trip tests compare with it).
#include "harness/spec/job_spec.h"

#include <tuple>

namespace petl {

namespace {
auto fields(const JobSpec& s) {
  return std::tie(s.method, s.task, s.benchmark, s.shots, s.split_seed, s.data_root, s.backbone_file, s.arch,
                  s.pos_resample, s.recipe, s.protocol, s.stage, s.select_from, s.out_dir, s.record_file, s.epochs,
                  s.batch_size, s.seed, s.threads, s.device, s.precision, s.set, s.dry_run, s.skip_bad,
                  s.allow_missing_classes, s.progress, s.save_checkpoint, s.reuse_done, s.limit_train, s.limit_test,
                  s.feature_cache, s.cache_dtype, s.feature_memory_budget, s.state_every_min, s.micro_batch,
                  s.memory_budget, s.dp);
}
auto fields(const CacheBuildSpec& s) {
  return std::tie(s.data_root, s.task, s.benchmark, s.backbone_file, s.arch, s.pos_resample, s.taps, s.splits, s.dtype,
                  s.normalisation, s.out_dir, s.chunk_images, s.precision, s.threads, s.progress);
}
}  // namespace

bool JobSpec::operator==(const JobSpec& o) const { return fields(*this) == fields(o); }
bool CacheBuildSpec::operator==(const CacheBuildSpec& o) const { return fields(*this) == fields(o); }

std::vector<std::map<std::string, std::string>> grid_points(
    const std::map<std::string, std::vector<std::string>>& grid) {
  std::vector<std::map<std::string, std::string>> pts(1);
  for (const auto& [k, vals] : grid) {
    std::vector<std::map<std::string, std::string>> next;
    for (const auto& p : pts)
      for (const auto& v : vals) {
        auto q = p;
        q[k] = v;
        next.push_back(std::move(q));
      }
    pts = std::move(next);
  }
  return pts;
}

}  // namespace petl

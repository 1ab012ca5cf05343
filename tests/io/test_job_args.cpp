// Tests for the one command line of a job (app/job_args.h): a spec written as arguments and read
// back is the same spec, for every flag of `petl run` and `petl cache build` (each field changed
// alone, and all at once); flags at their default are left out; bundles carry their members'
// arguments; bad values are errors naming the flag.
#include <functional>
#include <gtest/gtest.h>
#include <set>

#include "app/job_args.h"
#include "core/error.h"

namespace petl::cli {
namespace {

JobSpec base_spec() {
  JobSpec s;
  s.method = "synqt";
  s.task = "cifar";
  s.data_root = "/data/vtab";
  s.out_dir = "runs";  // the parser's default
  return s;
}

// One mutation per field of JobSpec that a flag carries, each to a value other than the default.
const std::vector<std::pair<std::string, std::function<void(JobSpec&)>>>& run_mutations() {
  static const std::vector<std::pair<std::string, std::function<void(JobSpec&)>>> m = {
      {"backbone", [](JobSpec& s) { s.backbone_file = "ViT-B_16.npz"; }},
      {"arch", [](JobSpec& s) { s.arch = "vit_base_patch16_224_in21k"; }},
      {"recipe", [](JobSpec& s) { s.recipe = "mini"; }},
      {"epochs", [](JobSpec& s) { s.epochs = 7; }},
      {"batch-size", [](JobSpec& s) { s.batch_size = 16; }},
      {"seed", [](JobSpec& s) { s.seed = 0; }},
      {"protocol", [](JobSpec& s) { s.protocol = Protocol::kFinal; }},
      {"threads", [](JobSpec& s) { s.threads = 3; }},
      {"device", [](JobSpec& s) { s.device = "cuda:1"; }},
      {"precision", [](JobSpec& s) { s.precision = Precision::kBf16; }},
      {"pos-resample", [](JobSpec& s) { s.pos_resample = PosResample::kDinov2; }},
      {"benchmark", [](JobSpec& s) { s.benchmark = Benchmark::kFewshot; }},
      {"stage", [](JobSpec& s) { s.stage = "search"; }},
      {"select-from",
       [](JobSpec& s) {
         s.select_from = {"a/results.jsonl", "b/results.jsonl"};
       }},
      {"shots", [](JobSpec& s) { s.shots = 16; }},
      {"split-seed", [](JobSpec& s) { s.split_seed = 2; }},
      {"set",
       [](JobSpec& s) {
         s.set = {"lr=0.1", "token_nums=4", "lr=0.2"};
       }},
      {"skip-bad", [](JobSpec& s) { s.skip_bad = true; }},
      {"allow-missing-classes", [](JobSpec& s) { s.allow_missing_classes = true; }},
      {"no-progress", [](JobSpec& s) { s.progress = false; }},
      {"out", [](JobSpec& s) { s.out_dir = "/tmp/out dir"; }},
      {"dry-run", [](JobSpec& s) { s.dry_run = true; }},
      {"feature-cache", [](JobSpec& s) { s.feature_cache = "cache"; }},
      {"dp", [](JobSpec& s) { s.dp = 4; }},
      {"feature-memory-budget", [](JobSpec& s) { s.feature_memory_budget = int64_t(8) << 30; }},
      {"cache-dtype", [](JobSpec& s) { s.cache_dtype = CacheDtype::kFloat16; }},
      {"micro-batch", [](JobSpec& s) { s.micro_batch = 8; }},
      {"memory-budget", [](JobSpec& s) { s.memory_budget = int64_t(3) << 29; }},
      {"no-checkpoint", [](JobSpec& s) { s.save_checkpoint = false; }},
      {"resume", [](JobSpec& s) { s.reuse_done = true; }},
      {"state-every", [](JobSpec& s) { s.state_every_min = 0.25; }},
      {"record-file", [](JobSpec& s) { s.record_file = "rec.json"; }},
  };
  return m;
}

JobSpec read_back(const JobSpec& s) {
  auto r = parse_run_args(run_args(s));
  EXPECT_TRUE(r.has_value());
  return r.value_or(JobSpec{});
}

TEST(JobArgs, EveryRunFlagRoundTripsAlone) {
  const JobSpec base = base_spec();
  EXPECT_EQ(read_back(base), base);
  EXPECT_EQ(run_args(base), (Args{"--method", "synqt", "--task", "cifar", "--data-root", "/data/vtab"}))
      << "flags at their default are left out";
  for (const auto& [flag, mutate] : run_mutations()) {
    JobSpec s = base;
    mutate(s);
    ASSERT_NE(s, base) << flag << ": the mutation changed nothing";
    const Args a = run_args(s);
    EXPECT_NE(std::find(a.begin(), a.end(), "--" + flag), a.end()) << flag << " not written";
    EXPECT_EQ(read_back(s), s) << flag;
  }
  // "off" and the other ends of the value ranges.
  JobSpec s = base;
  s.state_every_min = JobSpec::kStateNever;
  EXPECT_EQ(read_back(s), s);
  s.state_every_min = 0;
  EXPECT_EQ(read_back(s), s);
  s.out_dir = "";  // no output directory at all
  EXPECT_EQ(read_back(s), s);
}

TEST(JobArgs, EveryFlagOfThePetlRunCommandLineIsCoveredAndAllTogetherRoundTrip) {
  JobSpec all = base_spec();
  std::set<std::string> mutated;
  for (const auto& [flag, mutate] : run_mutations()) {
    mutate(all);
    mutated.insert(flag);
  }
  EXPECT_EQ(read_back(all), all);
  // Every option `petl run --help` documents is one of them (or a required one).
  const auto description = run_options_description();
  for (const auto& o : description.options()) {
    const std::string name = o->long_name();
    if (name == "method" || name == "task" || name == "data-root") continue;
    EXPECT_TRUE(mutated.count(name)) << "--" << name << " has no round-trip case";
  }
  EXPECT_EQ(mutated.size() + 3, description.options().size());
  // The command a child gets starts with the subcommand.
  EXPECT_EQ(run_command(all).front(), "run");
  // Provenance: the parser keeps the argv it read.
  EXPECT_EQ(parse_run_args(run_args(all))->argv, run_args(all));
}

TEST(JobArgs, BadValuesNameTheFlagAndWhatWasExpected) {
  auto error_of = [](Args a) {
    Args full = {"--method", "m", "--task", "t", "--data-root", "d"};
    full.insert(full.end(), a.begin(), a.end());
    try {
      parse_run_args(full);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(error_of({"--precision", "fp16"}).find("--precision 'fp16': expected fp32 or bf16"), std::string::npos);
  EXPECT_NE(error_of({"--protocol", "best"}).find("--protocol 'best': expected best_of_10, final or val_select"),
            std::string::npos);
  EXPECT_NE(error_of({"--epochs", "ten"}).find("--epochs 'ten': expected an integer"), std::string::npos);
  EXPECT_NE(error_of({"--micro-batch", "-1"}).find("expected an integer >= 0"), std::string::npos);
  EXPECT_NE(error_of({"--memory-budget", "0"}).find("expected a size > 0"), std::string::npos);
  EXPECT_NE(error_of({"--state-every", "soon"}).find("--state-every 'soon'"), std::string::npos);
  EXPECT_NE(error_of({"--cache-dtype", "int8"}).find("expected float32 or float16"), std::string::npos);
  EXPECT_NE(error_of({"--frobnicate"}).find("see --help"), std::string::npos);
  try {
    parse_run_args({"--task", "t", "--data-root", "d"});
    ADD_FAILURE() << "no --method accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("method"), std::string::npos) << e.what();
  }
}

TEST(JobArgs, CacheBuildFlagsRoundTrip) {
  CacheBuildSpec base;
  base.data_root = "/data";
  base.task = "dtd";
  base.taps = CacheTaps::parse("kv");
  base.out_dir = "/cache";
  auto back = [](const CacheBuildSpec& s) { return parse_cache_build_args(cache_build_args(s)).value(); };
  EXPECT_EQ(back(base), base);
  EXPECT_EQ(cache_build_args(base), (Args{"--data-root", "/data", "--task", "dtd", "--taps", "kv", "--out", "/cache"}));
  const std::vector<std::function<void(CacheBuildSpec&)>> mutations = {
      [](CacheBuildSpec& s) { s.backbone_file = "b.npz"; },
      [](CacheBuildSpec& s) { s.arch = "vit_small_patch16_224_in21k"; },
      [](CacheBuildSpec& s) { s.pos_resample = PosResample::kDinov2; },
      [](CacheBuildSpec& s) { s.benchmark = Benchmark::kFewshot; },
      [](CacheBuildSpec& s) { s.taps = CacheTaps::parse("cls+kv"); },
      [](CacheBuildSpec& s) { s.splits = {"train800val200"}; },
      [](CacheBuildSpec& s) { s.dtype = CacheDtype::kFloat16; },
      [](CacheBuildSpec& s) { s.normalisation = "inception"; },
      [](CacheBuildSpec& s) { s.chunk_images = 64; },
      [](CacheBuildSpec& s) { s.precision = Precision::kBf16; },
      [](CacheBuildSpec& s) { s.threads = 2; },
      [](CacheBuildSpec& s) { s.progress = false; },
  };
  CacheBuildSpec all = base;
  for (const auto& m : mutations) {
    CacheBuildSpec s = base;
    m(s);
    ASSERT_NE(s, base);
    EXPECT_EQ(back(s), s);
    m(all);
  }
  EXPECT_EQ(back(all), all);
  EXPECT_EQ(cache_build_command(all).at(1), "build");
}

TEST(JobArgs, ABundleCarriesEachMembersArguments) {
  JobSpec a = base_spec(), b = base_spec();
  b.method = "linear";
  b.seed = 2;
  b.set = {"lr=0.5"};
  const Args cmd = bundle_command({run_command(a), run_command(b)});
  ASSERT_EQ(cmd.size(), 5u);
  EXPECT_EQ(cmd[0], "bundle");
  EXPECT_EQ(cmd[1], "--job");
  const auto members = bundle_members({cmd[2], cmd[4]});
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(*parse_run_args(members[0]), a);
  EXPECT_EQ(*parse_run_args(members[1]), b);
  EXPECT_THROW(bundle_members({"[\"--method\", 3"}), Error);
}

}  // namespace
}  // namespace petl::cli

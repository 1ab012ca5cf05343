// `petl sweep CONFIG`: plans a sweep from a YAML config (harness/sweep/sweep_config.h) and runs it on
// the ranks of MPI_COMM_WORLD, every job as a child `petl run` / `petl cache build` process
// (harness/sweep/farm.h). Works without mpirun (one rank). Torch-free: the method registry is reached
// only through petl::method_cache_need (app/cache_build.h), implemented in a torch translation unit.
#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <iostream>

#include "app/cache_build.h"
#include "app/cli_util.h"
#include "app/commands.h"
#include "core/build_info.h"
#include "core/paths.h"
#include "core/text.h"
#include "harness/sweep/farm.h"
#include "harness/sweep/sweep_config.h"
#include "harness/sweep/sweep_journal.h"
#include "io/journal.h"


namespace petl::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const char* kSweepUsage =
    "usage: petl sweep CONFIG [--dry-run] [--out DIR] [--shard I/N] [--threads-per-rank N] [--job-timeout S]\n"
    "                  [--retry-failed] [--grace-s S] [--gpus-per-node G] [--petl BINARY]\n"
    "       mpirun -np R petl sweep CONFIG ...     (srun ... petl sweep CONFIG under Slurm)\n"
    "\n"
    "Runs every job of a sweep config (methods × tasks × seeds × grid points, plus the feature-cache\n"
    "builds they depend on) as child processes `petl run ...` of the MPI ranks: a crash, an\n"
    "out-of-memory kill or a time limit of one job is recorded as a failed job and the sweep goes on.\n"
    "Rank 0 schedules (longest job first) and is the only writer of the journal <out>/results.jsonl;\n"
    "every child writes into <out>/jobs/<key>/, its output goes to <out>/logs/<key>.log.\n"
    "Resume: run the same command again — jobs with an ok record are skipped (failed ones too, unless\n"
    "--retry-failed). SIGTERM / SIGUSR2 / SIGINT stop all jobs cleanly (SIGKILL after --grace-s).\n"
    "Exit status: 0 all jobs ok; 1 some job failed; 2 usage or config error (or journal I/O error);\n"
    "143 stopped by a signal (resume by re-running).  See config/sweeps/mini.yaml and slurm/README.md.";

std::string resolve_program(const std::string& p) {
  std::error_code ec;
  if (p == "/proc/self/exe") {
    auto r = fs::read_symlink(p, ec);
    if (!ec) return r.string();
    return p;
  }
  std::string abs = fs::absolute(p).string();
  PETL_CHECK(::access(abs.c_str(), X_OK) == 0, "--petl '", p, "': not an executable file");
  return abs;
}

json provenance_base() { return {{"git_commit", git_commit()}, {"libtorch_version", libtorch_version()}}; }

}  // namespace

int cmd_sweep(const Args& args) {
  std::string config_file, out, shard_text, state_every, memory_budget, petl_bin = "/proc/self/exe";
  int threads = -1, gpus = 0;
  double timeout = -1, grace = 20;
  bool dry_run = false, retry = false;
  po::options_description d("petl sweep options");
  d.add_options()
    ("config", po::value(&config_file)->required(), "sweep config (YAML; positional): methods, tasks, seeds, grid, overrides (see config/sweeps/mini.yaml)")
    ("dry-run", po::bool_switch(&dry_run), "print the plan (cache builds first; key, method, task, seed, sets, depends_on, estimated cost, journal status) and totals; run nothing, no MPI")
    ("out", po::value(&out), "output directory (overrides the config's `out`): results.jsonl (the journal), jobs/<key>/, cache/<key>/, logs/<key>.log")
    ("shard", po::value(&shard_text), "I/N: run only the training jobs whose key hash (or whose feature cache's key hash) mod N == I, plus the cache builds they need — one shard per Slurm array task; all shards share --out, each writes results.shard-I-of-N.jsonl")
    ("threads-per-rank", po::value(&threads), "intra-op threads of every child (overrides the config's threads_per_rank; 0 = the rank's cores: its CPU affinity shared among the node's ranks with the same affinity)")
    ("job-timeout", po::value(&timeout), "seconds a job may run (overrides job_timeout_s; 0 = no limit): then SIGTERM to its process group, SIGKILL 10 s later, recorded failed")
    ("retry-failed", po::bool_switch(&retry), "re-run jobs whose journal record is failed (also: config retry_failed: true)")
    ("grace-s", po::value(&grace)->default_value(20), "on SIGTERM/SIGUSR2/SIGINT: seconds between SIGTERM and SIGKILL to the running jobs")
    ("state-every", po::value(&state_every), "every training job saves its full training state to <out>/jobs/<key>/state/ at the first epoch boundary at least this many minutes after its last save (petl run --state-every; default 10, 0 = every epoch, off = never) and when the sweep stops it; a re-run continues each stopped job from its state")
    ("memory-budget", po::value(&memory_budget), "every training job keeps its training peak under SIZE (overrides the config's memory_budget; petl run --memory-budget: micro-batches, or a does_not_fit record); part of the training jobs' keys")
    ("gpus-per-node", po::value(&gpus)->default_value(0), "> 0: training jobs get --device cuda:<node-local rank % G> (run one rank per GPU)")
    ("petl", po::value(&petl_bin)->default_value("/proc/self/exe"), "the petl binary the children run (default: this one)");
  po::positional_options_description pos;
  pos.add("config", 1);
  po::variables_map vm;
  d.add_options()("help,h", "show this help and exit");
  try {
    po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << kSweepUsage << "\n\n" << d << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    PETL_FAIL(e.what(), " (see petl sweep --help)");
  }
  PETL_CHECK(!vm.count("threads-per-rank") || threads >= 0, "--threads-per-rank ", threads, ": expected >= 0");
  PETL_CHECK(!vm.count("job-timeout") || timeout >= 0, "--job-timeout ", timeout, ": expected >= 0");
  PETL_CHECK(grace >= 0, "--grace-s ", grace, ": expected >= 0");
  PETL_CHECK(gpus >= 0, "--gpus-per-node ", gpus, ": expected >= 0");
  if (!state_every.empty()) parse_state_every(state_every, "--state-every");  // checked here, used by the children
  Shard shard;
  if (!shard_text.empty()) shard = parse_shard(shard_text);

  auto make_plan = [&](SweepConfig& cfg) {
    cfg = load_sweep_config(config_file);
    if (vm.count("threads-per-rank")) cfg.threads_per_rank = threads;
    if (vm.count("job-timeout")) cfg.job_timeout_s = timeout;
    if (retry) cfg.retry_failed = true;
    if (!memory_budget.empty()) {
      PETL_CHECK(parse_size(memory_budget, "--memory-budget") > 0, "--memory-budget '", memory_budget,
                 "': expected a size > 0 (e.g. 4G)");
      cfg.memory_budget = memory_budget;
    }
    PlanOptions po;
    po.out = out;
    po.state_every = state_every;
    po.embedded_backbone = embedded_backbone_path();
    po.cache_need = [](const std::string& m, const std::string& t, const std::string& r,
                       const std::map<std::string, std::string>& s) { return method_cache_need(m, t, r, s);
    };
    po.backbone_dims = backbone_dims;
    SweepPlan plan = plan_sweep(cfg, po);
    if (shard.count > 1) plan.jobs = shard_jobs(plan.jobs, shard);
    plan.journal = journal_path(plan.out, shard.index, shard.count);
    return plan;
  };

  if (dry_run) {
    SweepConfig cfg;
    SweepPlan plan = make_plan(cfg);
    std::vector<std::string> journals = sibling_journals(plan.out, plan.journal);
    journals.insert(journals.begin(), plan.journal);
    std::vector<std::string> warnings;
    auto status = merged_status(journals, &warnings);
    for (const auto& j : plan.jobs)  // jobs stopped mid-way: how far their saved state got
      if (!j.is_cache && !journal_done(status[j.key]))
        if (auto st = mid_job_state_summary(j.out_dir); !st.empty())
          status[j.key] = (status[j.key].empty() ? "" : status[j.key] + "; ") + "state: " + st;
    for (auto& w : warnings) std::fprintf(stderr, "petl sweep: warning: %s\n", w.c_str());
    if (shard.count > 1) std::printf("shard %d/%d\n", shard.index, shard.count);
    print_plan(std::cout, plan, plan.jobs, status);
    return 0;
  }

  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  PETL_CHECK(!finalized, "petl sweep: MPI was already finalized in this process");
  const bool own_mpi = !initialized;
  if (own_mpi) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  }
  install_farm_signal_handlers();  // a stop during planning is honoured by run_farm
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);

  // Rank 0 plans (hashing the backbone once) and shares the options; only it needs the jobs.
  std::vector<FarmJob> jobs;
  std::string error;
  json shared;
  std::unique_ptr<io::ProcessLock> out_lock;  // one sweep per journal; released when this process ends
  if (rank == 0) {
    try {
      SweepConfig cfg;
      SweepPlan plan = make_plan(cfg);
      io::check_writable_dir(plan.out, "the sweep's output directory (--out or the config's `out`)");
      out_lock = std::make_unique<io::ProcessLock>(plan.journal + ".lock", "the sweep journal " + plan.journal);
      jobs = farm_jobs_from_plan(plan.jobs, cfg.protocol);
      shared = {{"program", resolve_program(petl_bin)},
                {"journal", plan.journal},
                {"other_journals", sibling_journals(plan.out, plan.journal)},
                {"name", cfg.name},
                {"threads", cfg.threads_per_rank},
                {"timeout", cfg.job_timeout_s},
                {"retry", cfg.retry_failed}};
      fs::create_directories(fs::path(plan.out) / "logs");
    } catch (const std::exception& e) {
      error = e.what();
      shared = json{{"error", error}};
    }
  }
  std::string buf = rank == 0 ? shared.dump() : std::string();
  int n = int(buf.size());
  MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
  buf.resize(size_t(n));
  MPI_Bcast(buf.data(), n, MPI_CHAR, 0, MPI_COMM_WORLD);
  shared = json::parse(buf);
  if (shared.contains("error")) {
    if (own_mpi) MPI_Finalize();
    if (rank == 0) throw Error(shared["error"].get<std::string>());
    return 2;
  }

  FarmOptions fo;
  fo.program = shared["program"];
  fo.journal = shared["journal"];
  fo.other_journals = shared["other_journals"].get<std::vector<std::string>>();
  fo.sweep_name = shared["name"];
  fo.threads = shared["threads"];
  fo.job_timeout_s = shared["timeout"];
  fo.retry_failed = shared["retry"];
  fo.grace_s = grace;
  fo.gpus_per_node = gpus;
  fo.provenance = provenance_base();
  int code = run_farm(jobs, fo, MPI_COMM_WORLD);
  if (own_mpi) MPI_Finalize();
  return code;
}

}  // namespace petl::cli

// `petl sweep CONFIG`: plans a sweep from a YAML config (harness/sweep/sweep_config.h) and runs it on
// the ranks of MPI_COMM_WORLD, every job as a child `petl run` / `petl cache build` process
// (harness/sweep/farm.h). Works without mpirun (one rank). Torch-free: the method registry is reached
// only through petl::method_cache_need (app/cache_build.h), implemented in a torch translation unit.
#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "app/cache_build.h"
#include "app/cli_util.h"
#include "app/commands.h"
#include "app/job_args.h"
#include "app/sweep_jobs.h"
#include "core/build_info.h"
#include "core/env.h"
#include "core/paths.h"
#include "core/process.h"
#include "core/stop.h"
#include "core/text.h"
#include "harness/sweep/farm.h"
#include "harness/sweep/farm_reporter.h"
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

namespace {

// The command line of `petl sweep`, checked.
struct SweepArgs {
  std::string config_file, out, data_root, memory_budget, petl_bin = "/proc/self/exe", mpirun = "mpirun";
  int ranks = 0;                        // > 0: start `mpirun -np ranks` of this sweep (launch_ranks)
  std::optional<std::string> backbone;  // --backbone: overrides the config's (an empty value: the embedded one)
  std::optional<int> threads;
  std::optional<double> timeout, state_every_min;
  int gpus = 0;
  double grace = 20;
  bool dry_run = false, retry = false;
  Shard shard;
};

std::optional<SweepArgs> parse_sweep_args(const Args& args) {
  SweepArgs a;
  std::string shard_text, state_every;
  int threads = -1;
  double timeout = -1;
  po::options_description d("petl sweep options");
  d.add_options()(
      "config", po::value(&a.config_file)->required(),
      "sweep config (YAML; positional): methods, tasks, seeds, grid, overrides (see config/sweeps/mini.yaml)")(
      "dry-run", po::bool_switch(&a.dry_run),
      "print the plan (cache builds first; key, method, task, seed, sets, depends_on, estimated time, journal status), "
      "the totals (estimated rank-hours, disk and RAM of the feature caches) and why each method trains from a "
      "feature cache or live; run nothing, no MPI")(
      "out", po::value(&a.out),
      "output directory (overrides the config's `out`): results.jsonl (the "
      "journal), jobs/<key>/, cache/<key>/, logs/<key>.log")(
      "data-root", po::value(&a.data_root),
      "root of the task folders (overrides the config's `data_root`; e.g. config/sweeps/vtab1k.yaml with your "
      "download, checked by `petl data check ROOT`); part of the keys, as in the config")(
      "backbone", po::value<std::string>(),
      "backbone checkpoint (overrides the config's `backbone`; '' = the embedded one); part of the keys")(
      "shard", po::value(&shard_text),
      "I/N: run only the training jobs whose key hash (or whose feature cache's key hash) mod N == I, plus the cache "
      "builds they need — one shard per Slurm array task; all shards share --out, each writes "
      "results.shard-I-of-N.jsonl")(
      "threads-per-rank", po::value(&threads),
      "intra-op threads of every child (overrides the config's threads_per_rank; 0 = the rank's cores: its CPU "
      "affinity shared among the node's ranks with the same affinity)")(
      "job-timeout", po::value(&timeout),
      "seconds a job may run (overrides job_timeout_s; 0 = no limit): then SIGTERM to its process group, SIGKILL 10 s "
      "later, recorded failed")("retry-failed", po::bool_switch(&a.retry),
                                "re-run jobs whose journal record is failed (also: config retry_failed: true)")(
      "grace-s", po::value(&a.grace)->default_value(20),
      "on SIGTERM/SIGUSR2/SIGINT: seconds between SIGTERM and SIGKILL to the running jobs")(
      "state-every", po::value(&state_every),
      "every training job saves its full training state to <out>/jobs/<key>/state/ at the first epoch boundary at "
      "least this many minutes after its last save (petl run --state-every; default 10, 0 = every epoch, off = never) "
      "and when the sweep stops it; a re-run continues each stopped job from its state")(
      "memory-budget", po::value(&a.memory_budget),
      "every training job keeps its training peak under SIZE (overrides the config's memory_budget; petl run "
      "--memory-budget: micro-batches, or a does_not_fit record); part of the training jobs' keys")(
      "gpus-per-node", po::value(&a.gpus)->default_value(0),
      "> 0: training jobs run on cuda:<node-local rank % G> (run one rank per GPU)")(
      "petl", po::value(&a.petl_bin)->default_value("/proc/self/exe"),
      "the petl binary the children run (default: this one)")(
      "ranks", po::value(&a.ranks)->default_value(0),
      "> 0: start the sweep on this many MPI ranks itself (`<--mpirun> -np N petl sweep ...`, in a process group of "
      "its own) and stop it cleanly on SIGINT / SIGTERM / SIGHUP / SIGUSR2: the stop reaches every rank as SIGUSR2 "
      "and this command exits 143 (plain mpirun answers SIGINT or SIGTERM with status 1)")(
      "mpirun", po::value(&a.mpirun)->default_value(a.mpirun),
      "with --ranks: the launcher and its flags, e.g. \"mpirun --hostfile hosts --oversubscribe\"");
  po::positional_options_description pos;
  pos.add("config", 1);
  po::variables_map vm;
  d.add_options()("help,h", "show this help and exit");
  try {
    po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << kSweepUsage << "\n\n" << d << "\n";
      return std::nullopt;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    fail_parse(e, d, "see petl sweep --help");
  }
  if (vm.count("backbone")) a.backbone = vm["backbone"].as<std::string>();
  if (vm.count("threads-per-rank")) {
    PETL_CHECK(threads >= 0, "--threads-per-rank ", threads, ": expected >= 0");
    a.threads = threads;
  }
  if (vm.count("job-timeout")) {
    PETL_CHECK(timeout >= 0, "--job-timeout ", timeout, ": expected >= 0");
    a.timeout = timeout;
  }
  PETL_CHECK(a.grace >= 0, "--grace-s ", a.grace, ": expected >= 0");
  PETL_CHECK(a.gpus >= 0, "--gpus-per-node ", a.gpus, ": expected >= 0");
  if (!state_every.empty()) a.state_every_min = parse_state_every(state_every, "--state-every");
  if (!shard_text.empty()) a.shard = parse_shard(shard_text);
  return a;
}

// The config with the command line's overrides, planned and sharded.
SweepPlan make_plan(const SweepArgs& a, SweepConfig& cfg) {
  cfg = load_sweep_config(a.config_file);
  if (!a.data_root.empty()) cfg.data_root = a.data_root;
  if (a.backbone) cfg.backbone = *a.backbone;
  if (a.threads) cfg.threads_per_rank = *a.threads;
  if (a.timeout) cfg.job_timeout_s = *a.timeout;
  if (a.retry) cfg.retry_failed = true;
  if (!a.memory_budget.empty()) {
    cfg.memory_budget = parse_size(a.memory_budget, "--memory-budget");
    PETL_CHECK(cfg.memory_budget > 0, "--memory-budget '", a.memory_budget, "': expected a size > 0 (e.g. 4G)");
  }
  PlanOptions po;
  po.out = a.out;
  po.state_every_min = a.state_every_min;
  po.embedded_backbone = embedded_backbone_path();
  po.cache_need = [](const std::string& m, const std::string& t, const std::string& r,
                     const std::map<std::string, std::string>& s,
                     Benchmark b) { return method_cache_need(m, t, r, s, b); };
  po.backbone_dims = backbone_dims;
  po.job_profile = method_job_profile;
  po.default_grid = method_default_grid;
  SweepPlan plan = plan_sweep(cfg, po);
  if (a.shard.count > 1) plan.jobs = shard_jobs(plan.jobs, a.shard);
  plan.journal = journal_path(plan.out, a.shard.index, a.shard.count);
  return plan;
}

// --dry-run: the plan with each job's journal status and saved state.
int print_dry_run(const SweepArgs& a) {
  SweepConfig cfg;
  SweepPlan plan = make_plan(a, cfg);
  std::vector<std::string> journals = sibling_journals(plan.out, plan.journal);
  journals.insert(journals.begin(), plan.journal);
  std::vector<std::string> warnings;
  std::map<std::string, PlannedJobStatus> status;
  for (const auto& [k, st] : merged_status(journals, &warnings)) status[k].journal = st;
  for (const auto& j : plan.jobs) {  // jobs stopped mid-way: how far their saved state got
    PlannedJobStatus& s = status[j.key];
    if (!j.is_cache && !(s.journal && journal_done(*s.journal))) s.state = mid_job_state_summary(j.out_dir);
  }
  for (auto& w : warnings) std::fprintf(stderr, "petl sweep: warning: %s\n", w.c_str());
  if (a.shard.count > 1) std::printf("shard %d/%d\n", a.shard.index, a.shard.count);
  print_plan(std::cout, plan, plan.jobs, status);
  return 0;
}

// Rank 0 plans (hashing the backbone once), takes the journal's lock and says what every rank needs;
// {"error": ...} when it cannot.
json plan_on_rank0(const SweepArgs& a, std::vector<FarmJob>& jobs, std::unique_ptr<io::ProcessLock>& lock) {
  try {
    SweepConfig cfg;
    SweepPlan plan = make_plan(a, cfg);
    io::check_writable_dir(plan.out, "the sweep's output directory (--out or the config's `out`)");
    lock = std::make_unique<io::ProcessLock>(plan.journal + ".lock", "the sweep journal " + plan.journal);
    jobs = farm_jobs_from_plan(plan.jobs, a.gpus);
    fs::create_directories(fs::path(plan.out) / "logs");
    return {{"program", resolve_program(a.petl_bin)},
            {"journal", plan.journal},
            {"other_journals", sibling_journals(plan.out, plan.journal)},
            {"name", cfg.name},
            {"threads", cfg.threads_per_rank},
            {"timeout", cfg.job_timeout_s},
            {"retry", cfg.retry_failed}};
  } catch (const std::exception& e) {
    return {{"error", e.what()}};
  }
}

json broadcast(const json& j, int rank) {
  std::string buf = rank == 0 ? j.dump() : std::string();
  int n = int(buf.size());
  MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
  buf.resize(size_t(n));
  MPI_Bcast(buf.data(), n, MPI_CHAR, 0, MPI_COMM_WORLD);
  return json::parse(buf);
}

}  // namespace

namespace {
volatile sig_atomic_t g_launch_signal = 0;
extern "C" void on_launch_signal(int sig) { g_launch_signal = sig; }

// `program` as given when it names a path, else the first executable of that name on PATH.
std::string find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  for (const auto& dir : split(env::get("PATH"), ':', true)) {
    const std::string p = dir + "/" + program;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  PETL_FAIL("--mpirun: '", program, "' is not on PATH");
}

// --ranks N: runs `<mpirun words> -np N <this petl> sweep <the same arguments but --ranks/--mpirun>`
// in a process group of its own, so a terminal's Ctrl-C reaches only this process. A SIGINT,
// SIGTERM, SIGHUP or SIGUSR2 here is sent on to mpirun as SIGUSR2, which mpirun forwards to every
// rank: the ranks stop their jobs (SIGKILL after --grace-s) and exit 143, and so does this command
// (mpirun itself, signalled with SIGINT or SIGTERM, aborts the ranks and exits 1). A second signal
// sends mpirun SIGTERM.
int launch_ranks(const Args& args, const SweepArgs& a) {
  std::vector<std::string> argv = split_whitespace(a.mpirun);
  PETL_CHECK(!argv.empty(), "--mpirun: empty");
  argv[0] = find_program(argv[0]);
  argv.insert(argv.end(), {"-np", std::to_string(a.ranks), process::self_executable(), "sweep"});
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--ranks" || args[i] == "--mpirun") {
      ++i;
      continue;
    }
    if (args[i].rfind("--ranks=", 0) == 0 || args[i].rfind("--mpirun=", 0) == 0) continue;
    argv.push_back(args[i]);
  }
  struct sigaction sa {};
  sa.sa_handler = on_launch_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR2}) sigaction(sig, &sa, nullptr);
  process::SpawnOptions o;
  o.argv = argv;
  o.new_process_group = true;
  std::fprintf(stderr, "petl sweep: starting %s\n", join(argv, " ").c_str());
  const pid_t pid = process::spawn(o);
  int stopped_by = 0;
  bool escalated = false;
  for (;;) {
    if (const auto st = process::poll(pid)) {
      const int code = st->signal ? 128 + st->signal : st->code;
      if (stopped_by && code != 0) {
        std::fprintf(stderr, "petl sweep: %s stopped the sweep (%s); exit status 143 — re-run to resume\n",
                     stop::signal_name(stopped_by).c_str(), st->text().c_str());
        return 143;
      }
      return code;
    }
    if (const int sig = g_launch_signal) {
      g_launch_signal = 0;
      if (!stopped_by) {
        stopped_by = sig;
        std::fprintf(stderr, "petl sweep: %s: stopping every rank (SIGUSR2 through mpirun)\n",
                     stop::signal_name(sig).c_str());
        ::kill(pid, SIGUSR2);
      } else if (!escalated) {
        escalated = true;
        std::fprintf(stderr, "petl sweep: %s again: SIGTERM to mpirun\n", stop::signal_name(sig).c_str());
        ::kill(pid, SIGTERM);
      }
    }
    ::usleep(50 * 1000);
  }
}
}  // namespace

int cmd_sweep(const Args& args) {
  const std::optional<SweepArgs> a = parse_sweep_args(args);
  if (!a) return 0;
  if (a->dry_run) return print_dry_run(*a);
  PETL_CHECK(a->ranks >= 0, "--ranks ", a->ranks, ": expected an integer >= 0");
  if (a->ranks > 0) return launch_ranks(args, *a);

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

  // Rank 0 plans and shares the options; only it needs the jobs.
  std::vector<FarmJob> jobs;
  std::unique_ptr<io::ProcessLock> out_lock;  // one sweep per journal; released when this process ends
  const json shared = broadcast(rank == 0 ? plan_on_rank0(*a, jobs, out_lock) : json(), rank);
  if (shared.contains("error")) {
    if (own_mpi) MPI_Finalize();
    if (rank == 0) throw Error(shared["error"].get<std::string>());
    return 2;
  }

  FarmOptions fo;
  fo.program = shared["program"];
  fo.threads = shared["threads"];
  fo.threads_by = fo.threads > 0 ? "petl sweep: threads_per_rank" : "petl sweep: the rank's share of its node's cores";
  fo.job_timeout_s = shared["timeout"];
  fo.retry_failed = shared["retry"];
  fo.grace_s = a->grace;
  fo.gpus_per_node = a->gpus;
  fo.bundle_command = bundle_command;
  SweepReporter::Options ro;
  ro.journal = shared["journal"];
  ro.other_journals = shared["other_journals"].get<std::vector<std::string>>();
  ro.sweep_name = shared["name"];
  ro.provenance = provenance_base();
  ro.retry_failed = fo.retry_failed;
  SweepReporter reporter(ro);
  const int code = run_farm(jobs, fo, reporter, MPI_COMM_WORLD);
  if (own_mpi) MPI_Finalize();
  return code;
}

}  // namespace petl::cli

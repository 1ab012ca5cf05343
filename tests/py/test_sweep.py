"""`petl sweep` end to end with real jobs on the embedded suite, under mpirun (4 ranks, then 2):
every job journaled exactly once, a failing job recorded failed while the rest finish, cacheable
methods trained from feature caches built once by their own jobs, SIGKILL of the whole MPI job
mid-sweep then a re-run giving the same set of records, a damaged cache rebuilt by the next job,
and `petl run --dp 2` under mpirun matching one rank with the same global batch."""
import collections
import glob
import json
import os
import shutil
import signal
import subprocess
import time

from common import Checks, parse_args, run

a = parse_args()
c = Checks()
MPIRUN = [shutil.which("mpirun") or "mpirun", "--allow-run-as-root", "--oversubscribe"]
ENV = dict(os.environ, PETL_NO_PROGRESS="1")
data = os.path.join(a.scratch, "mini")
run(a.petl, "suite", "--out", data, "--no-progress")


def config(out):
    path = os.path.join(a.scratch, os.path.basename(out) + ".yaml")
    with open(path, "w") as f:
        f.write(f"""name: e2e
out: {out}
data_root: {data}
recipe: mini
epochs: 1
methods: [linear, synqt, full, lora]
tasks: [sprites_loc, objects_dist]
seeds: [42]
method_overrides:
  synqt: {{set: {{backbone_drop_path: "off"}}}}
  lora: {{set: {{lora_dim: "0"}}}}       # invalid on purpose: these jobs must fail alone
feature_cache: true
cache_dtype: float32
""")
    return path


def journal(out):
    recs = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]
    train = [r for r in recs if r.get("schema") == "petl.result"]
    return recs, train


# ---------------------------------------------------------------- 1. a whole sweep on 4 ranks
out1 = os.path.join(a.scratch, "sweep1")
cfg1 = config(out1)
p = run(a.petl, "sweep", cfg1, "--dry-run")
c.check("linear" in p.stdout and "cache" in p.stdout.lower(), "--dry-run prints the plan with its cache builds")
t0 = time.time()
p = subprocess.run(MPIRUN + ["-np", "4", a.petl, "sweep", cfg1], capture_output=True, text=True, env=ENV)
print(p.stdout[-3000:], p.stderr[-3000:])
c.check(p.returncode == 1, f"the sweep finishes with status 1 because some jobs failed (got {p.returncode})")
recs, train = journal(out1)
keys = collections.Counter(r["sweep_key"] for r in recs)
c.check(all(n == 1 for n in keys.values()), "every job (training and cache) is journaled exactly once")
ok = [r for r in train if r["status"] == "ok"]
failed = [r for r in train if r["status"] == "failed"]
c.check(len(ok) == 6 and len(failed) == 2, f"6 ok training records and 2 failed ones (got {len(ok)}, {len(failed)})")
c.check(all(r["method"] == "lora" and "lora_dim" in r["error"] for r in failed), "the failures are the invalid lora jobs, with their message")
by_method = collections.defaultdict(list)
for r in ok:
    by_method[r["method"]].append(r)
c.check(all("feature_cache" in r for r in by_method["linear"] + by_method["synqt"]), "linear and synqt trained from feature caches")
c.check(all("feature_cache" not in r for r in by_method["full"]), "full fine-tuning trained live")
cache_recs = [r for r in recs if r.get("kind") == "cache"]
c.check(len(cache_recs) == 4 and all(r["status"] == "ok" for r in cache_recs), "4 cache builds (cls and kv for 2 tasks), each once")
print(f"sweep of {len(keys)} jobs on 4 ranks: {time.time() - t0:.1f} s")

p = run(a.petl, "sweep", cfg1, expect=None)
recs2, _ = journal(out1)
c.check(len(recs2) == len(recs), "re-running a finished sweep adds no record")
p1 = run(a.petl, "report", os.path.join(out1, "results.jsonl"), "--out", os.path.join(a.scratch, "rep1"), "--no-plots",
         "--reference", "none", expect=None)
c.check(p1.returncode == 0 and "| linear" in p1.stdout, "petl report reads the sweep journal")
# The sweep's folder (journal + every job's own copy under jobs/<key>/): read through the journal only.
c.check(len(glob.glob(os.path.join(out1, "jobs", "*", "results.jsonl"))) >= len(ok), "every training job keeps its own copy")
p = run(a.petl, "report", out1, "--out", os.path.join(a.scratch, "rep1dir"), "--no-plots", "--reference", "none",
        expect=None)
c.check(p.returncode == 0 and "duplicate" not in p.stderr and "is a sweep's output folder: read its journal" in p.stderr
        and "6 ok record(s) tabulated" in p.stderr, "petl report on the sweep folder reads its journal only\n" + p.stderr[-600:])
c.check(p.stdout == p1.stdout, "the sweep folder's report is the journal's report\n" + p.stdout + "\n" + p1.stdout)

# ---------------------------------------------------------------- 2. SIGKILL mid-sweep, resume
out2 = os.path.join(a.scratch, "sweep2")
cfg2 = config(out2)
proc = subprocess.Popen(MPIRUN + ["-np", "2", a.petl, "sweep", cfg2], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
deadline = time.time() + 300
while time.time() < deadline:
    j = os.path.join(out2, "results.jsonl")
    n = sum(1 for l in open(j) if '"petl.result"' in l) if os.path.exists(j) else 0
    if n >= 2:
        break
    time.sleep(0.2)
os.killpg(proc.pid, signal.SIGKILL)
proc.wait()
time.sleep(1)
_, partial = journal(out2)
c.check(0 < len(partial) < 8, f"killed mid-sweep ({len(partial)} of 8 training records written)")
p = subprocess.run(MPIRUN + ["-np", "2", a.petl, "sweep", cfg2], capture_output=True, text=True, env=ENV)
recs3, train3 = journal(out2)
k3 = collections.Counter(r["sweep_key"] for r in recs3)
c.check(all(n == 1 for n in k3.values()), "after the kill and the re-run no key is journaled twice")
c.check(set(k3) == set(keys), "the resumed sweep has exactly the records of the uninterrupted one")

# ---------------------------------------------------------------- 3. a damaged cache is rebuilt
h5 = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(out1, "cache")) for f in fs if f.endswith(".h5"))
c.check(len(h5) >= 2, "the sweep left its caches on disk")
p = run(a.petl, "cache", "verify", os.path.join(out1, "cache"), expect=None)
c.check(p.returncode == 0, "petl cache verify: every cache is sound")
victim = h5[0]
with open(victim, "r+b") as f:
    f.seek(0, 2)
    size = f.tell()
    f.seek(size // 2)
    chunk = bytearray(f.read(64))
    f.seek(size // 2)
    f.write(bytes(b ^ 0x5A for b in chunk))
p = run(a.petl, "cache", "verify", os.path.join(out1, "cache"), expect=None)
c.check(p.returncode != 0, "petl cache verify reports the damaged cache")
cache_dir = os.path.dirname(victim)
args = ["run", "--method", None, "--task", None, "--data-root", data, "--recipe", "mini", "--epochs", "1",
        "--feature-cache", cache_dir, "--out", os.path.join(a.scratch, "rebuild"), "--no-progress"]
# The victim's job: its cache directory was built for one (task, taps); find it from the journal.
victim_job = next(r for r in recs if r.get("kind") == "cache" and r["sweep_key"] == os.path.basename(cache_dir))
task = victim_job.get("task")
m, extra = ("linear", []) if victim_job["taps"] == "cls" else ("synqt", ["--set", "backbone_drop_path=off"])
args[2], args[4] = m, task
p = run(a.petl, *args, *extra, expect=None)
print(p.stderr[-1500:])
ok_any = p.returncode == 0 and "rebuilding" in p.stderr
c.check(ok_any, "a job that needs the damaged cache reports it, rebuilds it and trains")
p = run(a.petl, "cache", "verify", os.path.join(out1, "cache"), expect=None)
c.check(p.returncode == 0, "after the rebuild every cache verifies again")

# ---------------------------------------------------------------- 4. data parallelism
def losses(rec_file):
    r = [json.loads(l) for l in open(rec_file)][-1]
    return r


common_args = ["run", "--task", "sprites_loc", "--data-root", data, "--recipe", "mini", "--epochs", "2",
               "--set", "eval_every=1", "--no-checkpoint", "--no-progress", "--threads", "1"]
for m, extra in [("linear", []), ("full", ["--set", "drop_path_rate=0"])]:
    o1, o2 = os.path.join(a.scratch, f"dp1_{m}"), os.path.join(a.scratch, f"dp2_{m}")
    run(a.petl, *common_args, "--method", m, *extra, "--out", o1)
    p = subprocess.run(MPIRUN + ["-np", "2", a.petl, *common_args, "--method", m, *extra, "--out", o2, "--dp", "2"],
                       capture_output=True, text=True, env=ENV)
    c.check(p.returncode == 0, f"{m}: mpirun -np 2 petl run --dp 2 exits 0 ({p.stderr[-500:] if p.returncode else ''})")
    if p.returncode:
        continue
    r1, r2 = losses(os.path.join(o1, "results.jsonl")), losses(os.path.join(o2, "results.jsonl"))
    n2 = sum(1 for _ in open(os.path.join(o2, "results.jsonl")))
    c.check(n2 == 1 and r2["data_parallel"]["ranks"] == 2, f"{m}: one record, written by rank 0, marked data-parallel")
    l1, l2 = r1["epoch_train_loss"], r2["epoch_train_loss"]
    rel = max(abs(x - y) / abs(x) for x, y in zip(l1, l2))
    print(f"{m}: 1 rank losses {l1}, 2 ranks {l2}, max relative difference {rel:.2e}")
    c.check(rel < 1e-5, f"{m}: 2 ranks train like 1 rank with the same global batch (loss rel. diff {rel:.1e})")
    acc = [abs(e1["test_acc"] - e2["test_acc"]) for e1, e2 in zip(r1["evals"], r2["evals"])]
    c.check(max(acc) <= 0.2, f"{m}: same test accuracies (max difference {max(acc):.2f} points)")
c.done()

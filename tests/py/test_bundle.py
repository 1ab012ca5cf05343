"""`petl bundle` and the sweep's bundles (harness/train/bundle.h): several jobs of one task in one
process, one test pass for every snapshot of every job.

- a bundle (synqt × 2 seeds and linear on K/V / cls caches) writes, per job, the record, job key,
  evaluations, losses, peak memory and checkpoint bytes of the same job run alone by `petl run`
  (the one-pass evaluation is bit-identical to each job's own);
- a bundle stopped during its second job's training (SIGTERM through PETL_TEST_STOP_AFTER) leaves
  the first job's state "trained, evaluation pending" and no record; the re-run with --resume
  does not train the first job again and ends with the uninterrupted records;
- a job with a bad setting fails alone (its failed record; exit status 1; the others ok);
- `petl sweep`: the jobs on one feature cache form a bundle (dry run lists it, the journal has
  every job once with the records `petl run` gives, the bundle's log exists).
"""
import glob
import json
import os

from common import Checks, make_task, parse_args, run

a = parse_args()
c = Checks()
data = os.path.join(a.scratch, "data")
make_task(data, "t1", 160, 96, 4)
S = a.scratch


def job(method, seed, out, cache, *extra, task="t1"):
    args = ["--method", method, "--task", task, "--data-root", data, "--epochs", "4", "--batch-size", "32",
            "--seed", str(seed), "--set", "eval_every=2", "--out", out, "--feature-cache", cache, "--resume",
            "--threads", "1", *extra]
    if method == "synqt":
        args += ["--set", "backbone_drop_path=off"]
    return args


def last(out):
    with open(os.path.join(out, "results.jsonl")) as f:
        return json.loads(f.readlines()[-1])


def ckpt(rec):
    with open(rec["checkpoint"], "rb") as f:
        return f.read()


JOBS = [("synqt", 1), ("synqt", 2), ("linear", 1)]
# Each job alone.
alone = {}
for m, s in JOBS:
    out = os.path.join(S, f"alone_{m}_{s}")
    run(a.petl, "run", *job(m, s, out, os.path.join(S, "cache")))
    alone[(m, s)] = last(out)


def same_as_alone(rec, m, s, what):
    ref = alone[(m, s)]
    c.check(rec["status"] == "ok", f"{what}: {m} seed {s} ok")
    c.check(rec["job_key"] == ref["job_key"], f"{what}: {m} seed {s} has the job key of the job alone")
    c.check(rec["evals"] == ref["evals"], f"{what}: {m} seed {s} evaluations equal the job alone's "
            f"({[e['test_acc'] for e in rec['evals']]} vs {[e['test_acc'] for e in ref['evals']]})")
    c.check(rec["epoch_train_loss"] == ref["epoch_train_loss"], f"{what}: {m} seed {s} losses equal")
    c.check(rec["accuracy"] == ref["accuracy"], f"{what}: {m} seed {s} accuracy equal")
    c.check(ckpt(rec) == ckpt(ref), f"{what}: {m} seed {s} checkpoint bytes equal")


# 1. One bundle of the three jobs.
outs = {js: os.path.join(S, f"b_{js[0]}_{js[1]}") for js in JOBS}
p = run(a.petl, "bundle", *sum((["--job", json.dumps(job(m, s, outs[(m, s)], os.path.join(S, "cache")))]
                                for m, s in JOBS), []))
for m, s in JOBS:
    rec = last(outs[(m, s)])
    same_as_alone(rec, m, s, "bundle")
    c.check(rec["memory"]["peak_train_mib"] == alone[(m, s)]["memory"]["peak_train_mib"],
            f"bundle: {m} seed {s} training peak equals the job alone's ({rec['memory']['peak_train_mib']:.3f} MiB)")
    c.check(rec.get("bundle", {}).get("jobs") == 3, f"bundle: {m} seed {s} record has its bundle section")
c.check("one test pass evaluated 4 snapshots of 2 jobs" in p.stderr,
        "bundle: the two synqt jobs share one live test pass (4 snapshots)")
c.check(not glob.glob(os.path.join(S, "b_*", "state", "*")), "bundle: no state left once the records are written")

# 2. Stopped during the second job's training; resumed without training the first again.
outs2 = {js: os.path.join(S, f"k_{js[0]}_{js[1]}") for js in JOBS}
jobs2 = sum((["--job", json.dumps(job(m, s, outs2[(m, s)], os.path.join(S, "cache")))] for m, s in JOBS), [])
p = run(a.petl, "bundle", *jobs2, expect=-15, env={"PETL_TEST_STOP_AFTER": "18"})
first_state = glob.glob(os.path.join(outs2[("synqt", 1)], "state", "*.safetensors"))
second_state = glob.glob(os.path.join(outs2[("synqt", 2)], "state", "*.safetensors"))
c.check(len(first_state) == 1 and len(second_state) == 1, "stopped bundle: the first and second jobs have a state")
c.check(not any(os.path.exists(os.path.join(o, "results.jsonl")) for o in outs2.values()),
        "stopped bundle: no record written yet")
c.check("synqt/t1: training state saved (4/4 epochs trained)" in p.stderr,
        "stopped bundle: the first job's state was saved when its training ended")
p = run(a.petl, "bundle", *jobs2)
r1, r2 = last(outs2[("synqt", 1)]), last(outs2[("synqt", 2)])
c.check(r1.get("resumed", {}).get("from_epoch") == 5 and r1["resumed"]["evaluation_pending"] is False,
        f"resumed bundle: the first job was not trained again (resumed {r1.get('resumed')})")
c.check("resuming from" in p.stderr and "4/4 epochs trained" in p.stderr, "resumed bundle: the log says so")
c.check(r2.get("resumed", {}).get("from_epoch", 0) >= 1, f"resumed bundle: the second job continued ({r2.get('resumed')})")
for m, s in JOBS:
    same_as_alone(last(outs2[(m, s)]), m, s, "resumed bundle")

# 3. A bad job fails alone.
outs3 = {js: os.path.join(S, f"f_{js[0]}_{js[1]}") for js in JOBS}
bad = job("synqt", 2, outs3[("synqt", 2)], os.path.join(S, "cache"), "--set", "token_nums=-3")
p = run(a.petl, "bundle", "--job", json.dumps(job("synqt", 1, outs3[("synqt", 1)], os.path.join(S, "cache"))),
        "--job", json.dumps(bad),
        "--job", json.dumps(job("linear", 1, outs3[("linear", 1)], os.path.join(S, "cache"))), expect=1)
c.check(last(outs3[("synqt", 2)])["status"] == "failed" and "token_nums" in last(outs3[("synqt", 2)])["error"],
        "failing job: its failed record names the bad key")
same_as_alone(last(outs3[("synqt", 1)]), "synqt", 1, "beside a failing job")
same_as_alone(last(outs3[("linear", 1)]), "linear", 1, "beside a failing job")
p = run(a.petl, "bundle", "--job", json.dumps(job("synqt", 1, outs3[("synqt", 1)], os.path.join(S, "cache"))),
        "--job", json.dumps(job("synqt", 1, outs3[("synqt", 1)], os.path.join(S, "cache"), task="t2")), expect=2)
c.check("share it" in p.stderr and "--task" in p.stderr and "training state" not in p.stderr,
        "jobs of different tasks are refused before any work")

# 4. The sweep bundles the jobs on one cache.
cfg = os.path.join(S, "sweep.yaml")
with open(cfg, "w") as f:
    f.write(f"""name: bundles
out: {os.path.join(S, 'sweep')}
data_root: {data}
epochs: 4
batch_size: 32
methods: [synqt, linear]
tasks: [t1]
seeds: [1, 2]
grid: {{eval_every: ["2"]}}
method_overrides:
  synqt: {{set: {{backbone_drop_path: "off"}}}}
feature_cache: true
cache_dtype: float32
""")
p = run(a.petl, "sweep", cfg, "--dry-run")
c.check("2 bundle(s)" in p.stdout and p.stdout.count("2 jobs (2 to run)") == 2,
        "sweep dry run: two bundles (synqt's K/V cache, linear's cls cache) of two jobs each")
p = run(a.petl, "sweep", cfg, "--threads", "1")
with open(os.path.join(S, "sweep", "results.jsonl")) as f:
    recs = [json.loads(l) for l in f if l.strip()]
train = [r for r in recs if r.get("schema") == "petl.result"]
c.check(len(train) == 4 and all(r["status"] == "ok" for r in train), "sweep: 4 training records, all ok")
c.check(len({r["sweep_key"] for r in recs}) == len(recs), "sweep: every job journaled once")
c.check(len(glob.glob(os.path.join(S, "sweep", "logs", "bundle-*.log"))) == 2, "sweep: two bundle children ran")
for r in train:
    if (r["method"], r["seed"]) in alone:
        same_as_alone(r, r["method"], r["seed"], "sweep bundle")
c.done()

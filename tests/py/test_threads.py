"""The thread policy on a shared machine (core/threads.h) and the main job's parallel jobs
(`petl demo`, core/process.h): the thread choice and the OpenMP wait policy in provenance, fewer
threads beside a busy process, demo workers giving the records of one process, a failed worker
recorded once, and a killed demo leaving no worker behind and resuming without duplicates."""
import json
import os
import signal
import subprocess
import time

from common import Checks, parse_args

a = parse_args()
c = Checks()
S = a.scratch
cores = len(os.sched_getaffinity(0))
# The variables the policy reads, unset: each case sets what it tests.
CLEAN = {k: v for k, v in os.environ.items()
         if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "PETL_WAIT_POLICY_BY_PETL",
                      "PETL_THREADS_BY", "PETL_SWEEP_PARENT_PID")}


def petl(*args, env=None, expect=0):
    p = subprocess.run([a.petl, *args], capture_output=True, text=True, env=dict(CLEAN, PETL_NO_PROGRESS="1", **(env or {})))
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"petl {' '.join(args)} exited {p.returncode}, expected {expect}\n{p.stdout}\n{p.stderr}")
    return p


def records(out):
    path = os.path.join(out, "results.jsonl")
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


data = os.path.join(S, "mini")
petl("suite", "--out", data, "--no-progress")
job = ["run", "--method", "linear", "--task", "sprites_loc", "--data-root", data, "--recipe", "mini", "--epochs", "1",
       "--no-checkpoint"]

# ------------------------------------------------------------------ provenance of the policy
out = os.path.join(S, "runs")
petl(*job, "--out", out)
p = records(out)[-1]["provenance"]
c.check(p["omp_wait_policy"] == "GOMP_SPINCOUNT=1000" and p["omp_wait_policy_by"] == "petl",
        f"petl's default wait policy, set by petl before the OpenMP runtime started ({p['omp_wait_policy']})")
c.check(p["cores"] == cores and 1 <= p["threads"] <= cores, f"threads within the affinity mask ({p['threads']} of {cores})")
if cores > 1:
    c.check(p["threads_chosen_by"] == "free cores" and 0 <= p["free_cores"] <= cores,
            f"threads from the free cores ({p['free_cores']} free)")
petl(*job, "--out", out, env={"OMP_WAIT_POLICY": "passive"})
p = records(out)[-1]["provenance"]
c.check(p["omp_wait_policy"] == "OMP_WAIT_POLICY=passive" and p["omp_wait_policy_by"] == "environment",
        "a user's OMP_WAIT_POLICY is kept and recorded as theirs")
petl(*job, "--out", out, "--threads", "1")
p = records(out)[-1]["provenance"]
c.check(p["threads"] == 1 and p["threads_chosen_by"] == "--threads" and p["omp_wait_policy"] == "runtime default",
        "--threads 1: no re-exec for a wait policy (one thread waits for no team)")
petl(*job, "--out", out, env={"OMP_NUM_THREADS": "1"})
p = records(out)[-1]["provenance"]
c.check(p["threads"] == 1 and p["threads_chosen_by"] == "OMP_NUM_THREADS", "OMP_NUM_THREADS when --threads is 0")
if cores > 1:
    busy = subprocess.Popen(["sh", "-c", "exec yes > /dev/null"])
    try:
        time.sleep(0.3)
        petl(*job, "--out", out)
    finally:
        busy.kill()
        busy.wait()
    p = records(out)[-1]["provenance"]
    c.check(p["threads"] <= cores - 1, f"beside a busy process: {p['threads']} thread(s) of {cores} ({p['free_cores']} free)")

# ------------------------------------------------------------------ demo: parallel jobs = one process
demo = ["demo", "--data", data, "--methods", "linear,bitfit", "--tasks", "sprites_loc,objects_dist", "--epochs", "1"]
one, two = os.path.join(S, "demo1"), os.path.join(S, "demo2")
p1 = petl(*demo, "--out", one, "--jobs", "1")
p2 = petl(*demo, "--out", two, "--jobs", "2")
r1 = {(r["method"], r["task"]): r for r in records(one)}
r2 = {(r["method"], r["task"]): r for r in records(two)}
c.check(len(records(two)) == 4 and set(r1) == set(r2), "--jobs 2: one record per job in the same results.jsonl")
c.check(all(abs(r1[k]["accuracy"] - r2[k]["accuracy"]) < 1e-9 and r1[k]["job_key"] == r2[k]["job_key"]
            and r1[k]["memory"]["peak_train_mib"] == r2[k]["memory"]["peak_train_mib"]
            and abs(r1[k]["evals"][-1]["train_loss"] - r2[k]["evals"][-1]["train_loss"])
            <= 1e-5 * abs(r1[k]["evals"][-1]["train_loss"]) for k in r1),
        "worker processes with one thread give the records of one process (accuracy, memory, key; loss to round-off)")
c.check(all(r["provenance"]["threads"] == 1 and r["provenance"]["threads_chosen_by"].startswith("petl demo")
            for r in records(two)), "workers record how their threads were chosen")
rows = lambda s: [l.rsplit("|", 2)[0] for l in s.splitlines() if l.startswith("| linear") or l.startswith("| bitfit")]
c.check(rows(p1.stdout) == rows(p2.stdout) and len(rows(p2.stdout)) >= 4, "the same table (but img/s) either way")
c.check(all(f"[{i}/4]" in p2.stderr for i in range(1, 5)), "one progress line per finished job")
c.check(os.path.exists(os.path.join(two, "logs", "demo", "bitfit_objects_dist.log")), "each job's log is kept")
p = petl(*demo, "--out", two, "--jobs", "2")
c.check(len(records(two)) == 4 and p.stderr.count("finished record reused") == 4,
        "a re-run reuses every finished job and appends nothing")

# ------------------------------------------------------------------ a failing worker
bad = os.path.join(S, "demo_bad")
p = petl("demo", "--data", data, "--methods", "linear", "--tasks", "sprites_loc,no_such_task", "--epochs", "1",
         "--out", bad, "--jobs", "2", expect=1)
rb = records(bad)
failed = [r for r in rb if r["status"] == "failed"]
c.check(len(rb) == 2 and len(failed) == 1 and failed[0]["task"] == "no_such_task" and "no_such_task" in failed[0]["error"],
        "a failed worker's record is written once, with its error")
c.check("| linear | no_such_task | | | FAILED:" in p.stdout and "failed (exit status 2)" in p.stderr,
        "the table and the progress line show the failure")

# ------------------------------------------------------------------ a worker killed by a signal


def children(pid):
    out = []
    for q in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{q}/stat").read().rsplit(")", 1)[1].split()[1] == str(pid):
                out.append(int(q))
        except (OSError, IndexError):
            pass
    return out


sig_out = os.path.join(S, "demo_sig")
d = subprocess.Popen([a.petl, "demo", "--data", data, "--methods", "lora", "--tasks", "sprites_loc", "--epochs", "3",
                      "--out", sig_out, "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     env=dict(CLEAN, PETL_NO_PROGRESS="1"))
deadline = time.time() + 60
while time.time() < deadline and not children(d.pid):
    time.sleep(0.05)
time.sleep(1.0)
for q in children(d.pid):
    os.kill(q, signal.SIGKILL)
so, se = d.communicate(timeout=120)
rs = records(sig_out)
c.check(d.returncode == 1 and len(rs) == 1 and rs[0]["status"] == "failed"
        and "killed by signal 9" in rs[0]["error"] and "lora_sprites_loc.log" in rs[0]["error"],
        "a worker killed by a signal is recorded failed by the demo, naming the signal and its log")
c.check("| lora | sprites_loc | | | FAILED: petl run killed by signal 9" in so, "the table shows it on one line")

# ------------------------------------------------------------------ a killed demo: no worker left, resume
kill_out = os.path.join(S, "demo_kill")
args = [a.petl, "demo", "--data", data, "--methods", "linear,bitfit,lora", "--tasks", "sprites_loc,objects_dist",
        "--epochs", "2", "--out", kill_out, "--jobs", "2"]
d = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(CLEAN, PETL_NO_PROGRESS="1"))
deadline = time.time() + 120
while time.time() < deadline and not records(kill_out):
    time.sleep(0.1)
d.send_signal(signal.SIGKILL)
d.wait()


def workers_left():  # any `petl run` of this out dir still alive (reparented after the kill)
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if kill_out.encode() in cmd and b"run" in cmd:
            left.append(pid)
    return left


time.sleep(1.0)
c.check(not workers_left(), "SIGKILL of the demo ends its workers (they die with their parent)")
n_killed = len(records(kill_out))
petl(*args[1:])
ok = [r for r in records(kill_out) if r["status"] == "ok"]
keys = [r["job_key"] for r in ok]
c.check(0 < n_killed < 6 and len(ok) == 6 and len(set(keys)) == 6,
        f"the re-run after the kill finishes the 6 jobs without a duplicate ({n_killed} recorded before the kill)")
c.done()

"""Kill campaigns for the single-process writers, like the sweep's under mpirun: `petl demo` and
`petl run --resume` are SIGKILLed at random moments (seeded), then re-run to completion. The
journal must end with the uninterrupted run's key set, every key once, the same accuracies, and no
torn or glued line."""
import json
import os
import random
import signal
import subprocess
import time

from common import GOLDEN, Checks, make_task, parse_args

a = parse_args()
c = Checks()
S = a.scratch
backbone = os.path.join(GOLDEN, "vit_small.safetensors")
data = os.path.join(S, "suite")
for k, (t, classes) in enumerate((("alpha", 3), ("beta", 4))):
    make_task(data, t, 64, 48, classes, seed=k)
open(os.path.join(data, "SUITE.md"), "w").write("kill-campaign suite\n")
ENV = dict(os.environ, PETL_NO_PROGRESS="1")


def demo_cmd(out):
    return [a.petl, "demo", "--data", data, "--backbone", backbone, "--methods", "linear,bitfit,synqt,lora",
            "--epochs", "30", "--threads", "1", "--out", out, "--no-progress"]


def run_cmd(out):
    return [a.petl, "run", "--method", "lora", "--task", "alpha", "--data-root", data, "--backbone", backbone,
            "--epochs", "60", "--batch-size", "4", "--threads", "1", "--out", out, "--resume", "--no-progress"]


def journal(out):
    """{job_key: [accuracy, ...]} of ok records, and whether every line is a complete JSON object."""
    path = os.path.join(out, "results.jsonl")
    if not os.path.exists(path):
        return {}, True
    raw = open(path, "rb").read()
    intact = raw.endswith(b"\n") or not raw
    keys = {}
    for line in raw.split(b"\n")[:-1]:
        try:
            r = json.loads(line)
        except ValueError:
            intact = False
            continue
        if r.get("status") == "ok":
            keys.setdefault(r["job_key"], []).append(r["accuracy"])
    return keys, intact


def timed(cmd):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    return p, time.time() - t0


def campaign(name, make_cmd, kills, seed):
    ref_out = os.path.join(S, name + "_ref")
    p, full_s = timed(make_cmd(ref_out))
    c.check(p.returncode == 0, f"{name}: uninterrupted run exits 0")
    ref, intact = journal(ref_out)
    c.check(len(ref) > 0 and intact, f"{name}: reference journal has {len(ref)} ok key(s)")
    out = os.path.join(S, name)
    r = random.Random(seed)
    for k in range(kills):
        at = r.uniform(0.1, 0.4) * full_s  # several kills land before the re-runs finish the work
        proc = subprocess.Popen(make_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                                start_new_session=True)
        try:
            proc.wait(timeout=at)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        keys, _ = journal(out)
        c.check(all(len(v) == 1 for v in keys.values()),
                f"{name}: after kill {k + 1} at {at:.1f} s of {full_s:.1f} s: no key twice ({len(keys)} done)")
        if k == 1:  # a kill mid-write leaves a fragment: make sure the campaign sees one
            with open(os.path.join(out, "results.jsonl"), "ab") as f:
                f.write(b'{"schema":"petl.result","status":"ok","job_key":"torn","accur')
    p, _ = timed(make_cmd(out))
    c.check(p.returncode == 0, f"{name}: the re-run after {kills} kills exits 0")
    keys, intact = journal(out)
    c.check(intact, f"{name}: no torn or glued line in the journal")
    c.check(set(keys) == set(ref), f"{name}: same key set as the uninterrupted run ({len(keys)} vs {len(ref)})")
    c.check(all(len(v) == 1 for v in keys.values()), f"{name}: every key once")
    c.check(all(keys[k] == ref[k] for k in ref if k in keys), f"{name}: same accuracies as the uninterrupted run")


campaign("demo", demo_cmd, kills=6, seed=1)
campaign("run_resume", run_cmd, kills=4, seed=2)
c.done()

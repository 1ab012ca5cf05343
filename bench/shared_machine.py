#!/usr/bin/env python3
"""Degrade in proportion on a shared machine: runs the same `petl run` job alone and beside one busy
process (`yes > /dev/null`, or a busy python loop with --busy python) under petl's thread policy
(core/threads.h) and the alternatives it was chosen against, in one invocation, and prints the wall
times and the ratio busy / alone.

    /usr/bin/python3 bench/shared_machine.py [--petl build/petl] [--data data/mini] [--method lora]
        [--task fashion_mnist] [--epochs 3] [--reps 2] [--busy yes|python] [--policies petl,spin,...]

Policies (all cores = the CPUs of this process's affinity mask):
  petl      petl's defaults: short spin (GOMP_SPINCOUNT=1000) and --threads 0 (the cores free at start)
  allcores  short spin, --threads <all cores>: as when the load arrives after the job chose its threads
  spin      libgomp's default spin (GOMP_SPINCOUNT=300000, what an unset OMP_WAIT_POLICY gives) and all
            cores: petl before this policy
  passive   OMP_WAIT_POLICY=passive, all cores
  one       one thread
Each case is timed as the whole process (start, data, training, evaluation, record); the busy
process starts 0.3 s before the job and stops after it. Run it on an otherwise idle machine (e.g.
under `flock /tmp/petl-build.lock`).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

POLICIES = {
    "petl": ("petl default: short spin, threads from free cores", {}, None),
    "allcores": ("short spin, all cores (load arrives later)", {}, "all"),
    "spin": ("libgomp default spin, all cores (before)", {"GOMP_SPINCOUNT": "300000"}, "all"),
    "passive": ("OMP_WAIT_POLICY=passive, all cores", {"OMP_WAIT_POLICY": "passive"}, "all"),
    "one": ("one thread", {}, "1"),
}
BUSY = {
    "yes": ["sh", "-c", "exec yes > /dev/null"],
    "python": [sys.executable, "-c", "while True: pass"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--petl", default=os.path.join(root, "build", "petl"))
    ap.add_argument("--data", default=os.path.join(root, "data", "mini"))
    ap.add_argument("--method", default="lora")
    ap.add_argument("--task", default="fashion_mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2, help="runs per case; the fastest counts")
    ap.add_argument("--busy", choices=sorted(BUSY), default="yes")
    ap.add_argument("--policies", default="petl,allcores,spin,passive,one")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.data, "SUITE.md")):
        subprocess.run([a.petl, "suite", "--out", a.data, "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    cores = len(os.sched_getaffinity(0))
    out = tempfile.mkdtemp(prefix="petl-shared-")
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "PETL_WAIT_POLICY_BY_PETL")}

    def job(policy):
        _, env_add, threads = POLICIES[policy]
        cmd = [a.petl, "run", "--method", a.method, "--task", a.task, "--data-root", a.data, "--recipe", "mini",
               "--epochs", str(a.epochs), "--no-progress", "--no-checkpoint", "--out", out]
        if threads is not None:
            cmd += ["--threads", str(cores) if threads == "all" else threads]
        t0 = time.monotonic()
        p = subprocess.run(cmd, env={**base_env, **env_add}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        dt = time.monotonic() - t0
        if p.returncode != 0:
            sys.exit(f"petl run failed ({policy}):\n{p.stdout}")
        return dt

    def beside_busy(policy):
        b = subprocess.Popen(BUSY[a.busy], stdin=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            return job(policy)
        finally:
            b.kill()
            b.wait()

    print(f"petl bench/shared_machine.py: {a.method} on {a.task}, {a.epochs} epochs, {cores} cores, "
          f"busy process: {a.busy}, best of {a.reps}")
    rows = []
    for pol in a.policies.split(","):
        alone = min(job(pol) for _ in range(a.reps))
        busy = min(beside_busy(pol) for _ in range(a.reps))
        rows.append((pol, alone, busy))
        print(f"  {pol}: alone {alone:.2f} s, beside busy {busy:.2f} s", flush=True)
    ref = dict((p, al) for p, al, _ in rows).get("petl")
    print("\n| policy | alone s | beside busy s | busy / alone | busy / petl alone |")
    print("|---|---:|---:|---:|---:|")
    for pol, alone, busy in rows:
        vs = f"{busy / ref:.2f}" if ref else "-"
        print(f"| {POLICIES[pol][0]} | {alone:.2f} | {busy:.2f} | {busy / alone:.2f} | {vs} |")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

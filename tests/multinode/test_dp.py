#!/usr/bin/env python3
"""`petl run --dp 2` with one rank on each of two "hosts" (tests/multinode/cluster.py), gradients
all-reduced over TCP (btl tcp,self between two network namespaces), equals one process with the same
global batch: every epoch's training loss within a relative 1e-5 and the test accuracies within 0.2
points (the tolerances of the one-host test in tests/py/test_sweep.py), one record written by rank 0
and marked data-parallel with 2 ranks. Full fine-tuning (drop path off), so that every backbone
gradient crosses the network."""
import json
import os
import subprocess

from mn_common import Checks, log, parse_args, start_cluster, suite

a = parse_args()
c = Checks()
ENV = dict(os.environ, PETL_NO_PROGRESS="1")
data = suite(a)
common = [a.petl, "run", "--method", "full", "--set", "drop_path_rate=0", "--task", "sprites_loc", "--data-root", data,
          "--recipe", "mini", "--epochs", "2", "--set", "eval_every=1", "--no-checkpoint", "--no-progress",
          "--threads", "1"]


def last(path):
    with open(path) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    return lines[-1], len(lines)


o1, o2 = os.path.join(a.scratch, "dp1"), os.path.join(a.scratch, "dp2")
subprocess.run(common + ["--out", o1], check=True, capture_output=True, env=ENV)
log("one process done")
cl = start_cluster(a)
try:
    p = subprocess.run(cl.mpirun(2, common + ["--out", o2, "--dp", "2"]), capture_output=True, text=True,
                       env=dict(cl.env, PETL_NO_PROGRESS="1"), timeout=240)
    log("two nodes done")
    c.check(p.returncode == 0, f"mpirun -np 2 (n1, n2) petl run --dp 2 exits 0 ({p.stderr[-1500:] if p.returncode else ''})")
    if p.returncode == 0:
        r1, _ = last(os.path.join(o1, "results.jsonl"))
        r2, n2 = last(os.path.join(o2, "results.jsonl"))
        c.check(n2 == 1 and r2.get("data_parallel", {}).get("ranks") == 2,
                f"one record, written by rank 0, marked data-parallel with 2 ranks ({r2.get('data_parallel')})")
        c.check(r2["provenance"].get("host") == "n1", f"rank 0 ran on n1 ({r2['provenance'].get('host')})")
        l1, l2 = r1["epoch_train_loss"], r2["epoch_train_loss"]
        rel = max(abs(x - y) / abs(x) for x, y in zip(l1, l2))
        print(f"1 process losses {l1}, 2 nodes {l2}, max relative difference {rel:.2e}")
        c.check(len(l1) == len(l2) and rel < 1e-5,
                f"2 ranks on 2 nodes train like 1 rank with the same global batch (loss rel. diff {rel:.1e})")
        acc = [abs(e1["test_acc"] - e2["test_acc"]) for e1, e2 in zip(r1["evals"], r2["evals"])]
        c.check(len(acc) == 2 and max(acc) <= 0.2, f"same test accuracies (max difference {max(acc):.2f} points)")
finally:
    cl.stop()
raise SystemExit(c.done())

"""config/sweeps/vtab1k.yaml, the ready sweep of the whole VTAB-1k table: every registered method ×
the 19 tasks of the published table, each method with its own recipe (no `recipe` key), and a dry
run (with --data-root / --backbone overrides) that plans exactly those jobs, states the cost in
estimated rank-hours consistent with its per-job times, and says why each method is cached or live."""
import csv
import os
import re

import yaml

from common import Checks, parse_args, run

a = parse_args()
c = Checks()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
cfg_path = os.path.join(ROOT, "config", "sweeps", "vtab1k.yaml")
cfg = yaml.safe_load(open(cfg_path))

# every method petl registers, the 19 tasks of the published table, each method's own recipe
# A backbone family's own method (petl list marks it "[made for the <family> family ...]", e.g. MAE's
# linear probe) is not part of the supervised ViT-B/16 table.
listed = re.findall(r"^  ([a-z_0-9]+) +grad-through-backbone=(.*)$", run(a.petl, "list").stdout, re.M)
registered = [m for m, rest in listed if "[made for the " not in rest]
c.check(len(listed) > len(registered) and "mae_linprobe" not in registered,
        "a family's own method (mae_linprobe) is left out of the supervised table")
c.check(len(registered) >= 14, f"petl list names the registered methods ({len(registered)})")
c.check(sorted(cfg["methods"]) == sorted(registered),
        f"the config runs every registered method once: {sorted(set(registered) ^ set(cfg['methods']))} differ")
with open(os.path.join(ROOT, "results", "vpetl_bench_vtab1k.csv")) as f:
    header = next(csv.reader(f))
published_tasks = [h for h in header if h not in ("method", "mean", "params_m")]
c.check(cfg["tasks"] == published_tasks, "the config's tasks are the published table's 19, in its order")
c.check("recipe" not in cfg and "epochs" not in cfg, "no recipe or epochs key: each method trains with its own")

# a VTAB-1k-shaped tree: 1000 train800val200 lines per task, the real test sizes for three tasks
data = os.path.join(a.scratch, "vtab-1k")
test_sizes = {"kitti": 711, "dtd": 1880, "eurosat": 5400}
for t in cfg["tasks"]:
    os.makedirs(os.path.join(data, t))
    with open(os.path.join(data, t, "train800val200.txt"), "w") as f:
        f.writelines(f"images/{i}.png {i % 2}\n" for i in range(1000))
    if t in test_sizes:
        with open(os.path.join(data, t, "test.txt"), "w") as f:
            f.writelines(f"images/t{i}.png {i % 2}\n" for i in range(test_sizes[t]))
backbone = os.path.join(a.scratch, "ViT-B_16.npz")  # a dry run hashes the file; the arch gives the sizes
with open(backbone, "wb") as f:
    f.write(b"stand-in")
p = run(a.petl, "sweep", cfg_path, "--data-root", data, "--backbone", backbone, "--dry-run",
        "--out", os.path.join(a.scratch, "out"))
out = p.stdout
rows = [l.split() for l in out.splitlines() if re.match(r"^[0-9a-f]{16} ", l)]
train = [r for r in rows if not r[1].startswith("[")]
pairs = {(r[1], r[2]) for r in train}
c.check(len(train) == len(registered) * 19 and len(pairs) == len(train),
        f"{len(train)} training jobs, one per (method, task): {len(registered)} × 19")
c.check(f"data_root {data}, backbone {backbone}, arch vit_base_patch16_224_in21k" in out,
        "the header shows the overriding data root and backbone")


def seconds(value, unit):
    return float(value) * {"s": 1, "min": 60, "h": 3600, "d": 86400}[unit]


# the per-job estimates (the column before "disk / RAM") add up to the stated rank-hours (rounding: 1 %)
job_s, n_est, est = 0.0, 0, {}
for line in out.splitlines():
    m = re.match(r"^[0-9a-f]{16} +(\S+) +(\S+) .*?\s([0-9.]+) (s|min|h|d)\s+(-|disk|RAM)", line)
    if m:
        n_est += 1
        job_s += seconds(m.group(3), m.group(4))
        est[(m.group(1), m.group(2))] = seconds(m.group(3), m.group(4))  # training jobs: (method, task)
c.check(n_est == len(rows), f"every planned job shows an estimated time ({n_est} of {len(rows)})")
m = re.search(r"estimated time: ([0-9.]+) rank-hours still to run of ([0-9.]+) \(", out)
c.check(m is not None, "the dry run states the cost in estimated rank-hours")
if m:
    hours = float(m.group(2))
    c.check(hours > 100, f"the whole table is a large job on one rank: {hours} rank-hours")
    c.check(abs(job_s / 3600 - hours) <= 0.01 * hours,
            f"the per-job times add up to the total: {job_s / 3600:.1f} vs {hours} rank-hours")
c.check("at 80 GFLOP/s per rank (est_gflops_per_rank)" in out, "the rate behind the estimate is stated")
# why each method is cached or live, per method
for method, why in [("linear", "cache cls (float16)"), ("vqt", "cache cls+kv (float16)"),
                    ("full", "live: it back-propagates through the backbone"),
                    ("lst", "live: it reads every block's output tokens"),
                    ("synqt", "live: stochastic depth (drop path 0.1)")]:
    c.check(re.search(rf"^  {method} +19 job\(s\)  {re.escape(why)}", out, re.M) is not None,
            f"{method}: the dry run says '{why}'")
# a task with more test images costs more (evaluations are counted), the same method otherwise equal
c.check(est.get(("full", "eurosat"), 0) > est.get(("full", "kitti"), 0) > 0,
        "full on eurosat (5400 test images) costs more than on kitti (711): evaluations are counted")
c.check(est.get(("full", "kitti"), 0) > est.get(("linear", "kitti"), 1e30),
        "full (gradients through the backbone) costs more than linear (from a cached cls token)")
c.done()

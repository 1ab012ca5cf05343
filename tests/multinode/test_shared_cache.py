#!/usr/bin/env python3
"""Two nodes that need the same feature cache at the same moment: it is built once, both use it.

How petl handles it (by design, not by a file lock): the sweep planner turns every feature cache
into a job of its own (`[cache cls]` in `petl sweep --dry-run`), keyed by what determines the
features (backbone, task, splits, taps, dtype), and every query-only training job that reads it
`depends_on` that one key. Rank 0 hands a training job out only after its cache job's ok record is
journaled, so "two nodes at the same moment" becomes: one node builds, the other node's rank waits
(is given nothing it could run) and then trains from the finished file without building it again.
(Independent `--shard` array tasks are separate sweeps and are not covered here.)

Setup: linear probe × 2 seeds on one task (`bundle_jobs: 1`, so the two jobs are two children that
can go to two ranks), one cache build; `mpirun -np 2 --host n1:1,n2:1 petl sweep CONFIG`.
Checks: the dry run shows ONE cache job and both training jobs depend on exactly it; mpirun exits 0;
the cache key is journaled exactly once (and every key once, all ok); the cache directory holds one
complete .h5 per split and no temporary file; the cache job's log says "built feature cache" once
per split and no training job's log says it (nobody rebuilt); both training records carry a
`feature_cache` section naming that directory's files; the training records come from both hosts
(n1 and n2: the node that did not build waited and then read the other node's cache); accuracies
and per-epoch losses equal the same sweep on one node.
"""
import collections
import glob
import os
import re
import subprocess

from mn_common import Checks, compare_journals, hosts_of, log, parse_args, read_journals, start_cluster, suite

a = parse_args()
c = Checks()
ENV = dict(os.environ, PETL_NO_PROGRESS="1")
data = suite(a)


def cfg(name):
    path = os.path.join(a.scratch, name + ".yaml")
    with open(path, "w") as f:
        f.write(f"""name: {name}
out: {os.path.join(a.scratch, name)}
data_root: {data}
recipe: mini
epochs: 3
methods: [linear]
tasks: [sprites_loc]
seeds: [42, 43]
feature_cache: true
cache_dtype: float32
bundle_jobs: 1
threads_per_rank: 1
""")
    return path


ref_cfg = cfg("ref")
p = subprocess.run([a.petl, "sweep", ref_cfg], capture_output=True, text=True, env=ENV)
c.check(p.returncode == 0, f"the one-node reference sweep exits 0 ({p.stderr[-800:] if p.returncode else ''})")
ref = {r["sweep_key"]: r for r in read_journals(os.path.join(a.scratch, "ref"))}
log(f"reference: {len(ref)} records")

mn_cfg = cfg("mn")
out = os.path.join(a.scratch, "mn")
p = subprocess.run([a.petl, "sweep", mn_cfg, "--dry-run"], capture_output=True, text=True, env=ENV)
rows = [ln.split() for ln in p.stdout.splitlines() if re.match(r"^[0-9a-f]{16} ", ln)]
caches = [r[0] for r in rows if r[1] == "[cache"]
trains = [r for r in rows if r[1] == "linear"]
print("\n".join(" ".join(r) for r in rows))
c.check(len(caches) == 1, f"the dry run plans ONE cache build ({caches})")
cache_key = caches[0] if caches else "?"
c.check(len(trains) == 2 and all(cache_key in r for r in trains),
        f"both training jobs depend on that one cache job {cache_key}")

cl = start_cluster(a)
try:
    p = subprocess.run(cl.mpirun(2, [a.petl, "sweep", mn_cfg], hosts=["n1", "n2"]), capture_output=True, text=True,
                       env=dict(cl.env, PETL_NO_PROGRESS="1"), timeout=180)
    print(p.stdout[-1500:])
    c.check(p.returncode == 0, f"mpirun -np 2 (n1, n2) petl sweep exits 0 (got {p.returncode}; "
                               f"{p.stderr[-1500:] if p.returncode else ''})")
finally:
    cl.stop()

recs = read_journals(out)
compare_journals(c, "two nodes, one cache", recs, ref)
n = collections.Counter(r["sweep_key"] for r in recs)
c.check(n[cache_key] == 1, f"the cache job {cache_key} is journaled exactly once ({n[cache_key]})")
cache_rec = next((r for r in recs if r["sweep_key"] == cache_key), {})
builder = cache_rec.get("provenance", {}).get("host")
cdir = os.path.join(out, "cache", cache_key)
files = sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []
h5 = [f for f in files if f.endswith(".h5")]
c.check(len(h5) == 2 and len(files) == 2, f"the cache directory holds one .h5 per split (test, train) and "
                                          f"nothing else: {files}")
p = subprocess.run([a.petl, "cache", "ls", cdir], capture_output=True, text=True, env=ENV)
print(p.stdout)
c.check(p.returncode == 0 and p.stdout.count(" yes ") == 2, "both files are complete (petl cache ls)")
logs = {os.path.basename(f)[:-4]: open(f, errors="replace").read() for f in glob.glob(os.path.join(out, "logs", "*.log"))}
built = {k: v.count("built feature cache") for k, v in logs.items()}
c.check(built.get(cache_key) == 2 and sum(built.values()) == 2,
        f"only the cache job's log says 'built feature cache', once per split: {built}")
trained = [r for r in recs if r.get("schema") == "petl.result"]
fc = [r.get("feature_cache", {}) for r in trained]
c.check(len(trained) == 2 and all(f.get("root") == cdir and os.path.basename(f.get("train", "")) in h5
                                  and os.path.basename(f.get("test", "")) in h5 for f in fc),
        f"both training records say they trained from that cache ({[f.get('root') for f in fc]})")
hosts = hosts_of(trained)
c.check(set(hosts) == {"n1", "n2"}, f"the training jobs ran on both nodes ({dict(hosts)}; the cache was built on "
                                    f"{builder}): the other node read the cache it did not build")
raise SystemExit(c.done())

"""Shared pieces of the multinode tests (tests/multinode/test_*.py): arguments, skip, journals."""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cluster import Cluster, Unavailable, raise_on_signals  # noqa: E402

SKIP = 77
T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


class Checks:
    def __init__(self):
        self.failures = []

    def check(self, cond, msg):
        print(("ok   " if cond else "FAIL ") + msg, flush=True)
        if not cond:
            self.failures.append(msg)
        return cond

    def done(self):
        if self.failures:
            print(f"{len(self.failures)} check(s) failed", file=sys.stderr)
            return 1
        print(f"all checks passed in {time.time() - T0:.0f} s")
        return 0


def parse_args(extra=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--petl", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--source", default=os.path.dirname(os.path.dirname(HERE)), help="the repository")
    ap.add_argument("--keep", action="store_true", help="keep the cluster's temporary directory (daemon logs)")
    if extra:
        extra(ap)
    a = ap.parse_args()
    a.petl = os.path.abspath(a.petl)
    a.scratch = os.path.abspath(a.scratch)
    shutil.rmtree(a.scratch, ignore_errors=True)
    os.makedirs(a.scratch)
    os.chmod(a.scratch, 0o755)
    raise_on_signals()
    return a


def start_cluster(a, slurm=False, nodes=2):
    """The cluster, or exit 77 with the reason when namespaces (or Slurm) cannot be had here.
    In CI (CI set) a missing Slurm is a failure (install-deps installs it); missing namespaces
    (an unprivileged container) stay a skip."""
    try:
        return Cluster(nodes, slurm=slurm, keep=a.keep).__enter__()
    except Unavailable as e:
        in_ci = os.environ.get("CI", "") not in ("", "false", "0")
        if "Slurm" in str(e) and in_ci:
            print(f"FAIL: {e}")
            sys.exit(1)
        print(f"SKIP: the multi-node test cluster cannot be made here: {e}")
        sys.exit(SKIP)


def suite(a):
    data = os.path.join(a.scratch, "mini")
    subprocess.run([a.petl, "suite", "--out", data, "--no-progress"], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PETL_NO_PROGRESS="1"))
    return data


def config(a, name, data, epochs, methods=("linear", "full"), tasks=("sprites_loc", "objects_dist"),
           threads=0, extra="", feature_cache=True):
    path = os.path.join(a.scratch, name + ".yaml")
    with open(path, "w") as f:
        f.write(f"""name: {name}
out: {os.path.join(a.scratch, name)}
data_root: {data}
recipe: mini
epochs: {epochs}
methods: [{', '.join(methods)}]
tasks: [{', '.join(tasks)}]
seeds: [42]
feature_cache: {str(feature_cache).lower()}
cache_dtype: float32
threads_per_rank: {threads}
{extra}""")
    return path


def read_journals(out):
    recs = []
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        if name.startswith("results") and name.endswith(".jsonl"):
            with open(os.path.join(out, name)) as f:
                for line in f:
                    if line.strip():
                        recs.append(json.loads(line))
    return recs


def accuracies(rec):
    abp = rec.get("accuracy_by_protocol", {})
    return (rec.get("accuracy"), abp.get("best_of_10"), abp.get("final"), rec.get("epoch_train_loss"))


def compare_journals(c, name, recs, ref):
    """Every reference key exactly once, all ok, training records equal to the reference's."""
    n = collections.Counter(r["sweep_key"] for r in recs)
    c.check(set(n) == set(ref), f"{name}: the journal has the reference's {len(ref)} keys (got {len(n)})")
    c.check(all(v == 1 for v in n.values()), f"{name}: every key exactly once ({dict(n)})")
    c.check(all(r["status"] == "ok" for r in recs), f"{name}: every record ok")
    trained = [r for r in recs if r.get("schema") == "petl.result"]
    same = [r for r in trained if r["sweep_key"] in ref and accuracies(r) == accuracies(ref[r["sweep_key"]])]
    c.check(len(trained) > 0 and len(same) == len(trained),
            f"{name}: accuracy, best_of_10, final and every epoch's loss equal the one-node run's "
            f"({len(same)} of {len(trained)} training jobs)")
    return trained


def hosts_of(recs):
    return collections.Counter(r.get("provenance", {}).get("host") for r in recs)

#!/usr/bin/env python3
"""slurm/sweep.sbatch with `sbatch -N 2` and slurm/sweep_array.sbatch on a real two-node Slurm
cluster (tests/multinode/cluster.py: slurmctld and munged in the head namespace, one `slurmd -N nX`
per node namespace), against the same sweep in one process on one node.

sweep.sbatch: `sbatch -N 2 --ntasks-per-node=1 --cpus-per-task=1` — one rank per node, launched by
`srun --mpi=pmix` (PMIx client directories on each node's private tmpfs, mpi.conf
PMIxCliTmpDirBase). Checks: the job completes; the journal has every key of the one-node sweep
exactly once, all ok, accuracies and per-epoch losses equal; the records' provenance names both
hosts n1 and n2. Shared memory cannot carry the ranks' messages: the ranks are in different network
and UTS namespaces (OpenMPI sees two hosts) and the job's environment sets OMPI_MCA_btl=tcp,self.
sweep_array.sbatch: `--array=0-1` (2 shards, 1 rank each): every key once, equal accuracies.
"""
import os
import subprocess
import time

from mn_common import (Checks, compare_journals, config, hosts_of, log, parse_args, read_journals, start_cluster,
                       suite)

a = parse_args()
c = Checks()
ENV = dict(os.environ, PETL_NO_PROGRESS="1")
data = suite(a)
ref_cfg = config(a, "ref", data, epochs=3, threads=1)
p = subprocess.run([a.petl, "sweep", ref_cfg], capture_output=True, text=True, env=ENV)
c.check(p.returncode == 0, f"the one-node reference sweep exits 0 ({p.stderr[-800:] if p.returncode else ''})")
ref = {r["sweep_key"]: r for r in read_journals(os.path.join(a.scratch, "ref"))}
log(f"reference: {len(ref)} records")

cl = start_cluster(a, slurm=True)
try:
    log(f"cluster up: {cl.tmp}")
    logs = os.path.join(a.scratch, "slurm-logs")
    os.makedirs(logs)
    jenv = dict(cl.env, PETL=a.petl, PETL_NO_PROGRESS="1", GRACE_S="20")
    sw_cfg = config(a, "sweep", data, epochs=3, threads=1)
    ar_cfg = config(a, "array", data, epochs=3, threads=1)

    def sbatch(args):
        q = subprocess.run(cl.head(["sbatch", "--parsable", f"--chdir={a.scratch}", *args]), capture_output=True,
                           text=True, env=jenv)
        c.check(q.returncode == 0, f"sbatch {' '.join(args[-2:])} accepted ({q.stderr.strip()})")
        return q.stdout.strip().split(";")[0]
    sw = sbatch(["--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1", "--time=5",
                 f"--output={logs}/sweep-%j.out", os.path.join(a.source, "slurm", "sweep.sbatch"), sw_cfg])
    ar = sbatch(["--array=0-1", "--nodes=1", "--ntasks=1", "--cpus-per-task=1", "--time=5",
                 f"--output={logs}/array-%A_%a.out", os.path.join(a.source, "slurm", "sweep_array.sbatch"), ar_cfg])
    log(f"submitted sweep.sbatch -N 2 as job {sw}, sweep_array.sbatch as array {ar}")
    t = time.time()
    states = {}
    while time.time() - t < 180:
        q = subprocess.run(cl.head(["squeue", "-h", "-t", "all", "-o", "%i|%T|%N"]), capture_output=True, text=True,
                           env=cl.env)
        states = {ln.split("|")[0]: ln.split("|")[1:] for ln in q.stdout.split() if "|" in ln}
        mine = {j: s for j, s in states.items() if j == sw or j.startswith(ar + "_")}
        if len(mine) >= 3 and all(s[0] not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for s in mine.values()):
            break
        time.sleep(1)
    log(f"jobs: {states}")
    for j in [sw, f"{ar}_0", f"{ar}_1"]:
        c.check(states.get(j, ["?"])[0] == "COMPLETED", f"job {j} completed ({states.get(j)})")
    c.check(states.get(sw, ["", ""])[1] in ("n[1-2]", "n1,n2"), f"sweep.sbatch ran on both nodes ({states.get(sw)})")
    recs = read_journals(os.path.join(a.scratch, "sweep"))
    compare_journals(c, "sbatch -N 2 sweep.sbatch", recs, ref)
    hosts = hosts_of(recs)
    c.check(set(hosts) == {"n1", "n2"}, f"sweep.sbatch: the records' provenance names both hosts: {dict(hosts)}")
    recs = read_journals(os.path.join(a.scratch, "array"))
    compare_journals(c, "sweep_array.sbatch --array=0-1", recs, ref)
    print(f"sweep_array.sbatch hosts: {dict(hosts_of(recs))}")
    if c.failures:
        for name in sorted(os.listdir(logs)):
            print(f"--- {name}\n" + open(os.path.join(logs, name), errors="replace").read()[-2500:])
        for name in ("slurmctld", "slurmd-n1", "slurmd-n2"):
            print(cl.tail(name, 15))
finally:
    cl.stop()
raise SystemExit(c.done())

#!/usr/bin/env python3
"""`petl sweep` under plain mpirun across two "hosts" (tests/multinode/cluster.py), over TCP.

1. A tiny sweep of the embedded suite (linear probe and full fine-tuning × 2 tasks, their two
   feature-cache builds) runs once in one process on this machine: the one-node reference.
2. The same sweep runs as `mpirun -np 2 --host n1:1,n2:1` from the head namespace, the ranks
   started on the nodes through the cluster's rsh agent. Checks: mpirun exits 0; the journal has
   every reference key exactly once, all ok, and every training record's accuracy, best_of_10,
   final and per-epoch losses equal the reference's; the records' provenance names both hosts
   (n1 and n2); each rank, alone on its node, ran its jobs with all the node's cores (threads =
   cores: the node-local rank count comes from each node, not from the whole job).
   Why shared memory cannot carry the farm's messages: the ranks are in different network and
   UTS namespaces (different hostnames, so OpenMPI puts them on different nodes and would only
   ever use its shared-memory BTL within a node), and the BTL list is `tcp,self` (vader/sm are not
   even loaded); the test also reads OpenMPI's own BTL log (btl_base_verbose) and requires a TCP
   connection between the two nodes' bridge addresses (10.213.0.11 <-> 10.213.0.12).
3. `--gpus-per-node 4` with 4 ranks, 2 per node: the device of each job follows the node-local
   rank (cuda:0 and cuda:1 on each host; one node with 4 ranks would give cuda:0..3), and threads
   are the node's cores shared by its 2 ranks. (No GPU here: those jobs fail, which is fine: the
   failed records carry the argv with the device; live jobs, no cache builds, to fail fast.)
"""
import os
import re
import subprocess

from mn_common import (Checks, compare_journals, config, hosts_of, log, parse_args, read_journals, start_cluster,
                       suite)

a = parse_args()
c = Checks()
ENV = dict(os.environ, PETL_NO_PROGRESS="1")
data = suite(a)
cpus = len(os.sched_getaffinity(0))

# 1. the one-node reference (one process: all cores, like a rank alone on its node)
ref_cfg = config(a, "ref", data, epochs=4)
p = subprocess.run([a.petl, "sweep", ref_cfg], capture_output=True, text=True, env=ENV)
c.check(p.returncode == 0, f"the one-node reference sweep exits 0 ({p.stderr[-800:] if p.returncode else ''})")
ref = {r["sweep_key"]: r for r in read_journals(os.path.join(a.scratch, "ref"))}
log(f"reference: {len(ref)} records")

cl = start_cluster(a)
try:
    log(f"cluster up: {cl.tmp}")
    # 2. the same sweep, one rank per node, over TCP
    mn_cfg = config(a, "mn", data, epochs=4)
    p = subprocess.run(cl.mpirun(2, [a.petl, "sweep", mn_cfg], extra=["--mca", "btl_base_verbose", "100"]),
                       capture_output=True, text=True, env=dict(cl.env, PETL_NO_PROGRESS="1"), timeout=300)
    print(p.stdout[-2500:])
    c.check(p.returncode == 0, f"mpirun -np 2 (n1, n2) petl sweep exits 0 (got {p.returncode}; "
                               f"{p.stderr[-1500:] if p.returncode else ''})")
    recs = read_journals(os.path.join(a.scratch, "mn"))
    compare_journals(c, "two nodes", recs, ref)
    hosts = hosts_of(recs)
    c.check(set(hosts) == {"n1", "n2"}, f"the records' provenance names both hosts: {dict(hosts)}")
    threads = {r["provenance"].get("threads") for r in recs if r.get("schema") == "petl.result"}
    c.check(threads == {cpus}, f"each rank, alone on its node, gives its jobs the node's {cpus} cores: {threads}")
    btl = p.stdout + p.stderr
    c.check("vader" not in re.findall(r"btl: \S+", btl) and "btl:vader" not in btl.replace(" ", ""),
            "OpenMPI's BTL log shows no shared-memory (vader) component")
    tcp = [ln for ln in btl.splitlines() if "btl" in ln and "tcp" in ln and re.search(r"10\.213\.0\.1[12]", ln)]
    print("\n".join(tcp[:6]))
    c.check(len(tcp) > 0, f"OpenMPI's TCP BTL used the nodes' bridge addresses ({len(tcp)} log lines)")

    # 3. --gpus-per-node and threads follow each node's own local ranks
    g_cfg = config(a, "gpus", data, epochs=1, methods=("linear",),
                   tasks=("fashion_mnist", "sprites_loc", "sprites_ori", "objects_count", "objects_dist"), feature_cache=False)
    p = subprocess.run(cl.mpirun(4, [a.petl, "sweep", g_cfg, "--gpus-per-node", "4"], per_node=2),
                       capture_output=True, text=True, env=dict(cl.env, PETL_NO_PROGRESS="1"), timeout=300)
    print(p.stdout[-1500:])
    recs = [r for r in read_journals(os.path.join(a.scratch, "gpus")) if r.get("schema") != "petl.sweep_cache"]
    seen = {}
    for r in recs:
        pv = r.get("provenance", {})
        argv = pv.get("argv", [])
        dev = argv[argv.index("--device") + 1] if "--device" in argv else None
        seen.setdefault(pv.get("host"), set()).add((r.get("sweep_rank"), dev, pv.get("threads")))
    print(f"(rank, device, threads) by host: {seen}")
    devs = {d for s in seen.values() for _, d, _ in s}
    on_n2 = [r for r in recs if r.get("provenance", {}).get("host") == "n2"]
    c.check(len(recs) == 5 and devs == {"cuda:0", "cuda:1"} and len(on_n2) > 0,
            f"--gpus-per-node 4 with 2 ranks per node: devices from the node-local rank only ({devs})")
    for h, s in seen.items():
        ranks = {rk for rk, _, _ in s}
        local = {(rk % 2) for rk in ranks}
        c.check(all(d == f"cuda:{rk % 2}" for rk, d, _ in s), f"{h}: ranks {sorted(ranks)} use cuda:<node-local rank> "
                f"({sorted(s, key=str)}; local ranks {sorted(local)})")
        c.check(all(t == max(1, cpus // 2) for _, _, t in s), f"{h}: threads = the node's {cpus} cores / its 2 ranks")
finally:
    cl.stop()
raise SystemExit(c.done())

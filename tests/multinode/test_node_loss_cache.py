#!/usr/bin/env python3
"""The loss of a node while it is half-way through building a feature cache.

Setup: linear probe on two tasks (two cache jobs, `[cache cls]`, one per rank, each writing one
.h5 per split), `mpirun -np 2 --host n2:1,n1:1 petl sweep CONFIG` from the head. A cache is written
to "<final>.h5.tmp.<pid>" (attribute complete = 0) and renamed onto <final>.h5 only when every row
is in. The test polls the cache directories for such a temporary file whose writer (the pid in its
name) is in n2's network namespace, freezes that writer with SIGSTOP 0.15 s into the file (of ~0.5 s; so that the kill lands
mid-file, not after the rename: the state is the one a power loss at that instant leaves), then
SIGKILLs every process in n2's network namespace exactly as test_node_loss.py does, "reboots" n2
and runs the same command again.

Checks: the first run exits non-zero; the half-written file is still there after the kill, its
final name is not, `petl cache verify` rejects it (incomplete), and its cache job is not journaled; the re-run exits 0; the half-written file
is gone (removed as the temporary file of a build whose process is gone) and the cache was rebuilt
(its job's log says "built feature cache" for that file); every cache file verifies complete
(`petl cache verify`); the journal has every key of an uninterrupted one-node sweep exactly once,
all ok, accuracies and per-epoch losses equal to it.
"""
import glob
import os
import signal
import subprocess
import time

from cluster import pids_in_netns
from mn_common import Checks, compare_journals, config, log, parse_args, read_journals, start_cluster, suite

a = parse_args()
c = Checks()
ENV = dict(os.environ, PETL_NO_PROGRESS="1")
data = suite(a)
MID = 0.15  # seconds after the temporary file appears: rows written, not all (HDF5 keeps them in its chunk cache until finish)
KW = dict(epochs=2, methods=("linear",), tasks=("sprites_loc", "objects_dist"), threads=1)

ref_cfg = config(a, "ref", data, **KW)
p = subprocess.run([a.petl, "sweep", ref_cfg], capture_output=True, text=True, env=ENV)
c.check(p.returncode == 0, f"the one-node reference sweep exits 0 ({p.stderr[-800:] if p.returncode else ''})")
ref = {r["sweep_key"]: r for r in read_journals(os.path.join(a.scratch, "ref"))}
log(f"reference: {len(ref)} records")

cl = start_cluster(a)
mp = None
try:
    out = os.path.join(a.scratch, "lost")
    cfg = config(a, "lost", data, **KW)
    argv = cl.mpirun(2, [a.petl, "sweep", cfg], hosts=["n2", "n1"])
    first_log = open(os.path.join(a.scratch, "first.log"), "w")
    mp = subprocess.Popen(argv, stdout=first_log, stderr=subprocess.STDOUT, env=dict(cl.env, PETL_NO_PROGRESS="1"),
                          start_new_session=True)
    n2 = cl.netns_inode("n2")
    want = f"net:[{n2}]"
    tmp = None
    t = time.time()
    while tmp is None and time.time() - t < 120 and mp.poll() is None:
        for f in glob.glob(os.path.join(out, "cache", "*", "*.h5.tmp.*")):
            pid = int(f.rsplit(".", 1)[1])
            try:
                if os.readlink(f"/proc/{pid}/ns/net") != want:
                    continue
                time.sleep(MID)  # into the rows (a split takes ~0.5 s)
                os.kill(pid, signal.SIGSTOP)  # freeze n2's writer mid-file; the node's kill follows
            except OSError:
                continue
            if not os.path.exists(f):
                os.kill(pid, signal.SIGCONT)  # it finished that split meanwhile: catch the next one
                continue
            tmp = f
            break
        else:
            time.sleep(0.005)
    c.check(tmp is not None, f"n2 was caught writing a feature cache: {tmp}")
    if tmp is None:
        raise SystemExit(c.done())
    cache_key = os.path.basename(os.path.dirname(tmp))
    final = tmp.rsplit(".tmp.", 1)[0]
    pids = cl.kill_node("n2")
    log(f"node n2 lost mid-cache-build: SIGKILLed {len(pids)} processes of its network namespace")
    try:
        rc = mp.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(mp.pid, signal.SIGKILL)
        rc = mp.wait()
        c.check(False, "mpirun ends after the loss of a node (it hung: killed)")
    first_log.close()
    text = open(os.path.join(a.scratch, "first.log"), errors="replace").read()
    print("--- mpirun's output, tail:\n" + text[-1200:] + "\n---")
    c.check(rc != 0, f"mpirun exits non-zero after losing n2 (status {rc})")
    c.check(os.path.exists(tmp) and not os.path.exists(final),
            f"the half-written {os.path.basename(tmp)} is left, its final name {os.path.basename(final)} is not there "
            f"({os.path.getsize(tmp) if os.path.exists(tmp) else 0} bytes)")
    p = subprocess.run([a.petl, "cache", "verify", tmp], capture_output=True, text=True, env=ENV)
    print(p.stdout[-600:] + p.stderr[-600:])
    c.check(p.returncode != 0, "petl cache verify rejects the half-written file")
    c.check(not any(r["sweep_key"] == cache_key for r in read_journals(out)),
            f"the interrupted cache job {cache_key} was not journaled")
    c.check(not pids_in_netns(n2), "nothing of n2 is left running")

    cl.reboot_node("n2")
    p = subprocess.run(argv, capture_output=True, text=True, env=dict(cl.env, PETL_NO_PROGRESS="1"), timeout=180)
    print(p.stdout[-1500:])
    c.check(p.returncode == 0, f"the same command again exits 0 (got {p.returncode}; {p.stderr[-1500:] if p.returncode else ''})")
    c.check(not os.path.exists(tmp), "the half-written file is gone (not used, not left behind)")
    leftovers = glob.glob(os.path.join(out, "cache", "*", "*.tmp.*"))
    c.check(not leftovers, f"no temporary cache file is left anywhere ({leftovers})")
    clog = open(os.path.join(out, "logs", cache_key + ".log"), errors="replace").read()
    print("--- the cache job's log after the re-run:\n" + "\n".join(
        ln for ln in clog.splitlines() if "[petl]" in ln and "cache" in ln) + "\n---")
    c.check(os.path.exists(final) and f"built feature cache {final}" in clog,
            f"the re-run rebuilt {os.path.basename(final)} (its cache job's log says so)")
    p = subprocess.run([a.petl, "cache", "verify", os.path.join(out, "cache")], capture_output=True, text=True, env=ENV)
    print(p.stdout[-800:])
    c.check(p.returncode == 0 and "0 bad" in p.stdout, "every cache file verifies complete (petl cache verify)")
    compare_journals(c, "after the loss mid-cache and the re-run", read_journals(out), ref)
finally:
    if mp is not None and mp.poll() is None:
        os.killpg(mp.pid, signal.SIGKILL)
        mp.wait()
    cl.stop()
raise SystemExit(c.done())

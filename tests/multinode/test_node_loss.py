#!/usr/bin/env python3
"""The loss of a node mid-sweep, as a power loss would: every process in node n2's namespaces is
SIGKILLed (exactly the pids whose /proc/PID/ns/net is n2's network namespace: its ranks, their job
children, OpenMPI's daemon, the node's holder).

Setup: `mpirun -np 2 --host n2:1,n1:1 petl sweep CONFIG --state-every 0` from the head, so that rank
0 (the scheduler, the only journal writer, the holder of the sweep lock <journal>.lock) is on n2,
the node that dies; every training job saves its full state at each epoch boundary. The node is
killed once both full fine-tuning jobs (the longest, started first, one per rank) have saved a
state.

What happens, and what the user must do (README "Losing a node"): mpirun reports that it lost a
daemon and exits non-zero, killing rank 1 and its job on n1; nothing is journaled for the jobs that
were running. The user runs the same command again once the node is back (here: the node
"reboots": same hostname and address, an empty node-local tmpfs) or on the nodes left. Checks:
the first run exits non-zero; the lock file names the dead holder on n2 and the re-run takes it
over (exit 0, no "held by" refusal); the journal has every key of an uninterrupted one-node sweep
exactly once, all ok, accuracies and per-epoch losses equal to it; the full fine-tuning jobs that
were running at the kill (on n2, and on n1 killed by mpirun's abort) continue from their saved
state (their records carry `resumed`, from an epoch > 1).
"""
import os
import signal
import subprocess
import time

from mn_common import Checks, compare_journals, config, log, parse_args, read_journals, start_cluster, suite

a = parse_args()
c = Checks()
ENV = dict(os.environ, PETL_NO_PROGRESS="1")
data = suite(a)
EPOCHS = 6

ref_cfg = config(a, "ref", data, epochs=EPOCHS, threads=1)
p = subprocess.run([a.petl, "sweep", ref_cfg], capture_output=True, text=True, env=ENV)
c.check(p.returncode == 0, f"the one-node reference sweep exits 0 ({p.stderr[-800:] if p.returncode else ''})")
ref = {r["sweep_key"]: r for r in read_journals(os.path.join(a.scratch, "ref"))}
fulls = [k for k, r in ref.items() if r.get("method") == "full"]
log(f"reference: {len(ref)} records; full fine-tuning jobs {fulls}")

cl = start_cluster(a)
mp = None
try:
    out = os.path.join(a.scratch, "lost")
    cfg = config(a, "lost", data, epochs=EPOCHS, threads=1)
    argv = cl.mpirun(2, [a.petl, "sweep", cfg, "--state-every", "0"], hosts=["n2", "n1"])
    first_log = open(os.path.join(a.scratch, "first.log"), "w")
    mp = subprocess.Popen(argv, stdout=first_log, stderr=subprocess.STDOUT, env=dict(cl.env, PETL_NO_PROGRESS="1"),
                          start_new_session=True)

    def states():
        return [k for k in fulls if os.path.isdir(os.path.join(out, "jobs", k, "state"))
                and os.listdir(os.path.join(out, "jobs", k, "state"))]
    t = time.time()
    while len(states()) < len(fulls) and time.time() - t < 120 and mp.poll() is None:
        time.sleep(0.2)
    c.check(len(states()) == len(fulls), f"both full fine-tuning jobs saved a mid-job state ({states()})")
    with open(out + "/results.jsonl.lock", errors="replace") if os.path.exists(out + "/results.jsonl.lock") \
            else open(os.devnull) as f:
        lock_before = f.read()
    pids = cl.kill_node("n2")
    log(f"node n2 lost: SIGKILLed {len(pids)} processes of its network namespace")
    try:
        rc = mp.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(mp.pid, signal.SIGKILL)
        rc = mp.wait()
        c.check(False, "mpirun ends after the loss of a node (it hung: killed)")
    first_log.close()
    text = open(os.path.join(a.scratch, "first.log"), errors="replace").read()
    print("--- what the user sees (mpirun's output, tail):\n" + text[-1500:] + "\n---")
    c.check(rc != 0, f"mpirun exits non-zero after losing n2 (status {rc})")
    recs = read_journals(out)
    c.check(not any(r["sweep_key"] in fulls for r in recs), "no full fine-tuning job was journaled before the loss")
    c.check("n2" in lock_before, f"the sweep lock was held on n2: {lock_before.strip()!r}")
    # The re-run: the node is back (as after a reboot), the same command again.
    cl.reboot_node("n2")
    p = subprocess.run(argv, capture_output=True, text=True, env=dict(cl.env, PETL_NO_PROGRESS="1"), timeout=180)
    print(p.stdout[-2000:])
    c.check(p.returncode == 0, f"the same command again exits 0 (got {p.returncode}; {p.stderr[-1500:] if p.returncode else ''})")
    c.check("held by" not in p.stderr, "the re-run took over the dead rank 0's sweep lock")
    recs = read_journals(out)
    compare_journals(c, "after the loss and the re-run", recs, ref)
    resumed = {r["sweep_key"]: r.get("resumed") for r in recs if r["sweep_key"] in fulls}
    print(f"resumed: {resumed}")
    c.check(all(v and v.get("from_epoch", 0) > 1 for v in resumed.values()),
            "every full fine-tuning job running at the loss (on n2 and on n1) continued from its saved state")
finally:
    if mp is not None and mp.poll() is None:
        os.killpg(mp.pid, signal.SIGKILL)
        mp.wait()
    cl.stop()
raise SystemExit(c.done())

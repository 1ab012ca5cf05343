#!/usr/bin/env python3
"""End-to-end interruption tests of `petl sweep` under mpirun, with fake jobs (fake_petl.sh).

1. reference: an uninterrupted sweep → exit 0, its set of journal keys.
2. SIGKILL of everything (mpirun, ranks and job children — a node failure) at two moments, plus
   a torn last journal line, then a re-run → the journal's key set equals the reference's, every
   line parses, no key twice.
3. SIGTERM to mpirun → the ranks stop their jobs and exit 143 (mpirun itself reports its own
   status), nothing is left running; SIGUSR2 to mpirun (forwarded to the ranks, what Slurm's
   --signal=B:USR2 does via the batch script) → mpirun exits 143; a re-run completes the sweep;
   `petl sweep --ranks N` (starts mpirun itself) stopped by SIGINT to its process group → exits
   143, nothing left, and the same command resumes to a complete journal.
4. a second sweep on the same --out while one runs → fails at once naming the lock's holder; the
   first finishes with every key once. (After the SIGKILLs of 2. the lock of the dead sweep is
   taken over by the re-run.)

usage: sweep_signal_test.py --petl BIN [--fake fake_petl.sh] [--mpirun mpirun] [--np 2] --scratch DIR
BIN is a petl binary with the `sweep` command (the real petl, or tests' petl_sweep_stub).
Methods are registered names (linear, full, synqt) so the real method registry accepts them; the
fake job treats them all as ok.
"""
import argparse
import collections
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAILURES = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        FAILURES.append(msg)


def session_pids(sid):
    """Live processes of session `sid` (zombies excluded)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            out.append(int(d))
    return out


def journal(out_dir):
    path = os.path.join(out_dir, "results.jsonl")
    keys = collections.Counter()
    if not os.path.exists(path):
        return keys, 0
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    complete = lines[:-1]
    for ln in complete:
        rec = json.loads(ln)  # raises on a corrupt line
        keys[rec["sweep_key"]] += 1
    return keys, len(complete)


class Runner:
    def __init__(self, a, scratch):
        self.a = a
        self.scratch = scratch
        self.fake = os.path.join(scratch, "fake_petl.sh")
        shutil.copy(a.fake, self.fake)
        os.chmod(self.fake, 0o755)
        self.data = os.path.join(scratch, "data")
        os.makedirs(self.data, exist_ok=True)
        self.state = os.path.join(scratch, "state")
        os.makedirs(self.state, exist_ok=True)

    def config(self, name):
        path = os.path.join(self.scratch, name + ".yaml")
        with open(path, "w") as f:
            f.write(f"name: {name}\nout: {os.path.join(self.scratch, name)}\ndata_root: {self.data}\n"
                    "methods: [linear, full, synqt]\ntasks: [t1, t2, t3, t4]\nseeds: [1, 2]\n")
        return path

    def start(self, cfg, sleep_s, extra=(), log_name=None, launcher=False):
        """Starts mpirun (launcher: `petl sweep --ranks N`, which starts mpirun itself); its output goes
        to a log of its own (p.log), mpirun-<n>.log by default."""
        self.runs = getattr(self, "runs", 0) + 1
        env = dict(os.environ)
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", FAKE_SLEEP=str(sleep_s),
                   FAKE_STATE_DIR=self.state, FAKE_RUNS_LOG=os.path.join(self.scratch, "runs.log"))
        mpirun = [self.a.mpirun, "--allow-run-as-root", "--oversubscribe"]
        if launcher:
            cmd = [self.a.petl, "sweep", cfg, "--ranks", str(self.a.np), "--mpirun", " ".join(mpirun)]
        else:
            cmd = [*mpirun, "-np", str(self.a.np), self.a.petl, "sweep", cfg]
        cmd += ["--petl", self.fake, "--grace-s", "5", *extra]
        path = os.path.join(self.scratch, log_name or f"mpirun-{self.runs}.log")
        log = open(path, "wb")
        p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        p.log = path
        return p

    def run(self, cfg, sleep_s=0.05, timeout=300):
        p = self.start(cfg, sleep_s)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_session(p)
            raise

    @staticmethod
    def kill_session(p):
        for pid in session_pids(p.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass

    @staticmethod
    def nothing_left(p, timeout=15):
        """Waits (up to `timeout` s) until no process of p's session is left; whether none is."""
        return wait_until(lambda: not session_pids(p.pid), timeout)

    @staticmethod
    def wait_lines(out_dir, n, p, timeout=120):
        t0 = time.time()
        while time.time() - t0 < timeout and p.poll() is None:
            if journal(out_dir)[1] >= n:
                return True
            time.sleep(0.05)
        return False


def wait_until(cond, timeout, poll_s=0.05):
    """Polls cond() until it holds or `timeout` seconds pass; returns whether it held."""
    t0 = time.time()
    while True:
        if cond():
            return True
        if time.time() - t0 > timeout:
            return False
        time.sleep(poll_s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--petl", required=True)
    ap.add_argument("--fake", default=os.path.join(HERE, "fake_petl.sh"))
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--scratch", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.scratch, ignore_errors=True)
    os.makedirs(a.scratch)
    r = Runner(a, a.scratch)

    # 1. reference
    rc = r.run(r.config("ref"))
    ref, ref_lines = journal(os.path.join(a.scratch, "ref"))
    check(rc == 0, f"uninterrupted sweep exits 0 (got {rc})")
    check(len(ref) > 0 and all(v == 1 for v in ref.values()), f"reference journal: {len(ref)} keys, each once")

    # 2. SIGKILL of the whole process tree, twice, then a torn line, then resume
    cfg = r.config("kill")
    out = os.path.join(a.scratch, "kill")
    for at in (3, 9):
        p = r.start(cfg, 0.25)
        reached = r.wait_lines(out, at, p)
        check(reached, f"sweep reached {at} journal lines before the kill")
        r.kill_session(p)
        check(r.nothing_left(p), "nothing of the killed sweep is left running (jobs included)")
        keys, _ = journal(out)
        check(all(v == 1 for v in keys.values()), f"after SIGKILL at {at}: no key twice ({len(keys)} keys)")
    with open(os.path.join(out, "results.jsonl"), "ab") as f:
        f.write(b'{"schema":"petl.result","status":"ok","sweep_key":"0123456789abcdef","accur')
    rc = r.run(cfg)
    keys, _ = journal(out)
    check(rc == 0, f"resume after SIGKILL exits 0 (got {rc})")
    check(set(keys) == set(ref), f"resumed key set equals the uninterrupted one ({len(keys)} vs {len(ref)})")
    check(all(v == 1 for v in keys.values()), "resumed journal: every key once")

    # 3a. SIGTERM to mpirun
    cfg = r.config("term")
    out = os.path.join(a.scratch, "term")
    p = r.start(cfg, 0.5)
    check(r.wait_lines(out, 2, p), "sweep reached 2 journal lines before SIGTERM")
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        r.kill_session(p)
        rc = None
    check(rc is not None and time.time() - t0 < 30, f"mpirun exits after SIGTERM (status {rc}, "
                                                      f"{time.time() - t0:.1f} s)")
    check(r.nothing_left(p), "nothing is left running after SIGTERM")
    with open(p.log, "rb") as f:  # this run's own output
        log = f.read().decode(errors="replace")
    check("exit status 143" in log, "rank 0 reported the interruption (exit status 143)")
    keys, _ = journal(out)
    check(all(v == 1 for v in keys.values()) and len(keys) < len(ref), "after SIGTERM: partial journal, no key twice")

    # 3b. SIGUSR2 to mpirun (forwarded to the ranks) → mpirun exits 143
    p = r.start(cfg, 0.5)
    n0 = journal(out)[1]
    check(r.wait_lines(out, n0 + 1, p), "resumed sweep makes progress before SIGUSR2")
    p.send_signal(signal.SIGUSR2)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        r.kill_session(p)
        rc = None
    check(rc == 143, f"SIGUSR2: mpirun exits 143 (got {rc})")
    check(r.nothing_left(p), "nothing is left running after SIGUSR2")
    rc = r.run(cfg)
    keys, _ = journal(out)
    check(rc == 0, f"resume after SIGTERM/SIGUSR2 exits 0 (got {rc})")
    check(set(keys) == set(ref) and all(v == 1 for v in keys.values()),
          "resumed key set equals the uninterrupted one, no key twice")

    # 3c. `petl sweep --ranks N` starts mpirun itself; Ctrl-C (SIGINT to the launcher's process group,
    # which mpirun is not in) → every rank stops, the launcher exits 143; the same command resumes.
    cfg = r.config("launcher")
    out = os.path.join(a.scratch, "launcher")
    p = r.start(cfg, 0.5, launcher=True)
    check(r.wait_lines(out, 2, p), "--ranks: sweep reached 2 journal lines before SIGINT")
    t0 = time.time()
    os.killpg(p.pid, signal.SIGINT)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        r.kill_session(p)
        rc = None
    check(rc == 143, f"--ranks: SIGINT → exit 143 (got {rc}, {time.time() - t0:.1f} s)")
    check(r.nothing_left(p), "--ranks: nothing is left running after SIGINT")
    keys, _ = journal(out)
    check(all(v == 1 for v in keys.values()) and len(keys) < len(ref), "--ranks: partial journal, no key twice")
    p = r.start(cfg, 0.05, launcher=True)
    rc = p.wait(timeout=300)
    keys, _ = journal(out)
    check(rc == 0 and set(keys) == set(ref) and all(v == 1 for v in keys.values()),
          f"--ranks: the re-run resumes and completes, every key once ({len(keys)} keys, status {rc})")

    # 4. a second sweep on the same --out while the first runs stops at once, naming the holder
    cfg = r.config("twice")
    out = os.path.join(a.scratch, "twice")
    p = r.start(cfg, 0.3)
    check(r.wait_lines(out, 1, p), "first sweep reached 1 journal line")
    p2 = r.start(cfg, 0.05, log_name="second.log")
    try:
        rc2 = p2.wait(timeout=120)
    except subprocess.TimeoutExpired:
        r.kill_session(p2)
        rc2 = None
    with open(p2.log, "rb") as f:
        log2 = f.read().decode(errors="replace")
    check(rc2 not in (0, None), f"second sweep on a busy --out fails (status {rc2})")
    check("is in use" in log2 and "pid " in log2 and "host " in log2,
          "its message says the journal is in use and names the holder's host and pid")
    rc = p.wait(timeout=300)
    keys, _ = journal(out)
    check(rc == 0 and set(keys) == set(ref) and all(v == 1 for v in keys.values()),
          f"the first sweep finishes alone: every key once ({len(keys)} keys, status {rc})")

    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed; mpirun output in {a.scratch}/mpirun-<n>.log", file=sys.stderr)
        return 1
    shutil.rmtree(a.scratch, ignore_errors=True)
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

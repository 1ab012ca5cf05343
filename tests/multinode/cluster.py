#!/usr/bin/env python3
"""A throw-away multi-node cluster on one machine: N "nodes" as Linux namespaces (root only).

Used by the multinode tests (tests/multinode/test_*.py) and by hand, to try petl's multi-node paths
(mpirun over TCP, sbatch -N 2, the loss of a node) on a laptop:

    sudo python3 tests/multinode/cluster.py                    # 2 nodes + Slurm, a shell in the head
    sudo python3 tests/multinode/cluster.py --nodes 3 -- sinfo -N
    sudo python3 tests/multinode/cluster.py --no-slurm -- bash -c '$PETL_MN_MPIRUN -np 2 hostname'

What it makes (every name starts with petlmn<pid>-, so it never touches what it did not make):
- a network namespace `petlmn<pid>-head` holding a bridge with 10.213.0.1/24, and one network
  namespace per node `petlmn<pid>-nI` with 10.213.0.(10+I)/24 on a veth whose other end is on the
  bridge. No link, address or route is added outside these namespaces (the bridge and the veths
  live and die with them); nothing on the host's own network changes.
- per namespace a holder process (`sleep`) that also owns a UTS namespace (hostname `head`, `n1`,
  `n2`, ...) and a private mount namespace: /etc/hosts is bind-mounted with the cluster's names,
  and on a node <tmp>/local is a private tmpfs (node-local scratch: PMIx client directories,
  OpenMPI session directories). Commands enter a "host" with `nsenter -t HOLDER -n -u -m`
  (not `ip netns exec`, which remounts /sys: slurmd then finds no cgroup filesystem).
- an rsh agent <tmp>/bin/petlmn-rsh (`petlmn-rsh HOST CMD...` = run CMD in that node) for plain
  mpirun: `$PETL_MN_MPIRUN` = mpirun --mca plm_rsh_agent <agent> --mca btl tcp,self (no shared
  memory transport) --mca btl_tcp_if_include/oob_tcp_if_include 10.213.0.0/24.
- with Slurm (default): munged (fresh key) and slurmctld in the head (SlurmctldHost=head(10.213.0.1)),
  one `slurmd -N nI` per node (NodeAddr 10.213.0.(10+I), own port, spool, pid and log file);
  mpi.conf sets PMIxCliTmpDirBase to the node-local tmpfs (the nodes share /tmp: the stepds'
  PMIx client directories would collide). `srun --mpi=pmix` reaches the nodes' ranks.

Teardown, always: every process whose network namespace is one of ours is killed (SIGTERM, then
SIGKILL), then the namespaces are deleted and the temporary directory removed — on normal exit,
on an exception, on SIGTERM/SIGINT/SIGHUP, and, through a reaper process detached at start that
waits for this process to end, even when this process is SIGKILLed (a ctest timeout). At start,
leftovers of an earlier helper whose process is gone (petlmn<deadpid>-*) are removed too.

Environment for commands run in the cluster (Cluster.env; exported in the shell / command):
SLURM_CONF, PETL_MN_MPIRUN, PETL_MN_AGENT, PETL_MN_NODES (n1,n2,...), PETL_MN_TMP, and OMPI_MCA_*
settings for TCP between nodes (they reach srun-launched ranks too).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PREFIX = "petlmn"
SUBNET = "10.213.0"
NETNS_DIR = "/run/netns"
SLURMCTLD_PORT = 6817
SLURMD_PORT0 = 6818


class Unavailable(Exception):
    """Namespaces (or the daemons) cannot be made here: a test reports a skip (exit 77)."""


def _run(argv, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
    return p


def netns_inode(name):
    try:
        return os.stat(os.path.join(NETNS_DIR, name)).st_ino
    except OSError:
        return None


def pids_in_netns(inode):
    """Every process (not us) whose network namespace has this inode."""
    out = []
    want = f"net:[{inode}]"
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            if os.readlink(f"/proc/{d}/ns/net") == want:
                out.append(int(d))
        except OSError:
            pass
    return out


def kill_netns_processes(inode, term_wait=2.0):
    """SIGTERM, then SIGKILL, every process in that network namespace; returns the pids found."""
    seen = set()
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 5.0)):
        pids = pids_in_netns(inode)
        seen.update(pids)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        t = time.time()
        while pids_in_netns(inode) and time.time() - t < wait:
            time.sleep(0.1)
    return sorted(seen)


def teardown_prefix(prefix):
    """Kill everything in the namespaces named prefix*, delete them (a name list, not a guess)."""
    try:
        names = [n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)]
    except OSError:
        return
    # Nodes first, the head (slurmctld, munged, mpirun) last.
    names.sort(key=lambda n: n.endswith("-head"))
    for n in names:
        ino = netns_inode(n)
        if ino is not None:
            kill_netns_processes(ino, term_wait=1.0)
    for n in names:
        _run(["ip", "netns", "del", n], check=False)


def clean_stale():
    """Namespaces of an earlier helper whose process no longer exists."""
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return
    for pid in sorted({int(m.group(1)) for n in names if (m := re.match(rf"{PREFIX}(\d+)-", n))}):
        if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            print(f"[cluster] removing leftovers of helper {pid} (gone)", file=sys.stderr)
            teardown_prefix(f"{PREFIX}{pid}-")


def start_reaper(prefix, tmp, keep):
    """A detached process (own session, not our child) that tears everything down once we are gone,
    however we end. Returns the write end of the pipe it waits on: close it when done."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            while os.read(r, 64):
                pass
            teardown_prefix(prefix)
            if not keep:
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            os._exit(0)
    os.close(r)
    os.waitpid(pid, 0)
    return w


class Cluster:
    def __init__(self, nodes=2, slurm=True, tmp=None, keep=False, cpus=None):
        self.n = nodes
        self.slurm = slurm
        self.keep = keep
        self.cpus = cpus or len(os.sched_getaffinity(0))
        self.prefix = f"{PREFIX}{os.getpid()}-"
        self.names = ["head"] + [f"n{i}" for i in range(1, nodes + 1)]
        self.addr = {"head": f"{SUBNET}.1"}
        self.addr.update({f"n{i}": f"{SUBNET}.{10 + i}" for i in range(1, nodes + 1)})
        self.tmp = tmp
        self.holders = {}
        self.daemons = []
        self.reaper_fd = None
        self.up = False

    # ------------------------------------------------------------------ names
    def netns(self, host):
        return self.prefix + host

    def netns_inode(self, host):
        return netns_inode(self.netns(host))

    def enter(self, host, cwd=None):
        """argv prefix that runs a command in `host` (network, hostname, mounts), in `cwd` (default:
        ours; entering a mount namespace would otherwise start it in /)."""
        return ["nsenter", "-t", str(self.holders[host].pid), "-n", "-u", "-m", f"--wd={cwd or os.getcwd()}", "--"]

    def head(self, argv):
        return self.enter("head") + list(argv)

    def on(self, host, argv):
        return self.enter(host) + list(argv)

    @property
    def nodes(self):
        return self.names[1:]

    # ------------------------------------------------------------------ up / down
    @staticmethod
    def check_possible():
        """Raises Unavailable with the reason when this machine cannot host the cluster."""
        if os.geteuid() != 0:
            raise Unavailable("namespaces need root")
        missing = [b for b in ("ip", "nsenter", "unshare", "mount") if not shutil.which(b)]
        if missing:
            raise Unavailable(f"missing {', '.join(missing)} (packages iproute2, util-linux)")
        name = f"{PREFIX}{os.getpid()}-probe"
        p = _run(["ip", "netns", "add", name], check=False)
        if p.returncode != 0:
            raise Unavailable(f"cannot create a network namespace: {p.stderr.strip()}")
        try:
            q = _run(["nsenter", f"--net={NETNS_DIR}/{name}", "--", "unshare", "--uts", "--mount",
                      "--propagation", "private", "--", "true"], check=False)
            if q.returncode != 0:
                raise Unavailable(f"cannot enter a network namespace / unshare: {q.stderr.strip()}")
        finally:
            _run(["ip", "netns", "del", name], check=False)

    def start(self):
        self.check_possible()
        clean_stale()
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="petl-multinode-")
        os.chmod(self.tmp, 0o755)
        self.reaper_fd = start_reaper(self.prefix, self.tmp, self.keep)
        self.up = True
        for d in ("bin", "logs", "local", "spool", "run", "state"):
            os.makedirs(os.path.join(self.tmp, d), exist_ok=True)
        hosts = os.path.join(self.tmp, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n")
            for h in self.names:
                f.write(f"{self.addr[h]} {h}\n")
        # Namespaces and links: all inside the namespaces made here.
        for h in self.names:
            _run(["ip", "netns", "add", self.netns(h)])
        H = self.netns("head")
        _run(["ip", "-n", H, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", H, "addr", "add", f"{self.addr['head']}/24", "dev", "br0"])
        _run(["ip", "-n", H, "link", "set", "br0", "up"])
        _run(["ip", "-n", H, "link", "set", "lo", "up"])
        for i, h in enumerate(self.nodes, 1):
            N = self.netns(h)
            _run(["ip", "-n", H, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", N])
            _run(["ip", "-n", H, "link", "set", f"v{i}", "master", "br0", "up"])
            _run(["ip", "-n", N, "addr", "add", f"{self.addr[h]}/24", "dev", "eth0"])
            _run(["ip", "-n", N, "link", "set", "eth0", "up"])
            _run(["ip", "-n", N, "link", "set", "lo", "up"])
        for h in self.names:
            self._holder(h)
        self._write_agent()
        self.env = self._env()
        # Reachability over the bridge (from the head to every node).
        for h in self.nodes:
            _run(self.head(["ping", "-c", "1", "-W", "2", h]) if shutil.which("ping") else
                 self.on(h, ["true"]))
        if self.slurm:
            self._start_slurm()
        return self

    def _holder(self, h):
        """The process that owns `h`'s hostname and mounts (and keeps them): `sleep` in its namespaces."""
        hosts = os.path.join(self.tmp, "hosts")
        script = f"hostname {h} && mount --bind {hosts} /etc/hosts"
        if h != "head":     # a node-local scratch directory: a tmpfs only this node sees
            script += f" && mount -t tmpfs -o size=256m,mode=1777 petlmn-{h} {os.path.join(self.tmp, 'local')}"
        script += " && echo ready && exec sleep 1000000"
        p = subprocess.Popen(["nsenter", f"--net={NETNS_DIR}/{self.netns(h)}", "--", "unshare", "--uts",
                              "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             text=True, start_new_session=True)
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"holder of {h} failed: {p.stderr.read()}")
        self.holders[h] = p

    def reboot_node(self, host):
        """After kill_node: the node comes back (same address and hostname, an empty node-local
        tmpfs, no daemons: with Slurm its slurmd is started again)."""
        old = self.holders[host]
        try:
            old.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._holder(host)
        self._write_agent()
        if self.slurm:
            self._spawn(f"slurmd-{host}", self.on(host, ["slurmd", "-D", "-f", self.env["SLURM_CONF"], "-N", host]))

    def _write_agent(self):
        self.agent = os.path.join(self.tmp, "bin", "petlmn-rsh")
        cases = "\n".join(f"  {h}|{self.addr[h]}) pid={self.holders[h].pid} ;;" for h in self.names)
        with open(self.agent, "w") as f:
            f.write(f"""#!/bin/sh
# rsh agent of the test cluster {self.prefix}*: petlmn-rsh [-x] HOST CMD... runs CMD on HOST.
while [ "${{1#-}}" != "$1" ]; do shift; done
host=$1; shift
case "$host" in
{cases}
  *) echo "petlmn-rsh: unknown host $host" >&2; exit 255 ;;
esac
exec nsenter -t "$pid" -n -u -m -- /bin/sh -c "$*"
""")
        os.chmod(self.agent, 0o755)

    def _env(self):
        env = dict(os.environ)
        for k in list(env):     # an outer allocation or MPI job must not leak in
            if k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "OMPI_", "PMIX_", "PMI_")):
                del env[k]
        env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        net = f"{SUBNET}.0/24"
        env.update({
            "OMPI_MCA_btl": "tcp,self",                 # no vader (shared memory) anywhere
            "OMPI_MCA_btl_tcp_if_include": net,
            "OMPI_MCA_oob_tcp_if_include": net,
            "OMPI_MCA_plm_rsh_agent": self.agent,
            "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "PETL_MN_AGENT": self.agent,
            "PETL_MN_NODES": ",".join(self.nodes),
            "PETL_MN_TMP": self.tmp,
            "PETL_MN_MPIRUN": f"mpirun --allow-run-as-root --mca plm_rsh_agent {self.agent} --mca btl tcp,self "
                              f"--mca btl_tcp_if_include {net} --mca oob_tcp_if_include {net} "
                              f"--host {','.join(self.nodes)} --bind-to none",
        })
        if self.slurm:
            env["SLURM_CONF"] = os.path.join(self.tmp, "slurm.conf")
        return env

    def mpirun(self, np, argv, per_node=1, extra=(), hosts=None):
        """argv (to run in the head) of plain mpirun over the agent, `per_node` ranks per node, on
        `hosts` in that order (default: every node; rank 0 on the first)."""
        hosts = ",".join(f"{h}:{per_node}" for h in (hosts or self.nodes))
        net = f"{SUBNET}.0/24"
        return self.head(["mpirun", "--allow-run-as-root", "--mca", "plm_rsh_agent", self.agent,
                          "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", net,
                          "--mca", "oob_tcp_if_include", net, "--host", hosts, "--bind-to", "none",
                          "-np", str(np), *extra, *argv])

    # ------------------------------------------------------------------ Slurm
    def _spawn(self, name, argv):
        out = open(os.path.join(self.tmp, "logs", f"{name}.out"), "wb")
        p = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        self.daemons.append((name, p))
        return p

    def _start_slurm(self):
        missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "srun")
                   if not shutil.which(b, path=self.env["PATH"])]
        if missing:
            raise Unavailable(f"Slurm/munge not installed (missing {', '.join(missing)}; "
                              "scripts/install-deps.sh installs slurm-wlm munge)")
        t = self.tmp
        os.makedirs(os.path.join(t, "munge"), mode=0o755, exist_ok=True)
        os.makedirs(os.path.join(t, "munge-key"), mode=0o700, exist_ok=True)
        key = os.path.join(t, "munge-key", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        sock = os.path.join(t, "munge", "munge.socket")
        # One munged for all "hosts": its socket is a file, reachable from every network namespace.
        self._spawn("munged", self.head(["munged", "-F", f"--socket={sock}", f"--key-file={key}",
                                         f"--pid-file={t}/munge/munged.pid", f"--log-file={t}/munge/munged.log",
                                         f"--seed-file={t}/munge-key/munged.seed"]))
        self.wait(lambda: os.path.exists(sock), "munged's socket")
        mem = 1024
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) // 1024 // max(1, self.n)
        node_lines = "\n".join(
            f"NodeName={h} NodeAddr={self.addr[h]} Port={SLURMD_PORT0 + i} CPUs={self.cpus} RealMemory={mem} "
            "State=UNKNOWN" for i, h in enumerate(self.nodes))
        with open(self.env["SLURM_CONF"], "w") as f:
            f.write(f"""# generated by tests/multinode/cluster.py
ClusterName=petlmn
SlurmctldHost=head({self.addr['head']})
SlurmUser=root
SlurmdUser=root
SlurmctldPort={SLURMCTLD_PORT}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={t}/state
SlurmdSpoolDir={t}/spool/%n
SlurmctldPidFile={t}/run/slurmctld.pid
SlurmdPidFile={t}/run/slurmd-%n.pid
SlurmctldLogFile={t}/logs/slurmctld.log
SlurmdLogFile={t}/logs/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
MinJobAge=30
KillWait=5
OverTimeLimit=0
InactiveLimit=0
ReturnToService=2
SlurmdTimeout=30
MailProg=/bin/true
{node_lines}
PartitionName=test Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
""")
        with open(os.path.join(t, "mpi.conf"), "w") as f:
            # The nodes share /tmp; each node's <tmp>/local is its own tmpfs.
            f.write(f"PMIxCliTmpDirBase={t}/local\n")
        self._spawn("slurmctld", self.head(["slurmctld", "-D", "-i", "-f", self.env["SLURM_CONF"]]))
        for h in self.nodes:
            os.makedirs(os.path.join(t, "spool", h), exist_ok=True)
            self._spawn(f"slurmd-{h}", self.on(h, ["slurmd", "-D", "-f", self.env["SLURM_CONF"], "-N", h]))

        def all_idle():
            p = subprocess.run(self.head(["sinfo", "-h", "-N", "-o", "%N %T"]), env=self.env, capture_output=True,
                               text=True)
            states = dict(line.split() for line in p.stdout.splitlines() if len(line.split()) == 2)
            return p.returncode == 0 and all(states.get(h, "").rstrip("*") == "idle" for h in self.nodes)
        self.wait(all_idle, "every node idle", timeout=60)

    def wait(self, cond, what, timeout=30):
        t = time.time()
        while time.time() - t < timeout:
            for name, p in self.daemons:
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {p.returncode} while waiting for {what}\n"
                                       + self.tail(name))
            if cond():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}\n" + "".join(self.tail(n) for n, _ in self.daemons))

    def tail(self, name, n=25):
        out = ""
        for path in (os.path.join(self.tmp, "logs", f"{name}.out"), os.path.join(self.tmp, "logs", f"{name}.log"),
                     os.path.join(self.tmp, "munge", f"{name}.log")):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out += f"--- {path}\n" + "".join(f.readlines()[-n:])
        return out

    # ------------------------------------------------------------------ faults
    def kill_node(self, host):
        """A power loss: SIGKILL every process whose network namespace is `host`'s (the node's
        daemons, job steps, ranks and their jobs, the holder). Returns the pids killed."""
        ino = self.netns_inode(host)
        pids = pids_in_netns(ino)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def stop(self):
        if not self.up:
            return
        if self.slurm and any(p.poll() is None for n, p in self.daemons if n == "slurmctld"):
            subprocess.run(self.head(["scancel", "--full", "--quiet", "--partition=test"]), env=self.env,
                           capture_output=True, timeout=30)
        teardown_prefix(self.prefix)
        for _, p in self.daemons:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for p in self.holders.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"[cluster] kept {self.tmp}", file=sys.stderr)
        os.close(self.reaper_fd)    # the reaper finds nothing left
        self.up = False

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False


def raise_on_signals():
    """SIGTERM/SIGHUP (ctest's timeout, a closed terminal) raise, so `with Cluster()` tears down."""
    def terminated(sig, _frame):
        raise SystemExit(f"terminated by signal {sig}")
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, terminated)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--no-slurm", action="store_true", help="namespaces and the rsh agent only")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD... to run in the head (default: a shell)")
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    raise_on_signals()
    try:
        with Cluster(a.nodes, slurm=not a.no_slurm, keep=a.keep) as cl:
            print(f"[cluster] up: {', '.join(f'{h} {cl.addr[h]}' for h in cl.names)}; tmp {cl.tmp}\n"
                  f"[cluster] mpirun: $PETL_MN_MPIRUN -np {cl.n} CMD   node shell: $PETL_MN_AGENT n1 CMD",
                  file=sys.stderr)
            argv = cmd or [os.environ.get("SHELL", "/bin/bash")]
            return subprocess.run(cl.head(argv), env=cl.env).returncode
    except Unavailable as e:
        print(f"[cluster] unavailable: {e}", file=sys.stderr)
        return 77


if __name__ == "__main__":
    sys.exit(main())

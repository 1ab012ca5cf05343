"""Mid-job state (issue 12): a `petl run` stopped by a signal (or SIGKILLed after a periodic save)
resumes with --resume from <out>/state/<job_key>.safetensors, and its record equals an uninterrupted
run's bit for bit: every epoch loss, every evaluation, the accuracies and the checkpoint's bytes.
Stops land at exact points through PETL_TEST_STOP_AFTER (the N-th stop check of the training loop:
one before every iteration and every evaluation batch acts as if SIGTERM had arrived): mid-epoch,
during a heavy method's evaluation, during a query-only method's final snapshot pass, twice in a
row. Real SIGTERM and SIGKILL are sent too. A state of another job key, a corrupt state and a
run without --resume never use it; the sweep's dry run shows how far a stopped job got and a
--retry-failed re-run continues it."""
import glob
import json
import os
import signal
import subprocess
import time

from common import GOLDEN, Checks, make_task, parse_args, run

a = parse_args()
c = Checks()
S = a.scratch
backbone = os.path.join(GOLDEN, "vit_small.safetensors")
data = os.path.join(S, "data")
make_task(data, "alpha", 64, 48, 3, seed=0)  # batch 4: 12 iterations per epoch; 16 test images, one eval batch
ITERS = 12


def cmd(method, out, *extra, epochs=6):
    return ["run", "--method", method, "--task", "alpha", "--data-root", data, "--backbone", backbone, "--epochs",
            str(epochs), "--batch-size", "4", "--set", "eval_every=2", "--threads", "1", "--out", out, *extra]


def last_record(out):
    return [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))][-1]


def states(out):
    return glob.glob(os.path.join(out, "state", "*.safetensors"))


def same_run(rec, ref):
    keys = ("job_key", "evals", "epoch_train_loss", "accuracy", "accuracy_by_protocol", "trainable_params")
    same = all(rec.get(k) == ref.get(k) for k in keys)
    same = same and open(rec["checkpoint"], "rb").read() == open(ref["checkpoint"], "rb").read()
    return same


refs = {}


def reference(method, epochs=6):
    if (method, epochs) not in refs:
        out = os.path.join(S, f"ref_{method}_{epochs}")
        run(a.petl, *cmd(method, out, epochs=epochs))
        refs[(method, epochs)] = last_record(out)
    return refs[(method, epochs)]


def stop_and_resume(name, method, stops, expect_from, epochs=6):
    """Runs with PETL_TEST_STOP_AFTER=n for each n of `stops` (each ends by SIGTERM leaving a state),
    then --resume to the end; the record must equal the uninterrupted run's."""
    out = os.path.join(S, name)
    for k, n in enumerate(stops):
        p = run(a.petl, *cmd(method, out, *(["--resume"] if k else []), epochs=epochs), expect=None,
                env={"PETL_TEST_STOP_AFTER": str(n)})
        c.check(p.returncode == -signal.SIGTERM, f"{name}: stop {k + 1} (check {n}) ends the process by SIGTERM "
                f"(exit {p.returncode})")
        c.check(len(states(out)) == 1 and "training state saved" in p.stderr,
                f"{name}: stop {k + 1} leaves one state file")
    run(a.petl, *cmd(method, out, "--resume", epochs=epochs))
    rec = last_record(out)
    res = rec.get("resumed", {})
    c.check((res.get("from_epoch"), res.get("from_iteration"), res.get("evaluation_pending")) == expect_from,
            f"{name}: resumed from {res.get('from_epoch'), res.get('from_iteration'), res.get('evaluation_pending')}, "
            f"expected {expect_from}")
    c.check(res.get("resumes") == len(stops), f"{name}: resumes counts {len(stops)}")
    c.check(same_run(rec, reference(method, epochs)), f"{name}: record and checkpoint equal the uninterrupted run's")
    c.check(not states(out), f"{name}: the state is removed once the record is written")
    c.check(rec.get("memory", {}).get("peak_train_mib", 0) > 0, f"{name}: the record has a training peak")
    return out


# Mid-epoch (epoch 1 at iteration 4), a heavy method.
stop_and_resume("lora_mid_epoch", "lora", [5], (1, 4, False))
# During lora's evaluation of epoch 2 (checks 1-24 are its iterations, 25 the eval batch).
stop_and_resume("lora_in_eval", "lora", [2 * ITERS + 1], (2, 0, True))
# Right at an epoch boundary (the first check of epoch 2: its order already drawn).
stop_and_resume("lora_epoch_start", "lora", [ITERS + 1], (2, 0, False))
# Twice: epoch 1 at iteration 6, then 10 checks into the resumed run (epoch 2 at iteration 4).
stop_and_resume("lora_twice", "lora", [7, 11], (2, 4, False))
# AdaptFormer: its BatchNorm head's running statistics are part of the state.
stop_and_resume("adaptformer_mid_epoch", "adaptformer", [17], (2, 4, False))
# Query-only: snapshots kept; a stop during the final pass over the test split (after 72 iterations).
stop_and_resume("synqt_in_snapshot_pass", "synqt", [6 * ITERS + 1], (7, 0, False))
stop_and_resume("synqt_mid_epoch", "synqt", [30], (3, 5, False))

# Real signals. SIGTERM while training (periodic states every epoch tell that training is under way).
for sig, name in ((signal.SIGTERM, "lora_sigterm"), (signal.SIGKILL, "lora_sigkill")):
    out = os.path.join(S, name)
    env = dict(os.environ, PETL_NO_PROGRESS="1")
    proc = subprocess.Popen([a.petl, *cmd("lora", out, "--state-every", "0", epochs=10)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    t0 = time.time()
    while not states(out) and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.02)
    time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate()
    c.check(proc.returncode == -sig, f"{name}: ends by signal {int(sig)} (exit {proc.returncode})")
    c.check(len(states(out)) == 1, f"{name}: a state file is there")
    run(a.petl, *cmd("lora", out, "--resume", epochs=10))
    rec = last_record(out)
    c.check("resumed" in rec, f"{name}: the re-run resumed ({rec.get('resumed')})")
    c.check(same_run(rec, reference("lora", 10)), f"{name}: record equals the uninterrupted run's")

# A state is used only by its own job, only with --resume, and only when it reads back.
out = os.path.join(S, "guards")
run(a.petl, *cmd("lora", out), expect=None, env={"PETL_TEST_STOP_AFTER": "5"})
st = states(out)
c.check(len(st) == 1, "guards: a state file is there")
p = run(a.petl, *cmd("lora", out, "--resume", "--set", "lr=0.002"))
c.check("resumed" not in last_record(out), "guards: another job key (lr changed) trains from the start")
c.check(os.path.exists(st[0]), "guards: ... and leaves the other key's state alone")
p = run(a.petl, *cmd("lora", out))
c.check("resumed" not in last_record(out) and same_run(last_record(out), reference("lora")),
        "guards: without --resume the state is not used; the run equals the uninterrupted one")
c.check(not os.path.exists(st[0]), "guards: ... and the state is removed with the record")
out = os.path.join(S, "guards_corrupt")  # (in `guards` the job is finished: --resume would reuse its record)
run(a.petl, *cmd("lora", out), expect=None, env={"PETL_TEST_STOP_AFTER": "5"})
st = states(out)
raw = bytearray(open(st[0], "rb").read())
raw[20] ^= 0xFF  # inside the JSON header
open(st[0], "wb").write(bytes(raw))
p = run(a.petl, *cmd("lora", out, "--resume"))
c.check("warning: the training state" in p.stderr and "not used" in p.stderr and st[0] in p.stderr,
        "guards: a corrupt state is named in a warning\n" + p.stderr[-800:])
c.check("resumed" not in last_record(out) and same_run(last_record(out), reference("lora")),
        "guards: ... and the job trains from the start, as the uninterrupted run")
p = run(a.petl, *cmd("lora", out, "--state-every", "-1"), expect=2)
c.check("--state-every '-1'" in p.stderr, "guards: --state-every -1 is refused naming the flag")

# The sweep: a child stopped mid-way is shown with its state by --dry-run and continued by a re-run.
cfg = os.path.join(S, "sweep.yaml")
open(cfg, "w").write(f"""name: resume
out: {os.path.join(S, 'sweep')}
data_root: {data}
backbone: {backbone}
methods: [lora]
tasks: [alpha]
seeds: [0]
epochs: 6
batch_size: 4
threads_per_rank: 1
feature_cache: false
method_overrides:
  lora: {{set: {{eval_every: "2"}}}}
""")
p = run(a.petl, "sweep", cfg, expect=None, env={"PETL_TEST_STOP_AFTER": "9"})
p = run(a.petl, "sweep", cfg, "--dry-run")
c.check("state: 0/6 epochs trained, epoch 1 at iteration 8" in p.stdout and "1 with a mid-job state" in p.stdout,
        "sweep: --dry-run shows the stopped job's state\n" + p.stdout[-600:])
run(a.petl, "sweep", cfg, "--retry-failed", expect=0)
recs = [json.loads(l) for l in open(os.path.join(S, "sweep", "results.jsonl"))]
ok = [r for r in recs if r.get("status") == "ok"]
c.check(len(ok) == 1 and "resumed" in ok[0], "sweep: the re-run continued the job from its state")
run(a.petl, *cmd("lora", os.path.join(S, "ref_seed0"), "--seed", "0"))
ref0 = last_record(os.path.join(S, "ref_seed0"))
c.check(ok and ok[0]["evals"] == ref0["evals"] and ok[0]["job_key"] == ref0["job_key"],
        "sweep: with the uninterrupted run's job key and evaluations")
c.done()

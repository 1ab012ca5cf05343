"""The bad-input matrix of `petl run` / `petl sweep`: one case per class of bad input. Each asserts
the exit code, that the message names the flag, key, file or file:line and what was expected, that
it came before any training (no epoch was logged), and that the journal is intact afterwards (every
line a JSON object, no fragment, no ok record from a bad job)."""
import json
import os
import struct

import numpy as np
from PIL import Image

from common import GOLDEN, Checks, parse_args, run

a = parse_args()
c = Checks()
S = a.scratch
backbone = os.path.join(GOLDEN, "vit_small.safetensors")
root = os.path.join(S, "data")
OUT = os.path.join(S, "runs")
JOURNAL = os.path.join(OUT, "results.jsonl")
rng = np.random.default_rng(0)


def make_task(name, train, test, num_classes=None):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "images"), exist_ok=True)
    for i in range(8):
        p = os.path.join(d, "images", f"{i}.png")
        if not os.path.exists(p):
            Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(p)
    open(os.path.join(d, "train800val200.txt"), "w").write(train)
    open(os.path.join(d, "test.txt"), "w").write(test)
    if num_classes:
        json.dump({"num_classes": num_classes}, open(os.path.join(d, "petl_task.json"), "w"))
    return d


GOOD_TRAIN = "".join(f"images/{i}.png {i % 3}\n" for i in range(6))
GOOD_TEST = "images/6.png 0\nimages/7.png 2\n"
make_task("good", GOOD_TRAIN, GOOD_TEST)


def journal_records():
    """The journal's records; fails the check if any line is not a complete JSON object."""
    if not os.path.exists(JOURNAL):
        return []
    data = open(JOURNAL, "rb").read()
    lines = data.split(b"\n")
    intact = data.endswith(b"\n") or not data
    objs = []
    for l in lines[:-1]:
        try:
            objs.append(json.loads(l))
        except ValueError:
            intact = False
    c.check(intact, "journal intact: every line a complete JSON object")
    return objs


def journal_state():
    """(ok records, failed records)."""
    objs = journal_records()
    return sum(o.get("status") == "ok" for o in objs), sum(o.get("status") == "failed" for o in objs)


def petl_run(*extra, task="good", expect=2, out=OUT, method="linear", weights=None):
    return run(a.petl, "run", "--method", method, "--task", task, "--data-root", root, "--backbone", weights or backbone,
               "--out", out, "--threads", "1", "--set", "eval_every=1", *extra, expect=expect)


def bad(what, extra, needles, task="good", out=OUT, argument=False, method="linear", weights=None):
    """A job that must fail before training. argument=True: its arguments are wrong (a flag's value,
    an unknown name or key): no job, so no record at all; else its own failed record names the task
    and the error."""
    before = journal_records()
    p = petl_run(*extra, task=task, out=out, method=method, weights=weights)
    msg = p.stderr
    c.check(all(n in msg for n in needles), f"{what}: exit 2, message names {needles}" +
            ("" if all(n in msg for n in needles) else f"\n{msg}"))
    c.check("epoch 1:" not in msg, f"{what}: found before any training")
    after = journal_records()
    added = after[len(before):]
    c.check(after[:len(before)] == before and all(r.get("status") != "ok" for r in added),
            f"{what}: no ok record added, nothing before it changed")
    if argument:
        c.check(not added, f"{what}: a wrong argument writes no record ({len(added)} added)")
    elif out == OUT:  # the job's own failed record, with the error it printed (an --out it cannot write gets none)
        c.check(len(added) == 1 and added[0].get("status") == "failed" and added[0].get("task") == task
                and all(n in added[0].get("error", "") for n in needles[1:] or needles),
                f"{what}: its failed record names the task and the error" + ("" if len(added) == 1 else f" ({len(added)} added)"))


# ------------------------------------------------------------------ a good job (the journal's first record)
petl_run("--epochs", "1", "--batch-size", "3", expect=0)
c.check(journal_state() == (1, 0), "a good job writes one ok record")

# ------------------------------------------------------------------ 1. torn last line: cut before the next append
with open(JOURNAL, "ab") as f:
    f.write(b'{"schema":"petl.result","status":"ok","job_key":"abc","accur')
size_torn = os.path.getsize(JOURNAL)
p = petl_run("--epochs", "1", "--batch-size", "3", "--seed", "5", expect=0)
c.check("cut a torn last line" in p.stderr and JOURNAL in p.stderr, "a torn last line is cut with a warning naming the file")
c.check(journal_state() == (2, 0), "after the cut: both records, nothing glued onto the fragment")
p = run(a.petl, "report", JOURNAL, "--out", os.path.join(S, "report"))
c.check(p.returncode == 0, "petl report loads the journal")
p = petl_run("--epochs", "1", "--batch-size", "3", "--seed", "5", "--resume", expect=0)
c.check("reused the finished record" in p.stdout, "--resume sees the record written after the torn line")

# ------------------------------------------------------------------ 2. numbers out of range
for flag, val in [("--epochs", "0"), ("--epochs", "-1"), ("--batch-size", "0"), ("--batch-size", "-5"),
                  ("--seed", "-3")]:
    bad(f"{flag} {val}", [flag, val], [f"{flag} {val}", "expected an integer >= "], argument=True)
for key, val, expected in [("lr", "nan", "finite"), ("lr", "-1", "> 0"), ("lr", "0", "> 0"),
                           ("weight_decay", "-0.1", ">= 0"), ("drop_path_rate", "1", "[0, 1)"),
                           ("eval_every", "0", "positive")]:
    bad(f"--set {key}={val}", ["--set", f"{key}={val}"], [key, expected], argument=True)

# ------------------------------------------------------------------ 3. --out checked before training
regular = os.path.join(S, "a_file")
open(regular, "w").write("x")
bad("--out is a regular file", [], ["--out", regular, "expected a directory"], out=regular)
bad("--out cannot be created", [], ["--out", "/proc/petl_out", "cannot create"], out="/proc/petl_out")

# ------------------------------------------------------------------ 4-6. lists
make_task("empty_test", GOOD_TRAIN, "")
bad("empty test list", [], [os.path.join(root, "empty_test", "test.txt"), "lists no sample"], task="empty_test")
make_task("empty_train", "\n", GOOD_TEST)
bad("empty train list", [], [os.path.join(root, "empty_train", "train800val200.txt"), "lists no sample"],
    task="empty_train")
make_task("extra_field", "images/0.png 0\nimages/1.png 1 2\n", GOOD_TEST)
bad("a line with three fields", [], ["train800val200.txt:2", "expected `<path> <label>`"], task="extra_field")
make_task("test_label", GOOD_TRAIN, "images/6.png 0\nimages/7.png 9\n")
bad("test label outside the train list's classes", [],
    [os.path.join(root, "test_label", "test.txt") + ":2", "label 9 is outside the 3 classes"], task="test_label")
make_task("declared", GOOD_TRAIN.replace("images/5.png 2", "images/5.png 4"), GOOD_TEST, num_classes=3)
bad("train label outside the declared classes", [], ["train800val200.txt:6", "out of range [0, 3)"], task="declared")

# ------------------------------------------------------------------ images, backbone, recipe, sweep config
d = make_task("truncated", GOOD_TRAIN, GOOD_TEST)
png = open(os.path.join(d, "images", "2.png"), "rb").read()
open(os.path.join(d, "images", "2.png"), "wb").write(png[: len(png) // 2])
bad("a truncated image", [], ["2.png", "train800val200.txt:3"], task="truncated")

raw = bytearray(open(backbone, "rb").read())
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32" and "qkv.weight" in k)
start = 8 + n + header[name]["data_offsets"][0]
raw[start:start + 4] = struct.pack("<f", float("nan"))
nan_bb = os.path.join(S, "nan_backbone.safetensors")
open(nan_bb, "wb").write(bytes(raw))
ok0, _ = journal_state()
p = run(a.petl, "run", "--method", "linear", "--task", "good", "--data-root", root, "--backbone", nan_bb,
        "--out", OUT, "--threads", "1", expect=2)
c.check(name in p.stderr and "NaN" in p.stderr and nan_bb in p.stderr, f"NaN backbone weights: the tensor {name} is named")
c.check("epoch 1:" not in p.stderr and journal_state()[0] == ok0, "NaN backbone: found before training, no ok record")

bad("unknown recipe", ["--recipe", "nope"], ["nope"], argument=True)

# ------------------------------------------------------------------ names and keys: did you mean, the valid ones
bad("unknown --set key", ["--set", "lora_rank=4"],
    ["'lora_rank' (did you mean 'lora_dim'?)", "the method's keys: lora_dim, lora_dropout, lora_scale, init",
     "the recipe's keys: ", "weight_decay"], argument=True, method="lora")
bad("misspelt recipe key", ["--set", "weight_decy=0.1"], ["'weight_decy' (did you mean 'weight_decay'?)"], argument=True)
bad("unknown method", [], ["unknown method 'lorra' (did you mean 'lora'?)", "registered: adapter, "], argument=True,
    method="lorra")
bad("unknown task", [], ["VTAB task 'god' not found", "(did you mean 'good'?)", "folders present: "], argument=True,
    task="god")
bad("unknown architecture", ["--arch", "vit_base_patch16"],
    ["unknown architecture 'vit_base_patch16' (did you mean 'vit_base_patch16_224'?)", "known: "], argument=True)
bad("misspelt flag", ["--epohcs", "3"], ["unrecognised option '--epohcs' (did you mean '--epochs'?)"], argument=True)
bad("misspelt protocol", ["--protocol", "best_of10"], ["expected best_of_10, final or val_select", "(did you mean 'best_of_10'?)"],
    argument=True)
bad("missing backbone file", [], ["--backbone", "nope.npz: no such file"], argument=True,
    weights=os.path.join(S, "nope.npz"))

cfg = os.path.join(S, "sweep.yaml")
open(cfg, "w").write(f"name: s\nout: {os.path.join(S, 'sweep')}\ndata_root: {root}\nmethods: [linear]\n"
                     "tasks: [good]\nepochs: 0\n")
p = run(a.petl, "sweep", cfg, "--dry-run", expect=2)
c.check("sweep.yaml:6" in p.stderr and "epochs" in p.stderr and "positive" in p.stderr,
        "sweep config: a bad value names file:line, key and what was expected")

c.done()

"""Class checks of `petl run` before any training: a train label outside the task's class count is an
error naming list:line (declared count: the label's own line; undeclared, where the highest train
label sets the count, the classes it leaves without an image and the line of that label); a class
with no training image is an error naming the classes unless --allow-missing-classes (a warning
naming them, the record's data.missing_train_classes) or the task is VTAB-1k's sun397, whose own
split lacks classes. The flag changes no job key."""
import json
import os

import numpy as np
from PIL import Image

from common import GOLDEN, Checks, parse_args, run

a = parse_args()
c = Checks()
S = a.scratch
root = os.path.join(S, "data")
backbone = os.path.join(GOLDEN, "vit_small.safetensors")
rng = np.random.default_rng(0)


def make_task(name, train_labels, test_labels, num_classes=None):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "images"), exist_ok=True)
    for split, labels in (("train800val200", train_labels), ("test", test_labels)):
        with open(os.path.join(d, split + ".txt"), "w") as f:
            for i, lab in enumerate(labels):
                rel = f"images/{split}_{i}.png"
                Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(os.path.join(d, rel))
                f.write(f"{rel} {lab}\n")
    if num_classes:
        json.dump({"num_classes": num_classes}, open(os.path.join(d, "petl_task.json"), "w"))
    return d


def petl_run(task, *extra, expect=2, out="runs"):
    return run(a.petl, "run", "--method", "linear", "--task", task, "--data-root", root, "--backbone", backbone,
               "--out", os.path.join(S, out), "--threads", "1", "--epochs", "1", "--batch-size", "8",
               "--no-checkpoint", *extra, expect=expect)


def records(out="runs"):
    path = os.path.join(S, out, "results.jsonl")
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


ten = [i % 10 for i in range(20)]  # every one of 10 classes twice

# 1. A 10-class list holding label 12, class count declared: the label's own line.
with_12 = ten[:13] + [12] + ten[14:]  # train800val200.txt:14
d = make_task("declared_12", with_12, ten, num_classes=10)
p = petl_run("declared_12")
c.check(f"{os.path.join(d, 'train800val200.txt')}:14" in p.stderr and "label 12 out of range [0, 10)" in p.stderr,
        "declared 10 classes, label 12: exit 2, the error names train800val200.txt:14 and the range")

# 2. The same list, no class count declared: 12 sets 13 classes, 10 and 11 have no image.
d = make_task("undeclared_12", with_12, ten)
p = petl_run("undeclared_12")
c.check("2 of the 13 classes have no training image" in p.stderr and "classes 10, 11" in p.stderr
        and f"the highest label, 12 at {os.path.join(d, 'train800val200.txt')}:14" in p.stderr
        and "--allow-missing-classes" in p.stderr and "epoch 1:" not in p.stderr,
        "undeclared, label 12 in a 10-class list: exit 2 before training, names classes 10, 11 and the line of 12"
        + ("" if "classes 10, 11" in p.stderr else f"\n{p.stderr}"))
rec = records()[-1]
c.check(rec["status"] == "failed" and "classes 10, 11" in rec["error"], "its failed record holds the error")

# 3. A declared class with no training image: an error naming it; allowed with the flag.
no_7 = [lab if lab != 7 else 6 for lab in ten]
d = make_task("gap", no_7, ten, num_classes=10)
p = petl_run("gap")
c.check("1 of the 10 classes have no training image in " + os.path.join(d, "train800val200.txt") in p.stderr
        and "classes 7 " in p.stderr and "declared in" in p.stderr and "epoch 1:" not in p.stderr,
        "a class without a training image: exit 2 before training, the error names class 7, the list and the count's source"
        + ("" if "classes 7 " in p.stderr else f"\n{p.stderr}"))
p = petl_run("gap", "--allow-missing-classes", expect=0)
c.check("warning:" in p.stderr and "classes 7 " in p.stderr and "--allow-missing-classes" in p.stderr,
        "--allow-missing-classes: trains, with a warning naming class 7")
rec = records()[-1]
c.check(rec["status"] == "ok" and rec["data"]["missing_train_classes"] == [7] and rec["data"]["num_classes"] == 10,
        f"the record's data.missing_train_classes is [7] ({rec['data'].get('missing_train_classes')})")

# 4. Nothing missing: the record says so (an empty list), and the flag changes neither that nor the key.
make_task("full", ten, ten, num_classes=10)
petl_run("full", expect=0)
rec_plain = records()[-1]
petl_run("full", "--allow-missing-classes", expect=0, out="runs_flag")
rec_flag = records("runs_flag")[-1]
c.check(rec_plain["data"]["missing_train_classes"] == [] and rec_flag["data"]["missing_train_classes"] == [],
        "no class missing: data.missing_train_classes is []")
c.check(rec_plain["job_key"] == rec_flag["job_key"] and rec_plain["accuracy"] == rec_flag["accuracy"],
        f"--allow-missing-classes changes neither the job key nor the result ({rec_plain['job_key']})")

# 5. VTAB-1k's sun397 split lacks classes of its own (task_adaptation issue #21): a warning, no error.
make_task("sun397", [i % 30 for i in range(40)], [i % 30 for i in range(10)])
p = petl_run("sun397", expect=0)
rec = records()[-1]
c.check("task_adaptation issue #21" in p.stderr and rec["data"]["num_classes"] == 397
        and rec["data"]["missing_train_classes"] == list(range(30, 397)),
        "sun397: trains with a warning; the record names its 367 classes without a training image")
c.done()

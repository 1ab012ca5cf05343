"""`petl data check ROOT` on a small fake VTAB-1k root: two good tasks (SynQT's json layout, and the
txt layout under an alias folder), broken ones (a missing image, a truncated PNG, a label out of
range, a class with no training image, a list one line short, an image listed for training and
testing) and 13 VTAB-1k tasks missing. Asserts the exit status, that every problem is named with
its list file:line and image path, the summary table, the JSON report, --tasks, --quick and the
progress lines; then the embedded suite (`petl suite`, non-VTAB tasks) checks clean."""
import io
import json
import os
import re

import numpy as np
from PIL import Image

from common import Checks, parse_args, run

a = parse_args()
c = Checks()
S = a.scratch
root = os.path.join(S, "vtab-1k")
rng = np.random.default_rng(0)


def png_bytes(seed):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


PNGS = [png_bytes(k) for k in range(16)]  # written as bytes: tens of thousands of files in a second


def labels_for(n, classes):
    return [int(x) for x in rng.permutation(np.arange(n) % classes)]


def make_vtab_task(folder, classes, test_size, fmt="txt", train_labels=None):
    """A task as the prepared VTAB-1k folders hold it: images/<split>/NNNNNN.png; txt: the four
    lists (train800val200 = the lines of train800 then val200, the same files); json: SynQT's two
    lists with paths relative to images/. Returns {split: [(rel, label)]}."""
    d = os.path.join(root, folder)
    lists = {}
    t8v2 = train_labels or labels_for(1000, classes)
    for split, labels in (("train800", t8v2[:800]), ("val200", t8v2[800:]), ("test", labels_for(test_size, classes))):
        os.makedirs(os.path.join(d, "images", split), exist_ok=True)
        lists[split] = []
        for i, lab in enumerate(labels):
            rel = f"{split}/{i:06d}.png"
            with open(os.path.join(d, "images", rel), "wb") as f:
                f.write(PNGS[(i + lab) % len(PNGS)])
            lists[split].append((rel, lab))
    lists["train800val200"] = lists["train800"] + lists["val200"]
    write_lists(folder, lists, fmt)
    return lists


def write_lists(folder, lists, fmt="txt"):
    d = os.path.join(root, folder)
    for split, items in lists.items():
        if fmt == "txt":
            with open(os.path.join(d, split + ".txt"), "w") as f:
                f.writelines(f"images/{rel} {lab}\n" for rel, lab in items)
        elif split in ("train800val200", "test"):
            with open(os.path.join(d, split + ".json"), "w") as f:
                json.dump([{rel: lab} for rel, lab in items], f)


def list_path(folder, split, fmt="txt"):
    return os.path.join(root, folder, f"{split}.{fmt}")


# ------------------------------------------------------------------ the fake root
make_vtab_task("kitti", 4, 711, fmt="json")        # good, SynQT's json layout
make_vtab_task("oxford_pet", 37, 3669)             # good, an alias folder of oxford_iiit_pet

dtd = make_vtab_task("dtd", 47, 1880)              # a missing image and a truncated PNG
missing_rel = dtd["test"][16][0]                   # test.txt:17
os.remove(os.path.join(root, "dtd", "images", missing_rel))
trunc_rel = dtd["train800"][4][0]                  # train800.txt:5 and train800val200.txt:5
p = os.path.join(root, "dtd", "images", trunc_rel)
data = open(p, "rb").read()
open(p, "wb").write(data[: len(data) // 2])

eurosat = make_vtab_task("eurosat", 10, 5400)      # test.txt:31 holds label 12 of 10 classes
eurosat["test"][30] = (eurosat["test"][30][0], 12)
write_lists("eurosat", eurosat)

# resisc45: class 44 has no training image (relabelled 43 in train800 / train800val200)
t8v2 = [43 if lab == 44 else lab for lab in labels_for(1000, 45)]
make_vtab_task("resisc45", 45, 6300, train_labels=t8v2)

caltech = make_vtab_task("caltech101", 102, 6084)  # val200.txt one line short; a test image also trained on
caltech["val200"] = caltech["val200"][:-1]
caltech["train800val200"] = caltech["train800"] + caltech["val200"]
leak_rel = caltech["train800"][9][0]               # train800.txt:10
caltech["test"][99] = (leak_rel, caltech["test"][99][1])  # test.txt:100
write_lists("caltech101", caltech)

os.makedirs(os.path.join(root, "notes_and_scripts"))  # a folder that is no task


def check_root(*extra, expect=None, env=None):
    return run(a.petl, "data", "check", root, *extra, expect=expect, env=env)


report = os.path.join(S, "report.json")
p = check_root("--json", report, "--max-issues", "0")
out = p.stdout
c.check(p.returncode == 1, f"broken root: exit status 1 (got {p.returncode})")


def named(what, *needles):
    ok = all(n in out for n in needles)
    c.check(ok, f"{what}: the report names {needles}" + ("" if ok else f"\n{out}"))


named("missing image", f"{list_path('dtd', 'test')}:17 images/{missing_rel}", "cannot open image")
named("truncated PNG", f"{list_path('dtd', 'train800')}:5 images/{trunc_rel}", "cannot decode image",
      f"also listed at {list_path('dtd', 'train800val200')}:5")
named("label out of range", f"{list_path('eurosat', 'test')}:31 images/{eurosat['test'][30][0]}",
      "label 12 is outside the 10 classes [0, 10)")
named("class gap", f"{list_path('resisc45', 'train800val200')}: 1 of the 45 classes have no training image: 44")
named("wrong count", f"{list_path('caltech101', 'val200')}: 199 samples, but VTAB-1k's val200 of caltech101 has 200")
named("test image also trained on", f"{list_path('caltech101', 'test')}:100 images/{leak_rel}",
      f"listed in train800val200 at {list_path('caltech101', 'train800val200')}:10")
named("missing tasks", "VTAB-1k tasks: 6 of 19 found; missing: cifar, oxford_flowers102, svhn, sun397",
      "smallnorb_ele",
      f"13 VTAB-1k tasks not found under {root}")
named("folder that is no task", "not checked as tasks: notes_and_scripts")

rows = {}
for line in out.splitlines():
    f = line.split()
    if len(f) >= 10 and f[0] in ("kitti", "oxford_iiit_pet", "dtd", "eurosat", "resisc45", "caltech101", "cifar"):
        rows[f[0]] = f
c.check(rows.get("kitti", [])[1:3] == ["kitti", "json"] and rows["kitti"][-1] == "ok" and rows["kitti"][5:8] ==
        ["1000", "711", "4/4"], f"summary: kitti (json layout) ok, 1000 / 711 lines, 4/4 classes: {rows.get('kitti')}")
c.check(rows.get("oxford_iiit_pet", [])[1] == "oxford_pet" and rows["oxford_iiit_pet"][-1] == "ok",
        f"summary: the alias folder oxford_pet is task oxford_iiit_pet, ok: {rows.get('oxford_iiit_pet')}")
c.check(" ".join(rows.get("dtd", [])[-2:]) == "2 problems", f"summary: dtd has 2 problems: {rows.get('dtd')}")
c.check(rows.get("resisc45", [])[7] == "44/45", f"summary: resisc45 shows 44/45 classes: {rows.get('resisc45')}")
c.check(rows.get("caltech101", [])[4:6] == ["199/200", "999/1000"],
        f"summary: caltech101's val200 is 199/200, train800val200 999/1000: {rows.get('caltech101')}")
c.check(rows.get("cifar", [])[-1] == "missing", f"summary: cifar is missing: {rows.get('cifar')}")
c.check("FAILED: " in out and "(exit status 1)" in out, "the last line says it failed")

j = json.load(open(report))
tasks = {t["task"]: t for t in j["tasks"]}
c.check(j["schema"] == "petl.data_check" and j["ok"] is False and j["problems"] == 13 + 2 + 1 + 2 + 3,
        f"--json: schema, not ok, 21 problems (13 missing tasks, dtd 2, eurosat 1, resisc45 2 (train800 and "
        f"train800val200), caltech101 3 (val200 and train800val200 short, the shared image); got {j['problems']})")
c.check(sorted(j["missing_tasks"]) == sorted(set(["caltech101", "cifar", "clevr_count", "clevr_dist",
                                                  "diabetic_retinopathy", "dmlab", "dsprites_loc", "dsprites_ori",
                                                  "eurosat", "kitti", "oxford_flowers102", "oxford_iiit_pet",
                                                  "patch_camelyon", "resisc45", "smallnorb_azi", "smallnorb_ele",
                                                  "sun397", "svhn", "dtd"]) - set(tasks)),
        f"--json: the 13 missing tasks ({j['missing_tasks']})")
miss = [i for i in tasks["dtd"]["issues"] if i["kind"] == "missing_image"]
c.check(len(miss) == 1 and miss[0]["list"] == list_path("dtd", "test") and miss[0]["line"] == 17
        and miss[0]["path"] == f"images/{missing_rel}", f"--json: the missing image's list, line and path: {miss}")
c.check(tasks["resisc45"]["splits"]["train800val200"]["missing_classes"] == [44]
        and tasks["resisc45"]["splits"]["train800"]["missing_classes"] == [44],
        "--json: resisc45's missing training class 44 in train800 and train800val200")
c.check(tasks["kitti"]["status"] == "ok" and tasks["kitti"]["format"] == "json"
        and tasks["kitti"]["images"]["decoded"] == 1711 and tasks["kitti"]["num_classes"] == 4,
        "--json: kitti ok, 1711 images decoded, 4 classes")
c.check(tasks["oxford_iiit_pet"]["splits"]["test"]["expected"] == 3669
        and len(tasks["oxford_iiit_pet"]["splits"]["test"]["sha256"]) == 64,
        "--json: VTAB-1k's expected test size and the list's SHA-256")

# Only the good tasks (aliases accepted): exit 0.
p = check_root("--tasks", "kitti,pets", expect=0)
c.check("ok: 2 task(s), every check passed" in p.stdout and "VTAB-1k tasks checked (--tasks): kitti, "
        "oxford_iiit_pet" in p.stdout and "not found" not in p.stdout, "--tasks kitti,pets: exit 0, two tasks, nothing missing")
p = check_root("--tasks", "kitti,nonexistent", expect=1)
c.check("VTAB task 'nonexistent' not found" in p.stdout and
        any(l.split()[:1] == ["nonexistent"] and l.split()[-1] == "missing" for l in p.stdout.splitlines()),
        "--tasks with an absent task: exit 1, named, a 'missing' row")

# --quick: every image's existence (the missing one), a sample decoded.
p = check_root("--quick", "--tasks", "dtd", expect=1)
c.check(f"{list_path('dtd', 'test')}:17 images/{missing_rel}" in p.stdout and "does not exist" in p.stdout
        and "--quick" in p.stdout, "--quick finds the missing image without decoding everything")
p = check_root("--quick", "--sample", "3", "--tasks", "kitti", expect=0)
c.check("1711 listed, 6 decoded, 1705 more found" in p.stdout, "--quick --sample 3: 3 images decoded per split")

# Progress off a terminal: no bar, a line every PETL_PROGRESS_EVERY_S seconds (default 30: none in a
# check this short) and a closing "done" line for a bar that printed one.
p = check_root("--tasks", "kitti", env={"PETL_NO_PROGRESS": "0"}, expect=0)
lines = [l for l in p.stderr.splitlines() if "data check" in l]
c.check(len(lines) == 0, f"progress off a terminal, default interval, a short check: no lines ({len(lines)})")
p = check_root("--tasks", "kitti", env={"PETL_NO_PROGRESS": "0", "PETL_PROGRESS_EVERY_S": "0"}, expect=0)
lines = [l for l in p.stderr.splitlines() if "data check" in l]  # interval 0: a line at every step
c.check(len(lines) == 1711 + 1 and re.match(r"^data check: decoding: 0% \(1/1711\), [0-9.]+/s, eta ", lines[0])
        and lines[-1].startswith("data check: decoding: done, 1711 in ")
        and not any("[#" in l or "\r" in l for l in lines),
        f"PETL_PROGRESS_EVERY_S=0: one percent line per image and a done line, no bar ({len(lines)} lines)")
p = check_root("--tasks", "kitti", "--no-progress", env={"PETL_NO_PROGRESS": "0"}, expect=0)
c.check("data check" not in p.stderr, "--no-progress: no progress lines")

# Bad usage: exit 2 with the reason.
p = run(a.petl, "data", "check", os.path.join(S, "no_such_root"), expect=2)
c.check("is not a directory" in p.stderr, "a root that is not a directory: exit 2, named")
p = run(a.petl, "data", "frob", expect=2)
c.check("unknown data subcommand 'frob'" in p.stderr, "an unknown data subcommand: exit 2, named")

# ------------------------------------------------------------------ the embedded suite: non-VTAB tasks, clean
suite = os.path.join(S, "mini")
run(a.petl, "suite", "--out", suite, "--no-progress")
p = run(a.petl, "data", "check", suite, "--json", os.path.join(S, "mini.json"), expect=0)
names = ["fashion_mnist", "objects_count", "objects_dist", "sprites_loc", "sprites_ori"]
j = json.load(open(os.path.join(S, "mini.json")))
c.check(j["ok"] and j["problems"] == 0 and j["notes"] == 0 and not j["vtab_root"] and not j["missing_tasks"]
        and sorted(t["task"] for t in j["tasks"]) == names, "embedded suite: no problem, no note, no VTAB task missing")
c.check(all(t["classes_from"] == "petl_task.json" and t["images"]["bad"] == 0
            and t["images"]["decoded"] == t["images"]["listed"] == 2000 for t in j["tasks"]),
        "embedded suite: class counts from petl_task.json, all 2000 images of each task decoded")
c.check("no VTAB-1k task here: 5 other task(s)" in p.stdout and "ok: 5 task(s), every check passed" in p.stdout,
        "embedded suite: says it holds no VTAB-1k task, and passes")
c.done()

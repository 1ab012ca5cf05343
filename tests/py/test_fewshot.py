"""The few-shot FGVC benchmark end to end on the embedded few-shot set (`petl suite --fewshot`):
the set's lists (K images of every class, not nested, deterministic), `petl list --benchmark
fewshot`, the job interface (--benchmark fewshot --shots --split-seed in the record and the job
key; the few-shot recipe), the pitfalls (a class short of shots, a test image missing on disk:
both before any training), one train-pool cache per dataset serving every shot and seed with the
live run's exact accuracy, and a few-shot sweep under mpirun (its dry run shows the sharing; the
report gives one table per dataset)."""
import collections
import glob
import json
import os
import shutil
import statistics
import subprocess

from common import Checks, parse_args, run

a = parse_args()
c = Checks()
MPIRUN = [shutil.which("mpirun") or "mpirun", "--allow-run-as-root", "--oversubscribe"]
ENV = dict(os.environ, PETL_NO_PROGRESS="1")
root = os.path.join(a.scratch, "fewshot")
run(a.petl, "suite", "--fewshot", "--out", root, "--no-progress")


def read_list(path):
    return [(l.split()[0], int(l.split()[1])) for l in open(path) if l.strip()]


def ann(ds, name):
    return os.path.join(root, ds, "annotations", name)


# ---------------------------------------------------------------- 1. the embedded set's lists
ok_lists = True
for ds, classes in [("fashion_mnist", 10), ("sprites_ori", 8), ("objects_dist", 6)]:
    for k in (1, 2, 4, 8, 16):
        for s in (0, 1, 2):
            lines = read_list(ann(ds, f"train_meta.list.num_shot_{k}.seed_{s}"))
            per = collections.Counter(lab for _, lab in lines)
            ok_lists &= sorted(per) == list(range(classes)) and set(per.values()) == {k}
            ok_lists &= all(os.path.isfile(os.path.join(root, ds, "images", p)) for p, _ in lines)
c.check(ok_lists, "every K-shot list of the embedded set holds exactly K existing images of every class")
one = {p for p, _ in read_list(ann("fashion_mnist", "train_meta.list.num_shot_1.seed_0"))}
two = {p for p, _ in read_list(ann("fashion_mnist", "train_meta.list.num_shot_2.seed_0"))}
seed1 = {p for p, _ in read_list(ann("fashion_mnist", "train_meta.list.num_shot_1.seed_1"))}
c.check(not one <= two and one != seed1, "lists are drawn per (K, S), not nested (as NOAH's are)")
test = {p for p, _ in read_list(ann("fashion_mnist", "test_meta.list"))}
train16 = set()
for s in (0, 1, 2):
    train16 |= {p for p, _ in read_list(ann("fashion_mnist", f"train_meta.list.num_shot_16.seed_{s}"))}
c.check(not (test & train16) and len(test) == 1000, "the test list (1000 images) shares no image with a train list")
again = os.path.join(a.scratch, "fewshot_again")
run(a.petl, "suite", "--fewshot", "--out", again, "--from", os.path.join(root, ".mini"), "--no-progress")
same = all(open(f, "rb").read() == open(f.replace(root, again), "rb").read()
           for f in glob.glob(os.path.join(root, "*", "annotations", "*")))
c.check(same, "a second build writes byte-identical lists")
shutil.rmtree(again)

p = run(a.petl, "list", "--data-root", root, "--benchmark", "fewshot")
c.check("5 found" in p.stdout and "16-shot seeds 0,1,2" in p.stdout and "classes 10" in p.stdout,
        "petl list --benchmark fewshot shows the datasets, their shots, seeds and class counts")


# ---------------------------------------------------------------- 2. one job: interface and record
def fs_run(*extra, expect=0, out="runs", task="fashion_mnist", shots="4", seed="1"):
    args = ["run", "--benchmark", "fewshot", "--task", task, "--data-root", root, "--out",
            os.path.join(a.scratch, out), "--no-progress", "--method", "linear"]
    if shots is not None:
        args += ["--shots", shots]
    if seed is not None:
        args += ["--split-seed", seed]
    return run(a.petl, *args, *extra, expect=expect)


def records(out):
    return [json.loads(l) for l in open(os.path.join(a.scratch, out, "results.jsonl")) if l.strip()]


fs_run()
fs_run(shots="8")
r4, r8 = records("runs")
c.check((r4["benchmark"], r4["shots"], r4["split_seed"]) == ("fewshot", 4, 1) and r8["shots"] == 8,
        "the record names the benchmark, the shots and the split seed")
c.check(r4["data"]["train_split"] == "train_4shot_seed1" and r4["data"]["n_train"] == 40
        and r4["data"]["n_test"] == 1000, "a 4-shot job trains on its 40 listed images and tests on the test list")
c.check(r4["settings"]["recipe"]["epochs"] == "20" and "few-shot" in r4["settings"]["recipe_source"],
        "the embedded backbone's few-shot job takes mini_fewshot")
c.check(r4["job_key"] != r8["job_key"], "shots are part of the job key")
fs_run(seed="2")
c.check(records("runs")[-1]["job_key"] != r4["job_key"], "the split seed is part of the job key")
p = fs_run("--resume")
c.check("reused the finished record " + r4["job_key"] in p.stdout and len(records("runs")) == 3,
        "--resume finds the same few-shot job by its key (nothing trained, nothing appended)")

p = fs_run(shots=None, expect=2)
c.check("--benchmark fewshot needs --shots" in p.stderr, "--benchmark fewshot without --shots is refused")
p = run(a.petl, "run", "--method", "linear", "--task", "fashion_mnist", "--data-root", root, "--shots", "4",
        "--out", os.path.join(a.scratch, "runs"), expect=2)
c.check("belong to --benchmark fewshot" in p.stderr, "--shots without --benchmark fewshot is refused")
p = fs_run(task="aircraft", expect=2)
c.check("few-shot dataset 'aircraft' not found" in p.stderr and "fashion_mnist" in p.stderr,
        "an absent dataset names the root and the folders present")

# ---------------------------------------------------------------- 3. pitfalls, before any training
bad = os.path.join(a.scratch, "bad")
shutil.copytree(os.path.join(root, "sprites_ori"), os.path.join(bad, "sprites_ori"), symlinks=True)
lst = os.path.join(bad, "sprites_ori", "annotations", "train_meta.list.num_shot_2.seed_0")
lines = open(lst).read().splitlines()
open(lst, "w").write("\n".join(l for i, l in enumerate(lines) if not (l.endswith(" 5") and i % 2)) + "\n")
p = run(a.petl, "run", "--benchmark", "fewshot", "--task", "sprites_ori", "--data-root", bad, "--shots", "2",
        "--split-seed", "0", "--method", "linear", "--out", os.path.join(a.scratch, "badruns"), "--no-progress",
        expect=None)
c.check(p.returncode != 0 and "class 5 has 1" in p.stderr and "fewer distinct images than the 2 shots" in p.stderr
        and "epoch" not in p.stderr, "a class with fewer images than shots is an error naming it, before training")
test_list = read_list(os.path.join(bad, "sprites_ori", "annotations", "test_meta.list"))
os.remove(os.path.join(bad, "sprites_ori", "images", test_list[17][0]))
p = run(a.petl, "run", "--benchmark", "fewshot", "--task", "sprites_ori", "--data-root", bad, "--shots", "4",
        "--split-seed", "0", "--method", "linear", "--out", os.path.join(a.scratch, "badruns"), "--no-progress",
        expect=None)
c.check(p.returncode != 0 and "1 listed image is missing on disk" in p.stderr and "test_meta.list:18" in p.stderr
        and "epoch" not in p.stderr, "a test image missing on disk is reported before any training")
failed = records("badruns")
c.check(len(failed) == 2 and all(r["status"] == "failed" and r["shots"] in (2, 4) for r in failed),
        "both jobs are recorded as failed, with their shots")

# ---------------------------------------------------------------- 4. one train-pool cache per dataset
cache = os.path.join(a.scratch, "cache")
for k in ("1", "4", "16"):
    fs_run("--feature-cache", cache, "--cache-dtype", "float32", out="cached", shots=k, seed="0")
    fs_run(out="live", shots=k, seed="0")
fs_run("--feature-cache", cache, "--cache-dtype", "float32", out="cached", shots="4", seed="2")
cached, live = records("cached"), records("live")
c.check([r["accuracy"] for r in cached[:3]] == [r["accuracy"] for r in live],
        "cached few-shot jobs give the live runs' exact accuracies (1, 4, 16 shots)")
h5 = sorted(glob.glob(os.path.join(cache, "*.h5")))
c.check(len(h5) == 2 and len({r["feature_cache"]["train"] for r in cached}) == 1,
        "four lists (three shots, two split seeds) train on ONE train-pool cache (+ one test cache)")
c.check(all(r["feature_cache"]["train_split_cached"] == "train_pool" for r in cached),
        "the record says the job read its rows of the train pool")
import h5py  # noqa: E402

with h5py.File(cached[0]["feature_cache"]["train"], "r") as f:
    n_pool = f["labels"].shape[0] if "labels" in f else f["features/cls"].shape[0]
pool = set()
for k in (1, 2, 4, 8, 16):
    for s in (0, 1, 2):
        pool |= {p for p, _ in read_list(ann("fashion_mnist", f"train_meta.list.num_shot_{k}.seed_{s}"))}
c.check(n_pool == len(pool), f"the pool cache holds each image of the merged lists once ({n_pool} = {len(pool)})")

# ---------------------------------------------------------------- 5. a few-shot sweep
out = os.path.join(a.scratch, "sweep")
cfg = os.path.join(a.scratch, "fewshot.yaml")
open(cfg, "w").write(f"""name: fewshot
out: {out}
data_root: {root}
benchmark: fewshot
shots: [1, 4]
split_seeds: [0, 1]
methods: [linear, synqt]
tasks: [fashion_mnist, sprites_ori]
seeds: [42]
epochs: 5
method_overrides:
  synqt: {{set: {{backbone_drop_path: "off"}}}}
cache_dtype: float32
""")
p = run(a.petl, "sweep", cfg, "--dry-run")
c.check("16 training job(s)" in p.stdout and "few-shot: 2 dataset(s) x shots [1, 4] x split seeds [0, 1]"
        in p.stdout, "the dry run counts the few-shot jobs and names shots and split seeds")
c.check(p.stdout.count("serves 4 training job(s)") == 4 and "train_pool" in p.stdout,
        "the dry run shows each dataset's train-pool caches serving every list")
c.check("fashion_mnist 4sh/s1" in p.stdout, "each job row names its shots and split seed")
bad_cfg = os.path.join(a.scratch, "bad.yaml")
open(bad_cfg, "w").write(open(cfg).read().replace("benchmark: fewshot\n", ""))
p = run(a.petl, "sweep", bad_cfg, "--dry-run", expect=2)
c.check("'shots' and 'split_seeds' belong to 'benchmark: fewshot'" in p.stderr, "shots without fewshot is an error")
p = subprocess.run(MPIRUN + ["-np", "2", a.petl, "sweep", cfg], capture_output=True, text=True, env=ENV)
print(p.stdout[-2000:], p.stderr[-2000:])
c.check(p.returncode == 0, f"the few-shot sweep finishes (exit {p.returncode})")
recs = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]
train = [r for r in recs if r.get("schema") == "petl.result"]
ids = {(r["method"], r["task"], r["shots"], r["split_seed"]) for r in train if r["status"] == "ok"}
c.check(len(train) == 16 and len(ids) == 16, f"every (method, dataset, shots, split seed) once ({len(ids)} of 16)")
p = run(a.petl, "report", out, "--out", os.path.join(a.scratch, "report"), expect=None)
md = open(os.path.join(a.scratch, "report", "report.md")).read() if p.returncode == 0 else p.stderr
print(md[:3000])
acc = collections.defaultdict(list)
for r in train:
    acc[(r["method"], r["task"], r["shots"])].append(r["accuracy"])
rows_ok = True
for ds in ("fashion_mnist", "sprites_ori"):
    table = md.split(f"*{ds}*")[1].split("\n\n")[1] if f"*{ds}*" in md else ""
    for m in ("linear", "synqt"):
        line = next((l for l in table.splitlines() if l.startswith(f"| {m} ")), "")
        cells = [x.strip() for x in line.split("|")[2:4]]
        want = [f"{statistics.mean(acc[(m, ds, k)]):.2f} ± {statistics.stdev(acc[(m, ds, k)]):.2f}" for k in (1, 4)]
        rows_ok &= cells == want
        if cells != want:
            print("report row", ds, m, cells, "expected", want)
c.check(p.returncode == 0 and rows_ok,
        "petl report: one table per dataset, one row per method, mean ± std over the split seeds per shot count")
c.check(os.path.isfile(os.path.join(a.scratch, "report", "plots", "fewshot_mean.gp"))
        and "set logscale x 2" in open(os.path.join(a.scratch, "report", "plots", "fewshot_mean.gp")).read(),
        "the accuracy-vs-shots plot has a log-2 shots axis")

# ---------------------------------------------------------------- 6. the ready config, on NOAH's tree
import re  # noqa: E402

import yaml  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ready = os.path.join(ROOT, "config", "sweeps", "fewshot_fgvc.yaml")
rc = yaml.safe_load(open(ready))
listed = re.findall(r"^  ([a-z_0-9]+) +grad-through-backbone=(.*)$", run(a.petl, "list").stdout, re.M)
registered = sorted(m for m, rest in listed if "[made for the " not in rest)
c.check(sorted(rc["methods"]) == registered and rc["shots"] == [1, 2, 4, 8, 16] and rc["split_seeds"] == [0, 1, 2]
        and "recipe" not in rc, "fewshot_fgvc.yaml: every registered method, NOAH's shots and seeds, own recipes")
# NOAH's repository folders with its list lengths (no images: a dry run reads lists only)
noah = os.path.join(a.scratch, "noah")
sizes = {"fgvc-aircraft": (100, 3333), "food101": (101, 30300), "oxford-flowers102": (102, 2463),
         "oxford-pets": (37, 3669), "standford-cars": (196, 8041)}
for folder, (classes, n_test) in sizes.items():
    d = os.path.join(noah, folder, "annotations")
    os.makedirs(d)
    for k in (1, 2, 4, 8, 16):
        for s in (0, 1, 2):
            with open(os.path.join(d, f"train_meta.list.num_shot_{k}.seed_{s}"), "w") as f:
                f.writelines(f"s{s}k{k}c{cl}_{i}.jpg {cl}\n" for cl in range(classes) for i in range(k))
    with open(os.path.join(d, "test_meta.list"), "w") as f:
        f.writelines(f"t{i}.jpg {i % classes}\n" for i in range(n_test))
p = run(a.petl, "list", "--data-root", noah, "--benchmark", "fewshot")
c.check(all(n in p.stdout for n in ("fgvc_aircraft", "food101", "oxford_flowers102", "oxford_iiit_pet",
                                    "stanford_cars")) and "classes 196" in p.stdout,
        "NOAH's repository folder names (standford-cars included) are found under their canonical names")
backbone = os.path.join(a.scratch, "ViT-B_16.npz")
open(backbone, "wb").write(b"stand-in")
p = run(a.petl, "sweep", ready, "--data-root", noah, "--backbone", backbone, "--dry-run",
        "--out", os.path.join(a.scratch, "ready"))
n_train = int(re.search(r"(\d+) training job\(s\)", p.stdout).group(1))
c.check(n_train == len(registered) * 5 * 5 * 3, f"the ready sweep plans methods x 5 x 5 x 3 jobs ({n_train})")
c.check(p.stdout.count("one backbone pass over the merged train lists serves") == 5 * 2,
        "one train-pool cache per dataset and per taps (cls for linear, K/V for vqt)")
c.done()

"""Protocol val_select (selection without the test set) on the embedded suite: a search job per grid
point trains on train800 and is evaluated on val200; the final run takes the (point, epoch count)
the search records say is best (ties: the smaller epoch count, then the earlier point), trains on
train800val200 and reports its test accuracy after the last epoch; its record names the search.
Then the sweep's two-stage plan under mpirun: the dry run shows both stages, finals run after their
searches, a SIGKILL between the stages never re-runs a finished search, a changed grid plans only
the new point and a new final, and the report shows best_of_10, final and val_select side by side."""
import copy
import json
import os
import shutil
import signal
import subprocess
import time

from common import Checks, parse_args, run

a = parse_args()
c = Checks()
MPIRUN = [shutil.which("mpirun") or "mpirun", "--allow-run-as-root", "--oversubscribe"]
ENV = dict(os.environ, PETL_NO_PROGRESS="1")
data = os.path.join(a.scratch, "mini")
run(a.petl, "suite", "--out", data, "--no-progress")


def records(path):
    if os.path.isdir(path):
        path = os.path.join(path, "results.jsonl")
    return [json.loads(l) for l in open(path) if l.strip()]


def choose(cands):
    """The rule, independently: highest val accuracy, then the smaller epoch count, then grid order."""
    best = None
    for i, cand in enumerate(cands):
        for e in cand["evals"]:
            key = (-e["test_acc"], e["epoch"], i)
            if best is None or key < best[0]:
                best = (key, i, e["epoch"], e["test_acc"])
    return best[1:]


# ---------------------------------------------------------------- 1. petl run --protocol val_select
out = os.path.join(a.scratch, "single")
p = run(a.petl, "run", "--protocol", "val_select", "--method", "linear", "--task", "sprites_loc", "--data-root", data,
        "--epochs", "4", "--set", "eval_every=2", "--out", out, "--no-progress")
print(p.stdout)
search_files = sorted(os.path.join(out, "search", d, "results.jsonl") for d in os.listdir(os.path.join(out, "search")))
searches = [records(f)[-1] for f in search_files]
c.check(len(searches) >= 2 and all(s["stage"] == "search" and s["protocol"] == "val_select" for s in searches),
        f"one search record per point of linear's default grid ({len(searches)})")
c.check(all(s["data"]["train_split"] == "train800" and s["data"]["test_split"] == "val200" and s["data"]["n_train"] == 800
            and s["data"]["n_test"] == 200 for s in searches), "every search trains on train800 and evaluates val200")
c.check(all([e["epoch"] for e in s["evals"]] == [2, 4] for s in searches), "searches evaluate at every evaluation epoch")
final = records(out)[-1]
sel = final.get("selection", {})
c.check(final["stage"] == "final" and final["protocol"] == "val_select", "the final record is stage final")
by_key = {s["job_key"]: s for s in searches}
cands = [by_key[k] for k in sel.get("search_job_keys", [])]
c.check(len(cands) == len(searches), "the final record names every search job by its key")
idx, epoch, acc = choose(cands)
ch = sel.get("chosen", {})
c.check(ch.get("job_key") == cands[idx]["job_key"] and ch.get("epochs") == epoch and ch.get("val_acc") == acc,
        f"the choice is what the search records say: point {idx}, {epoch} epochs, val {acc}")
chosen_sets = ch.get("sets", {})
c.check(all(final["settings"]["requested"].get(k) == v for k, v in chosen_sets.items())
        and final["settings"]["recipe"]["epochs"] == str(epoch), "the final run trains with the chosen settings for that many epochs")
c.check(final["data"]["train_split"] == "train800val200" and final["data"]["test_split"] == "test"
        and final["data"]["n_train"] == 1000, "the final run trains on train800val200 and tests on the test list")
c.check(final["accuracy"] == final["evals"][-1]["test_acc"] == final["accuracy_by_protocol"]["val_select"],
        "its result is the test accuracy after its last epoch")
c.check(all(x["evals"] == [{"epoch": e["epoch"], "val_acc": e["test_acc"]} for e in by_key[x["job_key"]]["evals"]]
            for x in sel["candidates"]), "every candidate's val200 evaluations are in the final record")
p = run(a.petl, "run", "--protocol", "val_select", "--method", "linear", "--task", "sprites_loc", "--data-root", data,
        "--epochs", "4", "--set", "eval_every=2", "--out", out, "--no-progress", "--resume")
c.check(p.stdout.count("reused the finished record") == len(searches) + 1, "--resume reuses every search and the final")

# ---------------------------------------------------------------- 2. ties, from edited search records
ties = os.path.join(a.scratch, "ties")
os.makedirs(ties)
base = searches[0]


def search_file(name, accs):
    r = copy.deepcopy(base)
    r["evals"] = [{"epoch": e, "test_acc": v, "train_loss": 1.0} for e, v in accs]
    r["job_key"] = name
    r["settings"]["requested"] = {"lr": {"A": "0.001", "B": "0.002", "C": "0.003"}[name[0]]}
    path = os.path.join(ties, name + ".jsonl")
    open(path, "w").write(json.dumps(r) + "\n")
    return path


def chosen_by(files):
    rf = os.path.join(ties, "final.jsonl")
    if os.path.exists(rf):
        os.remove(rf)
    args = ["run", "--protocol", "val_select", "--method", "linear", "--task", "sprites_loc", "--data-root", data,
            "--out", os.path.join(ties, "out"), "--dry-run", "--record-file", rf]
    for f in files:
        args += ["--select-from", f]
    run(a.petl, *args)
    return records(rf)[-1]["selection"]["chosen"]


A = search_file("A1", [(2, 50.0), (4, 60.0)])
B = search_file("B1", [(2, 60.0), (4, 60.0)])
ch = chosen_by([A, B])
c.check((ch["job_key"], ch["epochs"]) == ("B1", 2), "a tie in accuracy goes to the smaller epoch count first")
A2 = search_file("A2", [(2, 40.0), (4, 60.0)])
B2 = search_file("B2", [(2, 50.0), (4, 60.0)])
c.check(chosen_by([A2, B2])["job_key"] == "A2" and chosen_by([B2, A2])["job_key"] == "B2",
        "then to the earlier grid point")
C3 = search_file("C3", [(2, 61.0), (4, 10.0)])
c.check((chosen_by([A2, C3])["job_key"], chosen_by([A2, C3])["epochs"]) == ("C3", 2), "a higher accuracy wins")
p = run(a.petl, "run", "--protocol", "val_select", "--method", "lora", "--task", "sprites_loc", "--data-root", data,
        "--out", os.path.join(ties, "out"), "--select-from", A, expect=2)
c.check("no ok search record of method lora" in p.stderr, "a search of another method is refused, naming the file")
p = run(a.petl, "run", "--method", "linear", "--task", "sprites_loc", "--data-root", data, "--stage", "search",
        "--out", os.path.join(ties, "out"), expect=2)
c.check("belong to --protocol val_select" in p.stderr, "--stage without val_select is refused")

# ---------------------------------------------------------------- 3. the sweep: two stages, kill, grid change
sweep_out = os.path.join(a.scratch, "sweep")


def config(lrs, name="vs.yaml"):
    path = os.path.join(a.scratch, name)
    open(path, "w").write(f"""name: vs
out: {sweep_out}
data_root: {data}
protocol: val_select
recipe: mini
epochs: 4
methods: [linear, lora]
tasks: [sprites_loc, objects_dist]
seeds: [42]
grid:
  lr: [{", ".join(lrs)}]
method_overrides:
  linear: {{set: {{eval_every: "2"}}}}
  lora: {{set: {{eval_every: "2"}}}}
cache_dtype: float32
""")
    return path


cfg = config(["1.0e-3", "1.0e-2"])
p = run(a.petl, "sweep", cfg, "--dry-run")
c.check("val_select, two stages" in p.stdout and "search       8 job(s)" in p.stdout
        and "final        4 job(s)" in p.stdout and "ordinary     4 job(s)" in p.stdout,
        "the dry run shows both stages and their counts (8 searches, 4 finals) and the ordinary runs")
c.check(p.stdout.count("after 2 searches") == 4, "each final job runs after its 2 searches")
proc = subprocess.Popen(MPIRUN + ["-np", "2", a.petl, "sweep", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, env=ENV, start_new_session=True)
journal = os.path.join(sweep_out, "results.jsonl")
deadline = time.time() + 600
killed_after = None
while time.time() < deadline and proc.poll() is None:
    recs = records(journal) if os.path.exists(journal) else []
    n_search = sum(1 for r in recs if r.get("stage") == "search" and r.get("status") == "ok")
    if n_search == 8:
        os.killpg(proc.pid, signal.SIGKILL)
        killed_after = [r for r in recs if r.get("schema") == "petl.result"]
        break
    time.sleep(0.2)
proc.wait()
c.check(killed_after is not None, "the sweep was SIGKILLed once every search had finished")
p = subprocess.run(MPIRUN + ["-np", "2", a.petl, "sweep", cfg], capture_output=True, text=True, env=ENV)
print(p.stdout[-2500:], p.stderr[-1500:])
c.check(p.returncode == 0, f"the re-run finishes (exit {p.returncode})")
recs = [r for r in records(journal) if r.get("schema") == "petl.result"]
search_recs = [r for r in recs if r.get("stage") == "search"]
finals = [r for r in recs if r.get("stage") == "final" and r["status"] == "ok"]
ordinary = [r for r in recs if not r.get("stage") and r["status"] == "ok"]
c.check(len(search_recs) == 8, f"no search ran again after the kill ({len(search_recs)} search records)")
c.check(len({(r["method"], r["task"]) for r in finals}) == 4 and len(ordinary) == 4,
        f"every final and ordinary job finished ({len(finals)} finals, {len(ordinary)} ordinary)")
search_keys = {r["job_key"] for r in search_recs}
ok_sel = True
for f in finals:
    mine = [r for r in search_recs if r["method"] == f["method"] and r["task"] == f["task"]]
    ok_sel &= set(f["selection"]["search_job_keys"]) == {r["job_key"] for r in mine} <= search_keys
    cands = [next(r for r in mine if r["job_key"] == k) for k in f["selection"]["search_job_keys"]]
    i, e, v = choose(cands)
    ok_sel &= (f["selection"]["chosen"]["job_key"], f["selection"]["chosen"]["epochs"]) == (cands[i]["job_key"], e)
c.check(ok_sel, "each final chose from exactly its own searches, as their records say")
c.check(all(r["data"]["test_split"] == "val200" for r in search_recs) and all(
    r["data"]["test_split"] == "test" for r in finals), "only the final runs read the test list")

# a changed grid: the two old points are done, one new search and a new final per (method, task)
cfg2 = config(["1.0e-3", "1.0e-2", "3.0e-2"], "vs2.yaml")
p = run(a.petl, "sweep", cfg2, "--dry-run")
c.check("search      12 job(s), 8 done" in p.stdout and "final        4 job(s), 0 done" in p.stdout,
        "a changed grid keeps the finished searches and plans new finals (new keys)")
p = subprocess.run(MPIRUN + ["-np", "2", a.petl, "sweep", cfg2], capture_output=True, text=True, env=ENV)
recs2 = [r for r in records(journal) if r.get("schema") == "petl.result"]
c.check(p.returncode == 0 and sum(1 for r in recs2 if r.get("stage") == "search") == 12
        and sum(1 for r in recs2 if r.get("stage") == "final" and r["status"] == "ok") == 8,
        "only the new point's searches and the new finals ran")
new_finals = [r for r in recs2 if r.get("stage") == "final"][-4:]
c.check(all(len(f["selection"]["search_job_keys"]) == 3 for f in new_finals), "the new finals chose among 3 points")

# ---------------------------------------------------------------- 4. the report
p = run(a.petl, "report", sweep_out, "--out", os.path.join(a.scratch, "report"), expect=None)
md = open(os.path.join(a.scratch, "report", "report.md")).read() if p.returncode == 0 else p.stderr
print(md[-3000:])
c.check(p.returncode == 0 and "val_select" in md and "inflation" in md.lower(),
        "petl report shows best_of_10, final and val_select side by side with the selection inflation")
c.check("search record" in md or "search record" in p.stderr, "search records are counted, not tabulated")

# ---------------------------------------------------------------- 5. the ready config and the default grids
import itertools  # noqa: E402
import re  # noqa: E402

import yaml  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
grids = yaml.safe_load(open(os.path.join(ROOT, "config", "val_grids.yaml")))
ready = yaml.safe_load(open(os.path.join(ROOT, "config", "sweeps", "vtab1k_val_select.yaml")))
points = {m: len(list(itertools.product(*grids[m]["grid"].values()))) for m in ready["methods"]}
c.check(all(m in grids and grids[m].get("source") and 1 < points[m] <= 4 for m in ready["methods"]),
        "every method of the table has a default grid of 2-4 points with its source")
backbone = os.path.join(a.scratch, "ViT-B_16.npz")
open(backbone, "wb").write(b"stand-in")
p = run(a.petl, "sweep", os.path.join(ROOT, "config", "sweeps", "vtab1k_val_select.yaml"), "--data-root", data,
        "--backbone", backbone, "--dry-run", "--out", os.path.join(a.scratch, "ready"))
n_search = int(re.search(r"search +(\d+) job", p.stdout).group(1))
n_final = int(re.search(r"final +(\d+) job", p.stdout).group(1))
c.check(n_search == 19 * sum(points.values()) and n_final == 19 * len(ready["methods"]),
        f"the ready val_select sweep plans each method's default grid on the 19 tasks ({n_search} searches, {n_final} finals)")
c.done()

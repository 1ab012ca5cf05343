"""An independent computation of the report goldens: tests/io/test_report.cpp compares `petl report`'s
output with golden files that petl itself wrote (tests/io/data/report/expected/). Here the numbers of
vtab_report.csv are recomputed from the fixture records and reference.csv with Python's own
arithmetic and the rules the report documents — records of the same job (method, task, seed and
setting) counted once, the later one winning; rows split by the settings that vary within a task;
per task the mean over seeds; group means over the tasks present; Mean over the tasks present;
parameters (in millions and as a count), peak training and evaluation memory and training seconds per
job as means over the row's tasks (each task's value the mean over its seeds), wall-clock hours summed
over the row's runs; the Mean's ± over seeds: the seeds every task of the row has, the mean over the
row's tasks per such seed, and the sample std of those (only with two or more such seeds); the
published rows as reference.csv gives them, with their group means; Δ = ours − published over the
tasks both have — and must equal the golden file's to its printed precision. The markdown's cells,
Mean (± n), readable parameter counts (3 significant digits, K / M) and Train column are checked
against the same numbers."""
import csv
import json
import os
import statistics

from common import TESTS, Checks, parse_args

a = parse_args()
c = Checks()
D = os.path.join(TESTS, "io", "data", "report")
GROUPS = {
    "natural": ["cifar", "caltech101", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397"],
    "specialized": ["patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy"],
    "structured": ["clevr_count", "clevr_dist", "dmlab", "kitti", "dsprites_loc", "dsprites_ori", "smallnorb_azi",
                   "smallnorb_ele"],
}
TASKS = [t for g in GROUPS.values() for t in g]

# ---------------------------------------------------------------- the records, as the report reads them
records = []
for f in (os.path.join(D, "vtab", "results.jsonl"), os.path.join(D, "vtab", "sweep", "journal.jsonl")):
    for line in open(f):
        r = json.loads(line)
        if r.get("schema") == "petl.result" and r.get("status") == "ok":
            records.append(r)


def setting_items(r):
    """The settings that make a row: the method's (not "_" ones) and the recipe's but the seed."""
    s = {k: str(v) for k, v in r["settings"]["method"].items() if not k.startswith("_")}
    for k, v in r["settings"]["recipe"].items():
        if k != "seed":
            s[("recipe." + k) if k in s else k] = str(v)
    return s


# A setting splits a method's rows when it takes several values within one task.
split_keys = {}
for m in {r["method"] for r in records}:
    keys = set()
    for t in TASKS:
        rs = [setting_items(r) for r in records if r["method"] == m and r["task"] == t]
        for k in set().union(*rs) if rs else set():
            if len({s.get(k) for s in rs}) > 1:
                keys.add(k)
    split_keys[m] = sorted(keys)


def row_of(r):
    s = setting_items(r)
    return r["method"], " ".join(f"{k}={s[k]}" for k in split_keys[r["method"]])


jobs = {}  # (row, task, seed) -> record; a later record of the same job replaces the earlier one
for r in records:
    jobs[(row_of(r), r["task"], r["seed"])] = r
rows = {}
for (row, task, seed), r in jobs.items():
    rows.setdefault(row, {}).setdefault(task, []).append(r)


def mean_or_none(vals):
    vals = [v for v in vals if v is not None]
    return statistics.fmean(vals) if vals else None


ours = {}
for row, by_task in rows.items():
    acc = {t: statistics.fmean(r["accuracy"] for r in rs) for t, rs in by_task.items()}
    out = {t: acc.get(t) for t in TASKS}
    for g, ts in GROUPS.items():
        out[g + "_mean"] = mean_or_none([acc.get(t) for t in ts])
    out["mean"] = mean_or_none(list(acc.values()))
    out["params"] = statistics.fmean(rs[-1]["trainable_params"] for rs in by_task.values())
    out["params_m"] = out["params"] / 1e6
    out["peak_train_mib"] = statistics.fmean(rs[-1]["memory"]["peak_train_mib"] for rs in by_task.values())
    out["peak_eval_mib"] = statistics.fmean(statistics.fmean(r["memory"]["peak_eval_mib"] for r in rs)
                                            for rs in by_task.values())
    out["train_s"] = statistics.fmean(statistics.fmean(r["timing"]["train_s"] for r in rs) for rs in by_task.values())
    out["wall_h"] = sum(r["timing"]["wall_s"] for rs in by_task.values() for r in rs) / 3600
    # The Mean's spread over seeds: the seeds every task of the row has; per seed the mean over the tasks.
    common = set.intersection(*({r["seed"] for r in rs} for rs in by_task.values()))
    per_seed = [statistics.fmean(r["accuracy"] for rs in by_task.values() for r in rs if r["seed"] == s)
                for s in sorted(common)]
    out["mean_n_seeds"] = len(per_seed)
    out["mean_std"] = statistics.stdev(per_seed) if len(per_seed) > 1 else None
    out["n_tasks"] = len(acc)
    ours[row] = out

published = {}
with open(os.path.join(D, "reference.csv")) as f:
    for r in csv.DictReader(f):
        out = {t: float(r[t]) for t in TASKS}
        for g, ts in GROUPS.items():
            out[g + "_mean"] = statistics.fmean(out[t] for t in ts)
        out["mean"] = float(r["mean"])
        out["params_m"] = float(r["params_m"])
        out["params"] = out["params_m"] * 1e6
        published[r["method"]] = out

# ---------------------------------------------------------------- the golden file
golden = list(csv.DictReader(open(os.path.join(D, "expected", "vtab_report.csv"))))


def close(x, y, places):
    return (x is None and y == "") or (x is not None and y != "" and abs(x - float(y)) <= 0.5 * 10 ** -places + 1e-12)


def compare(kind, label, mine, g):
    cols = TASKS + [gr + "_mean" for gr in GROUPS] + ["mean"]
    bad = [col for col in cols if not close(mine.get(col), g[col], 4)]
    for col, places in (("params_m", 6), ("peak_train_mib", 3), ("params", 0), ("peak_eval_mib", 3), ("train_s", 3),
                        ("wall_h", 6), ("mean_std", 4)):
        if col in mine and not close(mine[col], g[col], places):
            bad.append(col)
    c.check(not bad, f"{kind} row {label}: every number equals the independent computation"
            + (f" (differs: {', '.join(f'{b} {mine.get(b)} vs {g[b]}' for b in bad)})" if bad else ""))


seen = set()
for g in golden:
    label = (g["method"], g["setting"])
    if g["kind"] == "ours":
        seen.add(label)
        c.check(label in ours, f"ours row {label} exists in the records")
        if label in ours:
            compare("ours", label, ours[label], g)
            c.check(int(g["n_tasks"]) == ours[label]["n_tasks"], f"ours row {label}: n_tasks")
            c.check(int(g["mean_n_seeds"]) == ours[label]["mean_n_seeds"], f"ours row {label}: mean_n_seeds")
    elif g["kind"] == "reference":
        compare("published", label, published[g["method"]], g)
    elif g["kind"] == "delta":
        o, p = ours[(g["method"], "")], published[g["method"]]
        delta = {t: (o[t] - p[t]) if o[t] is not None else None for t in TASKS}
        for gr, ts in GROUPS.items():
            delta[gr + "_mean"] = mean_or_none([delta[t] for t in ts])
        delta["mean"] = mean_or_none([delta[t] for t in TASKS])
        compare("delta", label, delta, g)
c.check(seen == set(ours), f"the golden file has every row of ours ({len(ours)}) and no other")

def count_text(n):
    """A parameter count as the report prints it: 3 significant digits, K = 10^3, M = 10^6."""
    if n == 0:
        return "0"
    k = 0
    while abs(n) >= 999.5 and k < 3:
        n /= 1000
        k += 1
    return f"{n:.3g}" + ["", " K", " M", " G"][k]


# The markdown table's cells: mean ± sample std over seeds (n shown where n > 1), to two decimals.
md = open(os.path.join(D, "expected", "vtab_report.md")).read().split("\n")
header = next(l for l in md if l.startswith("| Method"))
cols = [x.strip() for x in header.strip("|").split("|")]
for (m, setting), by_task in rows.items():
    label = m + (f" ({setting})" if setting else "")
    line = next((l for l in md if l.startswith("| " + label + " ")), None)
    c.check(line is not None, f"markdown row {label}")
    if line is None:
        continue
    cells = dict(zip(cols, [x.strip() for x in line.strip("|").split("|")]))
    for t, rs in by_task.items():
        accs = [r["accuracy"] for r in rs]
        want = f"{statistics.fmean(accs):.2f}"
        if len(accs) > 1:
            want += f" ± {statistics.stdev(accs):.2f} (n={len(accs)})"
        c.check(cells[t] == want, f"markdown {label} {t}: {cells[t]!r} == {want!r}")
    o = ours[(m, setting)]
    want = f"{o['mean']:.2f}"
    if o["mean_std"] is not None:
        want += f" ± {o['mean_std']:.2f} (n={o['mean_n_seeds']})"
    want += "" if o["n_tasks"] == len(TASKS) else "*"
    c.check(cells["Mean"] == want, f"markdown {label} Mean: {cells['Mean']!r} == {want!r}")
    c.check(cells["Params"] == count_text(o["params"]), f"markdown {label} Params: {cells['Params']!r}")
    c.check(cells["Peak eval (MiB)"] == f"{o['peak_eval_mib']:.1f}", f"markdown {label} Peak eval: {cells['Peak eval (MiB)']!r}")
    c.check(cells["Train (s/job)"] == f"{o['train_s']:.1f}", f"markdown {label} Train: {cells['Train (s/job)']!r}")
c.check(any("±" in l.split("|")[-6] for l in md if l.startswith("| synqt (lr=0.005)")),
        "the golden report shows a Mean with ± over seeds")
for m, p in published.items():
    line = next(l for l in md if l.startswith("| " + m + " ") and "–" in l.split("|")[-2])
    cells = dict(zip(cols, [x.strip() for x in line.strip("|").split("|")]))
    c.check(cells["Params"] == count_text(p["params"]), f"markdown published {m} Params: {cells['Params']!r}")
c.done()

"""--precision bf16 end to end on the CPU (bfloat16 autocast; harness/train/precision.h):

- `petl run --precision bf16` records settings.precision and memory.precision "bf16", has another
  job key than the fp32 run (a --resume of one never returns the other) and a close accuracy;
- `petl eval --precision bf16 --logits` of the fp32 checkpoint: the top-1 predictions agree with
  float32's on the test split (>= 97 %), the logits are close but not identical;
- a bf16 feature cache is another file than the fp32 one, with a precision attribute (h5py), and
  `petl cache build --precision bf16` finds the one `petl run` built;
- bad values name the flag.
"""
import glob
import json
import os

import h5py
import numpy as np

from common import Checks, parse_args, run

a = parse_args()
c = Checks()
S = a.scratch
data = os.path.join(S, "suite")
run(a.petl, "suite", "--out", data, "--no-progress")
TASK = "fashion_mnist"


def records(out):
    with open(os.path.join(out, "results.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]


def train(out, precision, *extra):
    run(a.petl, "run", "--method", "linear", "--task", TASK, "--data-root", data, "--recipe", "mini", "--epochs", "3",
        "--threads", "2",
        "--out", out, "--resume", "--precision", precision, *extra)
    return records(out)[-1]


out = os.path.join(S, "runs")
r32 = train(out, "fp32")
r16 = train(out, "bf16")
c.check(r32["status"] == "ok" and r16["status"] == "ok", "both runs ok")
c.check(r32["settings"]["precision"] == "fp32" and r32["memory"]["precision"] == "fp32", "fp32 recorded")
c.check(r16["settings"]["precision"] == "bf16" and r16["memory"]["precision"] == "bf16", "bf16 recorded")
c.check(r16["job_key"] != r32["job_key"], "bf16 has its own job key")
c.check(len(records(out)) == 2, "the bf16 run did not reuse the fp32 record")
print("accuracy fp32 %.2f, bf16 %.2f" % (r32["accuracy"], r16["accuracy"]))
c.check(abs(r16["accuracy"] - r32["accuracy"]) <= 3.0, "bf16 accuracy within 3 points of fp32")
c.check(r16["accuracy"] >= 40.0, "bf16 learns (>= 4x chance)")
again = train(out, "bf16")
c.check(len(records(out)) == 2 and again["job_key"] == r16["job_key"], "--resume finds the bf16 record")
train(out, "float32")
c.check(len(records(out)) == 2, "--precision float32 is fp32: the same job key, so --resume reuses its record")

ckpt = r32["checkpoint"]
logits = {}
for p in ("fp32", "bf16"):
    path = os.path.join(S, f"logits_{p}.h5")
    run(a.petl, "eval", "--method", "linear", "--task", TASK, "--data-root", data, "--checkpoint", ckpt,
        "--precision", p, "--logits", path, "--threads", "2", "--no-progress")
    with h5py.File(path, "r") as f:
        logits[p] = f["logits"][:]
agree = float(np.mean(logits["fp32"].argmax(1) == logits["bf16"].argmax(1)))
rel = float(np.abs(logits["bf16"] - logits["fp32"]).max() / np.abs(logits["fp32"]).max())
print("eval: top-1 agreement bf16 vs fp32 %.4f on %d images, max relative logit difference %.3g" %
      (agree, len(logits["fp32"]), rel))
c.check(agree >= 0.97, "bf16 top-1 agrees with fp32 on >= 97 % of the test split")
c.check(0 < rel < 0.1, "bf16 logits close to fp32's, not identical")

# Feature caches: bf16 features are another cache.
cache = os.path.join(S, "cache")
for p in ("fp32", "bf16"):
    train(os.path.join(S, "cached_" + p), p, "--feature-cache", cache)
files = sorted(glob.glob(os.path.join(cache, "**", "*.h5"), recursive=True))
attrs = []
for fpath in files:
    with h5py.File(fpath, "r") as f:
        v = f.attrs.get("precision")
        attrs.append(v.decode() if isinstance(v, bytes) else v)
print("caches:", list(zip([os.path.basename(x) for x in files], attrs)))
c.check(attrs.count("bf16") >= 1 and attrs.count(None) >= 1 and len(files) == 2 * attrs.count("bf16"),
        "one fp32 cache (no precision attribute) and one bf16 cache per split")
p = run(a.petl, "cache", "build", "--data-root", data, "--task", TASK, "--taps", "cls", "--splits", "train800val200",
        "--precision", "bf16", "--out", cache, "--no-progress")
c.check("valid, kept" in p.stdout, "petl cache build --precision bf16 finds the bf16 cache petl run built")
c.check(len(glob.glob(os.path.join(cache, "**", "*.h5"), recursive=True)) == len(files), "no new cache file")

p = run(a.petl, "run", "--method", "linear", "--task", TASK, "--data-root", data, "--precision", "fp16",
        "--out", os.path.join(S, "bad"), expect=None)
c.check(p.returncode != 0 and "--precision 'fp16': expected fp32 or bf16" in p.stderr, "bad --precision named")
c.done()

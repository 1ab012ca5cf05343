"""End-to-end CLI checks: --help of every subcommand, `petl eval` of a checkpoint exported from
the reference code (names of taolinzhang/SynQT) against the python reference logits, `petl run`
records and checkpoints, and clear errors for bad input."""
import json
import os
import re

import h5py
import numpy as np
import torch
from PIL import Image

from common import GOLDEN, Checks, parse_args, run
import ref_models as R

a = parse_args()
c = Checks()
S = a.scratch

# ------------------------------------------------------------------ --help everywhere
flags = {"run": ["--method", "--task", "--data-root", "--backbone", "--arch", "--epochs", "--batch-size", "--seed",
                 "--protocol", "--threads", "--out", "--set", "--dry-run", "--skip-bad", "--recipe"],
         "eval": ["--method", "--task", "--data-root", "--backbone", "--checkpoint", "--split", "--logits",
                  "metadata"],
         "list": ["--data-root"], "suite": ["--out"], "pretrain": ["--out", "--epochs"], "bench": ["--methods"],
         "demo": ["--out", "--methods"]}
for cmd, fl in flags.items():
    p = run(a.petl, cmd, "--help")
    c.check(all(f in p.stdout for f in fl), f"petl {cmd} --help documents {', '.join(fl)}")
p = run(a.petl, "frobnicate", expect=2)
c.check("unknown command" in p.stderr, "unknown subcommand is a clear error")
p = run(a.petl, "evl", expect=2)
c.check("unknown command 'evl' (did you mean 'eval'?)" in p.stderr, "a misspelt subcommand gets a 'did you mean'")

# ------------------------------------------------------------------ a tiny task in SynQT's json format
root = os.path.join(S, "data")
task = os.path.join(root, "golden_task")
os.makedirs(os.path.join(task, "images"))
rng = np.random.default_rng(0)
items_train, items_test = [], []
for i in range(24):
    arr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    name = f"{i:04d}.png"
    Image.fromarray(arr).save(os.path.join(task, "images", name))
    (items_train if i < 16 else items_test).append({name: int(i % 7)})
json.dump(items_train, open(os.path.join(task, "train800val200.json"), "w"))
json.dump(items_test, open(os.path.join(task, "test.json"), "w"))
json.dump({"num_classes": 7, "description": "golden test task"}, open(os.path.join(task, "petl_task.json"), "w"))

# ------------------------------------------------------------------ eval of a reference-named checkpoint
backbone = os.path.join(GOLDEN, "vit_small.safetensors")
p_bb, _ = R.read_safetensors(backbone)
x = []
for it in items_test:
    name = list(it)[0]
    img = np.asarray(Image.open(os.path.join(task, "images", name)).convert("RGB"), dtype=np.float32) / 255.0
    img = (img - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    x.append(img.transpose(2, 0, 1))
x = torch.from_numpy(np.stack(x).astype(np.float32))
for T in (1, 3):
    ck = os.path.join(GOLDEN, f"synqt_t{T}.safetensors")
    s_ref, _ = R.read_safetensors(ck)
    with torch.no_grad():
        ref = R.synqt_logits(p_bb, s_ref, x, 4, 3).numpy()
    out_h5 = os.path.join(S, f"logits_t{T}.h5")
    p = run(a.petl, "eval", "--method", "synqt", "--task", "golden_task", "--data-root", root, "--backbone", backbone,
            "--checkpoint", ck, "--logits", out_h5, "--set", f"token_nums={T}")
    with h5py.File(out_h5, "r") as f:
        lg = f["logits"][()]
        labels = f["labels"][()]
        paths = [s.decode() if isinstance(s, bytes) else s for s in f["paths"][()]]
    rel = np.abs(lg - ref).max() / np.abs(ref).max()
    print(f"T={T}: petl eval logits vs python reference, max relative difference {rel:.3g}")
    c.check(lg.shape == (8, 7) and rel <= 1e-5, f"reference-exported SynQT checkpoint (T={T}) gives the reference logits")
    c.check(list(labels) == [list(it.values())[0] for it in items_test], "h5 labels in file-list order")
    c.check(paths == [list(it)[0] for it in items_test], "h5 paths in file-list order")
    acc = 100.0 * (lg.argmax(1) == labels).mean()
    c.check(f"accuracy {acc:.2f}%" in p.stdout, f"printed accuracy equals the logits' accuracy ({acc:.2f}%)")
out_npy = os.path.join(S, "logits.npy")
run(a.petl, "eval", "--method", "synqt", "--task", "golden_task", "--data-root", root, "--backbone", backbone,
    "--checkpoint", os.path.join(GOLDEN, "synqt_t1.safetensors"), "--logits", out_npy)
c.check(np.load(out_npy).shape == (8, 7), "logits as .npy (token_nums taken from the checkpoint metadata)")
p = run(a.petl, "eval", "--method", "synqt", "--task", "golden_task", "--data-root", root, "--backbone", backbone,
        "--checkpoint", os.path.join(GOLDEN, "synqt_t3.safetensors"), "--set", "token_nums=2", expect=2)
c.check("synqt.q" in p.stderr and "[3, 3, 48]" in p.stderr, "checkpoint shape mismatch names the tensor and shapes")

# ------------------------------------------------------------------ run → record → checkpoint → eval
out = os.path.join(S, "runs")
p = run(a.petl, "run", "--method", "synqt", "--task", "golden_task", "--data-root", root, "--backbone", backbone,
        "--epochs", "2", "--batch-size", "8", "--set", "eval_every=1", "--set", "token_nums=2", "--out", out,
        "--threads", "1", env={"PETL_NO_PROGRESS": "0"})
# off a terminal (stderr is a pipe here) with progress on: no bar lines in a short job's log
bars = [l for l in p.stderr.splitlines() if "[#" in l or "[." in l or re.search(r"\d+% \(?\d+/\d+", l)]
c.check(not bars, f"progress off a terminal: no bar or percent lines in a short run ({len(bars)}: {bars[:2]})")
recs = [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))]
r = recs[-1]
c.check(r["status"] == "ok" and r["schema_version"] == 1, "record written with status ok and a schema version")
c.check([e["epoch"] for e in r["evals"]] == [1, 2], "test accuracy logged at every evaluation")
c.check(r["accuracy_by_protocol"]["final"] == r["evals"][-1]["test_acc"], "final protocol = last evaluation")
c.check(r["settings"]["recipe"]["batch_size"] == "8" and r["settings"]["method"]["token_nums"] == "2",
        "effective settings recorded")
for k in ["peak_train_mib", "backbone_weights_mib", "trainable_state_mib", "activations_other_mib"]:
    c.check(r["memory"][k] > 0, f"memory breakdown has {k}")
c.check(len(r["backbone"]["sha256"]) == 64 and len(r["data"]["train_list_sha256"]) == 64, "backbone and list hashes")
c.check(all(k in r["provenance"] for k in ["git_commit", "host", "threads", "libtorch_version"]), "provenance")
ck, meta = R.read_safetensors(r["checkpoint"])
c.check(sum(v.numel() for v in ck.values()) == r["trainable_params"], "checkpoint holds exactly the trainable tensors")
c.check("synqt.qsm_block.1.attn.q_proj.mlp.fc1.weight" in ck and "head.weight" in ck, "checkpoint uses reference names")
p = run(a.petl, "eval", "--method", "synqt", "--task", "golden_task", "--data-root", root, "--backbone", backbone,
        "--checkpoint", r["checkpoint"])
c.check(f"accuracy {r['accuracy_by_protocol']['final']:.2f}%" in p.stdout, "eval of the saved checkpoint reproduces the final accuracy")
p = run(a.petl, "eval", "--data-root", root, "--backbone", backbone, "--checkpoint", r["checkpoint"])
c.check(f"accuracy {r['accuracy_by_protocol']['final']:.2f}%" in p.stdout and p.stdout.startswith("synqt golden_task/"),
        "eval without --method and --task takes both from the checkpoint's metadata")
p = run(a.petl, "eval", "--method", "vqt", "--data-root", root, "--backbone", backbone, "--checkpoint", r["checkpoint"],
        expect=2)
c.check("was trained with method 'synqt' (its metadata), not 'vqt'" in p.stderr and r["checkpoint"] in p.stderr,
        "eval with another method's name names the checkpoint's method\n" + p.stderr[-300:])
p = run(a.petl, "eval", "--data-root", root, "--backbone", backbone, "--checkpoint",
        os.path.join(GOLDEN, "synqt_t1.safetensors"), expect=2)
c.check("metadata names no method" in p.stderr and "give --method" in p.stderr,
        "a checkpoint without petl metadata needs --method, and says so\n" + p.stderr[-300:])
p = run(a.petl, "eval", "--data-root", root, "--checkpoint", r["checkpoint"], expect=2)  # the embedded backbone
c.check("was trained on the backbone with sha256 " + r["backbone"]["sha256"][:12] in p.stderr
        and "(the embedded one) has " in p.stderr, "eval on another backbone than the checkpoint's names both\n" + p.stderr[-300:])

# ------------------------------------------------------------------ --resume: nothing recomputed
run_args = ["run", "--method", "synqt", "--task", "golden_task", "--data-root", root, "--backbone", backbone,
            "--epochs", "2", "--batch-size", "8", "--set", "eval_every=1", "--set", "token_nums=2", "--out", out,
            "--threads", "1", "--resume"]
n_before = len(open(os.path.join(out, "results.jsonl")).readlines())
p = run(a.petl, *run_args)
n_after = len(open(os.path.join(out, "results.jsonl")).readlines())
c.check("reused the finished record " + r["job_key"] in p.stdout and n_after == n_before,
        "--resume returns the finished record of the same job and appends nothing")
p = run(a.petl, *run_args[:-1], "--seed", "7", "--resume")
n_seed = len(open(os.path.join(out, "results.jsonl")).readlines())
c.check("record appended" in p.stdout and n_seed == n_after + 1, "--resume with another seed trains a new job")

# ------------------------------------------------------------------ dry run at ViT-B/16 shapes
os.makedirs(os.path.join(root, "cifar"))
open(os.path.join(root, "cifar", "test.txt"), "w").write("images/test/000000.jpg 3\n")
p = run(a.petl, "run", "--method", "synqt", "--task", "cifar", "--data-root", root, "--arch",
        "vit_base_patch16_224_in21k", "--dry-run")
c.check("2727414 trainable parameters" in p.stdout, "dry run: SynQT on cifar at ViT-B/16 has 2,727,414 parameters")

# ------------------------------------------------------------------ bad input → clear errors, failures recorded
bad = os.path.join(root, "bad_task")
os.makedirs(os.path.join(bad, "images"))
for i in range(4):
    Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(os.path.join(bad, "images", f"{i}.png"))
json.dump({"num_classes": 3}, open(os.path.join(bad, "petl_task.json"), "w"))
open(os.path.join(bad, "test.txt"), "w").write("images/0.png 0\nimages/1.png 1\n")


def bad_run(lines, *extra, expect=2):
    open(os.path.join(bad, "train800val200.txt"), "w").write(lines)
    return run(a.petl, "run", "--method", "linear", "--task", "bad_task", "--data-root", root, "--backbone", backbone,
               "--epochs", "1", "--batch-size", "2", "--out", os.path.join(S, "bad_runs"), *extra, expect=expect)


p = bad_run("images/0.png 0\nimages/1.png 1\nimages/2.png\n")
c.check("train800val200.txt:3" in p.stderr, "malformed line: error names file:line")
p = bad_run("images/0.png 0\nimages/1.png 5\n")
c.check("train800val200.txt:2" in p.stderr and "out of range" in p.stderr, "label out of range: file:line and range")
p = bad_run("images/0.png 0\nimages/missing.png 1\nimages/2.png 2\n")
c.check("missing.png" in p.stderr and "train800val200.txt:2" in p.stderr, "missing image: error names image and line")
p = bad_run("images/0.png 0\nimages/missing.png 1\nimages/2.png 2\nimages/3.png 1\n", "--skip-bad", expect=0)
recs = [json.loads(l) for l in open(os.path.join(S, "bad_runs", "results.jsonl"))]
c.check([x["status"] for x in recs] == ["failed", "failed", "failed", "ok"], "failed jobs are recorded as failed")
c.check(recs[-1]["data"]["n_skipped"] == 1 and "missing.png" in recs[-1]["data"]["skipped"][0],
        "--skip-bad: the bad sample is skipped, counted and reported")
p = run(a.petl, "run", "--method", "linear", "--task", "golden_task", "--data-root", root, "--backbone", backbone,
        "--set", "frobs=3", "--dry-run", expect=2)
c.check("frobs" in p.stderr, "unknown --set key is an error naming the key")
p = run(a.petl, "run", "--method", "nope", "--task", "golden_task", "--data-root", root, expect=2)
c.check("unknown method 'nope'" in p.stderr and "synqt" in p.stderr, "unknown method lists the registered ones")
c.done()

#!/usr/bin/env python3
"""Writes the fixed result records of tests/io/test_report.cpp (run once; the outputs are committed).

vtab/results.jsonl         linear on 7 VTAB tasks (2 seeds on 6), synqt lr=0.001 on 2, a failed and a dry-run record
vtab/sweep/journal.jsonl   a sweep journal: its own entries (schema petl.sweep.journal), a duplicate of
                           linear/cifar seed 42 (supersedes the first) and synqt lr=0.005 on 2 tasks × 2 seeds
                           (every task of the row has both seeds: its Mean gets a ± over seeds)
mini/results.jsonl         a non-VTAB task set (embedded-suite names): 2 methods x 3 tasks, one cell with 2 seeds
Numbers are made up but shaped like real records (written by results/record.h); accuracy = best_of_10 = max of evals;
the evaluation peak and the training time differ per record (functions of the peak, classes and seed).
"""
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))
VITB = {"arch": "vit_base_patch16_224_in21k", "format": "npz", "path": "/data/ViT-B_16.npz",
        "sha256": "5b2f6e0c9d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b",
        "config": {"embed_dim": 768, "depth": 12, "num_heads": 12, "img_size": 224, "patch_size": 16}}
MINI = {"arch": "petl_vit_mini_p8_32", "format": "safetensors", "path": "assets/petl_vit_mini_p8_32.safetensors",
        "sha256": "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "config": {"embed_dim": 96, "depth": 6, "num_heads": 3, "img_size": 32, "patch_size": 8}}


def recipe(name, lr, epochs, batch, seed, eval_every):
    return {"recipe": name, "optimizer": "adamw", "lr": lr, "weight_decay": "0.01", "epochs": str(epochs),
            "batch_size": str(batch), "eval_every": str(eval_every), "seed": str(seed),
            "normalisation": "imagenet", "train_split": "train800val200", "test_split": "test"}


def record(method, task, seed, acc, classes, params, mib, *, bb=VITB, lr="0.001", msettings=None, epochs=50,
           batch=64, eval_every=10, rname="synqt", img=224, test_sha=None):
    evals = []
    n = epochs // eval_every
    for i in range(n):
        ep = (i + 1) * eval_every
        evals.append({"epoch": ep, "test_acc": round(acc - 4.0 * (n - 1 - i) / max(n - 1, 1) ** 1.0 * (1 if i < n - 2 else 0.1), 4),
                      "train_loss": round(2.0 / (i + 1), 4)})
    evals[-2]["test_acc"] = acc                     # the best evaluation
    evals[-1]["test_acc"] = round(acc - 0.3, 4)     # final is a little lower
    best = max(e["test_acc"] for e in evals)
    assert abs(best - acc) < 1e-9
    return {"schema": "petl.result", "schema_version": 1, "status": "ok", "method": method, "task": task, "seed": seed,
            "protocol": "best_of_10", "accuracy": acc,
            "accuracy_by_protocol": {"best_of_10": best, "final": evals[-1]["test_acc"],
                                     "best_of_10_epochs": [e["epoch"] for e in evals]},
            "evals": evals, "epoch_train_loss": [e["train_loss"] for e in evals],
            "trainable_params": params, "backbone_params": 85798656,
            "memory": {"device": "cpu", "unit": "MiB", "precision": "fp32", "batch_size": batch, "image_size": img,
                       "peak_train_mib": mib, "peak_eval_mib": round(mib * 0.75 + classes * 0.5, 3),
                       "backbone_weights_mib": 327.3, "trainable_state_mib": round(params * 16 / 2**20, 3),
                       "activations_other_mib": round(mib - 327.3 - params * 16 / 2**20, 3)},
            "timing": {"wall_s": round(train_s(mib, seed) + 10.0, 3), "train_s": train_s(mib, seed), "eval_s": 10.0,
                       "train_images_per_s": round(50000.0 / train_s(mib, seed), 3)},
            "settings": {"recipe": recipe(rname, lr, epochs, batch, seed, eval_every), "recipe_source": "config/recipes.yaml",
                         "method": msettings or {}, "requested": {}},
            "backbone": bb,
            "data": {"root": "/data/vtab-1k", "task": task, "format": "txt", "num_classes": classes,
                     "normalisation": "imagenet", "image_size": img, "train_split": "train800val200", "n_train": 1000,
                     "test_split": "test", "n_test": 10000, "test_list_sha256": test_sha or ("t" + task),
                     "skipped": [], "n_skipped": 0},
            "job_key": ("%s_%s_%d_%s" % (method, task, seed, lr))[:16],
            "provenance": {"git_commit": "fixture", "host": "fixture"}}


def train_s(mib, seed):
    return round(mib / 10.0 + 3.5 * (seed % 5) + 0.013, 3)


def synqt_settings(tokens):
    return {"token_nums": str(tokens), "attn_scale": "0.100000", "ffn_scale": "0.100000", "feat_scale": "0.100000",
            "backbone_drop_path": "on", "kem_drop_path": "on", "_task_config_source": "config/synqt_task_configs.csv"}


def write(path, lines):
    path = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for l in lines:
            f.write(json.dumps(l) + "\n")


classes = {"cifar": 100, "dtd": 47, "patch_camelyon": 2, "eurosat": 10, "resisc45": 45, "diabetic_retinopathy": 5,
           "clevr_count": 8}
lin = lambda t, s, a: record("linear", t, s, a, classes[t], 768 * classes[t] + classes[t], 350.5)
vtab = [lin("cifar", 42, 63.10), lin("cifar", 43, 64.00),
        lin("dtd", 42, 62.50), lin("dtd", 43, 63.80),
        lin("patch_camelyon", 42, 78.00), lin("patch_camelyon", 43, 79.00),
        lin("eurosat", 42, 87.20), lin("eurosat", 43, 88.00),
        lin("resisc45", 42, 68.10), lin("resisc45", 43, 69.30),
        lin("diabetic_retinopathy", 42, 74.00), lin("diabetic_retinopathy", 43, 73.60),
        lin("clevr_count", 42, 34.50),
        record("synqt", "cifar", 42, 70.20, 100, 2727414, 1520.75, msettings=synqt_settings(4)),
        record("synqt", "eurosat", 42, 95.10, 10, 2658294, 1500.25, msettings=synqt_settings(1)),
        {"schema": "petl.result", "schema_version": 1, "status": "failed", "method": "full", "task": "cifar", "seed": 42,
         "protocol": "best_of_10", "error": "CUDA out of memory\n(details on the next line)", "provenance": {}},
        {"schema": "petl.result", "schema_version": 1, "status": "dry_run", "method": "synqt", "task": "dtd", "seed": 42,
         "protocol": "best_of_10", "trainable_params": 2700000}]
write("vtab/results.jsonl", vtab)
journal = [{"schema": "petl.sweep.journal", "event": "start", "jobs": 3},
           lin("cifar", 42, 63.50),
           record("synqt", "cifar", 42, 71.00, 100, 2727414, 1520.75, lr="0.005", msettings=synqt_settings(4)),
           record("synqt", "eurosat", 42, 94.40, 10, 2658294, 1500.25, lr="0.005", msettings=synqt_settings(1)),
           record("synqt", "cifar", 43, 71.60, 100, 2727414, 1520.75, lr="0.005", msettings=synqt_settings(4)),
           record("synqt", "eurosat", 43, 94.00, 10, 2658294, 1500.25, lr="0.005", msettings=synqt_settings(1)),
           {"schema": "petl.sweep.journal", "event": "done"}]
write("vtab/sweep/journal.jsonl", journal)

mc = {"fashion_mnist": 10, "sprites_loc": 16, "objects_count": 8}
mini = lambda m, t, s, a, p, mib: record(m, t, s, a, mc[t], p, mib, bb=MINI, lr="0.01", epochs=10, batch=32,
                                         eval_every=2, rname="mini", img=32)
write("mini/results.jsonl", [
    mini("linear", "fashion_mnist", 42, 78.40, 970, 12.25),
    mini("linear", "sprites_loc", 42, 41.20, 1552, 12.5),
    mini("linear", "objects_count", 42, 55.00, 776, 12.125),
    mini("synqt", "fashion_mnist", 42, 84.10, 60000, 40.0),
    mini("synqt", "fashion_mnist", 43, 83.50, 60000, 40.0),
    mini("synqt", "sprites_loc", 42, 70.30, 60600, 41.0),
    mini("synqt", "objects_count", 42, 66.60, 59800, 39.5)])

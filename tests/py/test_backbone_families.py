"""Backbone families (issue 30): MAE and MoCo v3 ViT-B/16 checkpoints in their authors' layouts, as
people download them (random weights of the real shapes, wrapped as the authors' training scripts
save them: MAE's checkpoint['model'], MoCo v3's checkpoint['state_dict'] with module.base_encoder.,
module.momentum_encoder. and module.predictor.), converted with tools/pth_to_safetensors.py, read by
`petl cache build` (float32 cls + K/V taps), and compared with independent python references of the
authors' models (ref_models.family_features, mae_pos_embed, mocov3_pos_embed, mocov3_lincls_state):
the pooled feature and every block's K and V, max relative difference <= 1e-5. Then the layout's
strictness from the command line, and the family's normalisation rule in a dry run's record."""
import glob
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import torch
from PIL import Image

from common import Checks, parse_args, run
import ref_models as R

a = parse_args()
c = Checks()
S = a.scratch
TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools",
                    "pth_to_safetensors.py")
D, DEPTH, HEADS, GRID = 768, 12, 12, 14

# Two 224x224 images: the loader's resize is the identity, so x is (pixels / 255 - mean) / std.
root = os.path.join(S, "data")
task = os.path.join(root, "fam")
os.makedirs(os.path.join(task, "images"))
rng = np.random.default_rng(0)
pix = [rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8) for _ in range(2)]
for i, img in enumerate(pix):
    Image.fromarray(img).save(os.path.join(task, "images", f"{i}.png"))
for split in ("train800val200", "test"):
    with open(os.path.join(task, split + ".txt"), "w") as f:
        f.writelines(f"images/{i}.png {i}\n" for i in range(2))
mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
x = torch.from_numpy(np.stack([((p / np.float32(255.0)) - mean) / std for p in pix]).transpose(0, 3, 1, 2).copy())


def timm_vit(seed):
    """Random weights of ViT-B/16's tensors under timm names (qkv_bias, final `norm`)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=0.02, one=False):
        return (1.0 if one else 0.0) + torch.randn(*shape, generator=g) * s

    p = {"cls_token": r(1, 1, D), "pos_embed": r(1, GRID * GRID + 1, D), "patch_embed.proj.weight": r(D, 3, 16, 16),
         "patch_embed.proj.bias": r(D), "norm.weight": r(D, s=0.1, one=True), "norm.bias": r(D, s=0.1)}
    for i in range(DEPTH):
        b = f"blocks.{i}."
        p.update({b + "norm1.weight": r(D, s=0.1, one=True), b + "norm1.bias": r(D, s=0.1),
                  b + "attn.qkv.weight": r(3 * D, D), b + "attn.qkv.bias": r(3 * D), b + "attn.proj.weight": r(D, D),
                  b + "attn.proj.bias": r(D), b + "norm2.weight": r(D, s=0.1, one=True), b + "norm2.bias": r(D, s=0.1),
                  b + "mlp.fc1.weight": r(4 * D, D), b + "mlp.fc1.bias": r(4 * D), b + "mlp.fc2.weight": r(D, 4 * D),
                  b + "mlp.fc2.bias": r(D)})
    return p


def convert(name, ckpt, expect_key):
    pth, dst = os.path.join(S, name + ".pth"), os.path.join(S, name + ".safetensors")
    torch.save(ckpt, pth)
    p = subprocess.run([sys.executable, TOOL, pth, dst], capture_output=True, text=True)
    c.check(p.returncode == 0 and f"'{expect_key}' entry" in p.stdout,
            f"{name}: tools/pth_to_safetensors.py takes the state dict from ['{expect_key}'] ({p.stdout.strip()}{p.stderr[-300:]})")
    os.remove(pth)
    return dst


def rel(got, ref):
    got, ref = np.asarray(got, np.float64), ref.double().numpy()
    return np.abs(got - ref).max() / np.abs(ref).max()


def compare(name, backbone, ref_params, global_pool, arch=None):
    out = os.path.join(S, "cache_" + name)
    args = ["cache", "build", "--data-root", root, "--task", "fam", "--backbone", backbone, "--taps", "cls+kv",
            "--splits", "test", "--dtype", "float32", "--out", out, "--threads", "2"]
    run(a.petl, *args, *(["--arch", arch] if arch else []))
    with torch.no_grad():
        feat, kv = R.family_features(ref_params, x, HEADS, DEPTH, global_pool=global_pool)
    (h5,) = glob.glob(os.path.join(out, "*.h5"))
    with h5py.File(h5, "r") as f:
        cls, kvs = f["features/cls"][()], f["features/kv"][()]  # (N, D), (N, L, 2, H, T, D/H)
    e_f = rel(cls, feat)
    e_k = max(rel(kvs[:, l, 0], kv[l][0]) for l in range(DEPTH))
    e_v = max(rel(kvs[:, l, 1], kv[l][1]) for l in range(DEPTH))
    pool = "mean of patch tokens through fc_norm" if global_pool else "cls token after norm"
    print(f"{name}: max relative difference feature {e_f:.3g}, K {e_k:.3g}, V {e_v:.3g} (12 blocks)")
    c.check(cls.shape == (2, D) and e_f <= 1e-5, f"{name}: pooled feature ({pool}) matches the reference ({e_f:.2g})")
    c.check(kvs.shape == (2, DEPTH, 2, HEADS, 197, D // HEADS) and max(e_k, e_v) <= 1e-5,
            f"{name}: every block's K and V match the reference ({max(e_k, e_v):.2g})")
    os.remove(h5)


# ---------------------------------------------------------------- MAE, pre-trained (models_mae checkpoint)
mae = timm_vit(1)
mae["pos_embed"] = R.mae_pos_embed(D, GRID)  # models_mae: fixed sin-cos, saved with the model
full = dict(mae)
full.update({"mask_token": torch.randn(1, 1, 512), "decoder_embed.weight": torch.randn(512, D),
             "decoder_pos_embed": torch.randn(1, 197, 512), "decoder_blocks.0.norm1.weight": torch.ones(512),
             "decoder_norm.weight": torch.ones(512), "decoder_pred.weight": torch.randn(768, 512)})
f_mae = convert("mae_pretrain", {"model": full, "epoch": 799}, "model")
compare("mae_pretrain", f_mae, mae, False, arch="vit_base_patch16_224_mae")

# ---------------------------------------------------------------- MAE, fine-tuned (global pool, fc_norm)
ft = timm_vit(2)
ft["fc_norm.weight"], ft["fc_norm.bias"] = ft.pop("norm.weight"), ft.pop("norm.bias")
ft.update({"head.weight": torch.randn(1000, D) * 0.01, "head.bias": torch.zeros(1000)})
f_ft = convert("mae_finetune", {"model": ft, "epoch": 99, "scaler": {"scale": 1.0}}, "model")
compare("mae_finetune", f_ft, ft, True)  # no --arch: the fc_norm marker names vit_base_patch16_224_mae_gap

# ---------------------------------------------------------------- MoCo v3 (state_dict of the DDP-wrapped MoCo)
enc = timm_vit(3)
enc["pos_embed"] = R.mocov3_pos_embed(D, GRID, GRID)
sd = {"module.base_encoder." + k: v for k, v in enc.items()}
sd.update({"module.base_encoder.head.0.weight": torch.randn(64, D), "module.base_encoder.head.1.running_mean":
           torch.zeros(64), "module.base_encoder.head.1.num_batches_tracked": torch.tensor(5),
           "module.momentum_encoder.cls_token": torch.randn(1, 1, D),
           "module.momentum_encoder.blocks.0.attn.qkv.weight": torch.randn(3 * D, D),
           "module.momentum_encoder.head.0.weight": torch.randn(64, D), "module.predictor.0.weight": torch.randn(64, 32)})
f_moco = convert("mocov3", {"epoch": 300, "arch": "vit_base", "state_dict": sd, "optimizer": {"param_groups": []}},
                 "state_dict")
compare("mocov3", f_moco, R.mocov3_lincls_state(sd), False, arch="vit_base_patch16_224_mocov3")

# ---------------------------------------------------------------- strictness: the key is named
bad = os.path.join(S, "bad.safetensors")
R.write_safetensors(bad, {"base_encoder.cls_token": torch.zeros(1, 1, D), "momentum_encoder2.cls_token": torch.zeros(3)})
p = run(a.petl, "cache", "build", "--data-root", root, "--task", "fam", "--backbone", bad, "--arch",
        "vit_base_patch16_224_mocov3", "--splits", "test", "--taps", "cls", "--out", os.path.join(S, "c_bad"),
        expect=None)
c.check(p.returncode != 0 and "momentum_encoder2.cls_token" in p.stderr and "base_encoder." in p.stderr,
        "a MoCo v3 file with a tensor outside its layout: the error names it (no suffix matching)")
# ---------------------------------------------------------------- normalisation: the family's unless set
for arch, extra, want in [("vit_base_patch16_224_mae", [], "imagenet"),
                          ("vit_base_patch16_224_mae", ["--set", "normalisation=inception"], "inception"),
                          ("vit_base_patch16_224_in21k", [], "inception")]:
    rf = os.path.join(S, "record.json")
    if os.path.exists(rf):
        os.remove(rf)
    run(a.petl, "run", "--method", "linear", "--task", "fam", "--data-root", root, "--arch", arch, "--recipe", "ssf",
        "--dry-run", "--record-file", rf, "--threads", "1", *extra)
    r = json.loads(open(rf).read().splitlines()[-1])
    got = r["settings"]["recipe"]["normalisation"]
    c.check(got == want and ("family" in r["backbone"]) == ("mae" in arch),
            f"{arch} {' '.join(extra)} under the ssf recipe (inception): normalisation {got}, expected {want}")
p = run(a.petl, "list")
c.check(all(n in p.stdout for n in ["vit_base_patch16_224_mae ", "vit_base_patch16_224_mae_gap", "mocov3_pretrain"]),
        "petl list shows the new families with their layouts")
c.done()

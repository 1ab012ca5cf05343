"""Backbone families (issue 30): OpenAI CLIP ViT-B/16's image tower and DINOv2 ViT-B/14 (with and
without 4 registers) in their authors' checkpoint layouts, as people download them (random weights of
the real shapes): CLIP as a TorchScript archive holding the text tower too, DINOv2 as its plain state
dict with mask_token and the 518-px position embedding. Each is converted with
tools/pth_to_safetensors.py, read by `petl cache build` (float32 cls + K/V taps; the architecture
found from the layout's marker tensor, no --arch) and compared with independent transcriptions of the
authors' models (ref_models.ClipVisual, ref_models.Dinov2): the pooled feature and every block's K and
V, max relative difference <= 1e-5. DINOv2's position embeddings are resampled 37x37 -> 16x16 both
ways: timm's default (ref_models.timm_resample_abs_pos_embed) and, with --pos-resample dinov2,
DINOv2's own interpolate_pos_encoding (offset 0.1, no antialias). Then records (family, normalisation,
resampling), a parameter count against the references, and the layouts' strictness."""
import glob
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from common import Checks, parse_args, run
import ref_models as R

a = parse_args()
c = Checks()
S = a.scratch
TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools",
                    "pth_to_safetensors.py")
D, DEPTH, HEADS = 768, 12, 12
torch.manual_seed(0)

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


def images(mean, std):
    mean, std = np.array(mean, np.float32), np.array(std, np.float32)
    return torch.from_numpy(np.stack([((p / np.float32(255.0)) - mean) / std for p in pix]).transpose(0, 3, 1, 2).copy())


x_imagenet = images([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
x_clip = images([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])


def convert(name, src, expect_out):
    dst = os.path.join(S, name + ".safetensors")
    p = subprocess.run([sys.executable, TOOL, src, dst], capture_output=True, text=True)
    c.check(p.returncode == 0 and expect_out in p.stdout,
            f"{name}: tools/pth_to_safetensors.py converts it ({p.stdout.strip()}{p.stderr[-300:]})")
    return dst


def rel(got, ref):
    got, ref = np.asarray(got, np.float64), ref.double().numpy()
    return np.abs(got - ref).max() / np.abs(ref).max()


def petl_features(name, backbone, norm, *extra):
    out = os.path.join(S, "cache_" + name)
    run(a.petl, "cache", "build", "--data-root", root, "--task", "fam", "--backbone", backbone, "--taps", "cls+kv",
        "--splits", "test", "--dtype", "float32", "--normalisation", norm, "--out", out, "--threads", "2", *extra)
    (h5,) = glob.glob(os.path.join(out, "*.h5"))
    with h5py.File(h5, "r") as f:
        cls, kvs = f["features/cls"][()], f["features/kv"][()]
        attrs = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in f.attrs.items()}
    return cls, kvs, attrs


def compare(name, got, ref_feat, ref_kv, tokens):
    cls, kvs, _ = got
    e_f = rel(cls, ref_feat)
    e_k = max(rel(kvs[:, l, 0], ref_kv[l][0]) for l in range(DEPTH))
    e_v = max(rel(kvs[:, l, 1], ref_kv[l][1]) for l in range(DEPTH))
    print(f"{name}: max relative difference feature {e_f:.3g}, K {e_k:.3g}, V {e_v:.3g} (12 blocks, {tokens} tokens)")
    c.check(cls.shape == (2, D) and e_f <= 1e-5, f"{name}: pooled feature matches the reference ({e_f:.2g})")
    c.check(kvs.shape == (2, DEPTH, 2, HEADS, tokens, D // HEADS) and max(e_k, e_v) <= 1e-5,
            f"{name}: every block's K and V match the reference ({max(e_k, e_v):.2g}, shape {kvs.shape})")


# ---------------------------------------------------------------- CLIP ViT-B/16 (OpenAI TorchScript archive)
class Clip(nn.Module):
    """The parts of openai/CLIP model.py CLIP whose names the file holds: the image tower under
    visual., a (shrunk) text tower beside it, logit_scale."""

    def __init__(self):
        super().__init__()
        self.visual = R.ClipVisual()
        self.transformer = R.ClipTransformer(64, 1, 2)
        self.token_embedding = nn.Embedding(100, 64)
        self.positional_embedding = nn.Parameter(torch.randn(77, 64))
        self.ln_final = nn.LayerNorm(64)
        self.text_projection = nn.Parameter(torch.randn(64, 512))
        self.logit_scale = nn.Parameter(torch.ones([]) * 4.6)

    def forward(self, image):
        return self.visual(image)


clip = Clip().eval()
R.clip_init_(clip.visual, 1)
clip_pt = os.path.join(S, "ViT-B-16.pt")
with torch.no_grad():
    torch.jit.trace(clip, x_clip).save(clip_pt)
    ref_f, ref_kv = clip.visual.features(x_clip)
f_clip = convert("clip", clip_pt, "TorchScript")
got = petl_features("clip", f_clip, "clip")
compare("clip_openai", got, ref_f, ref_kv, 197)

# ---------------------------------------------------------------- DINOv2 ViT-B/14, with and without registers
for regs in (0, 4):
    name = f"dinov2_reg{regs}" if regs else "dinov2"
    m = R.Dinov2(registers=regs).eval()
    R.dinov2_init_(m, 2 + regs)
    pth = os.path.join(S, name + ".pth")
    torch.save(m.state_dict(), pth)  # dinov2_vitb14*_pretrain.pth: the plain state dict
    f = convert(name, pth, "wrote")
    tokens = 1 + regs + 256
    with torch.no_grad():
        own_f, own_kv = m.features(x_imagenet)  # DINOv2's interpolate_pos_encoding at 224 px
        timm_m = R.Dinov2(registers=regs).eval()
        timm_m.load_state_dict(m.state_dict())
        timm_m.pos_embed = nn.Parameter(R.timm_resample_abs_pos_embed(m.pos_embed, (16, 16)))
        timm_f, timm_kv = timm_m.features(x_imagenet)
    got = petl_features(name, f, "imagenet")
    compare(f"{name} (timm resampling, the default)", got, timm_f, timm_kv, tokens)
    c.check(got[2].get("pos_resample") is None, f"{name}: a timm-resampled cache has no pos_resample attribute")
    got_own = petl_features(name + "_own", f, "imagenet", "--pos-resample", "dinov2")
    compare(f"{name} (--pos-resample dinov2)", got_own, own_f, own_kv, tokens)
    c.check(got_own[2].get("pos_resample") == "dinov2", f"{name}: the dinov2-resampled cache says so in its identity")
    gap = rel(timm_f, own_f)
    c.check(gap > 1e-4, f"{name}: the two resamplings give other features ({gap:.2g}), so each test tells them apart")
    if not regs:  # timm's file of the same model: its names, no mask_token; --arch says which
        sd = {k: v for k, v in m.state_dict().items() if k != "mask_token"}
        tf = os.path.join(S, "dinov2_timm.safetensors")
        R.write_safetensors(tf, sd)
        got_t = petl_features("dinov2_timm", tf, "imagenet", "--arch", "vit_base_patch14_dinov2")
        c.check(np.array_equal(got_t[0], got[0]), "DINOv2 in timm's layout (--arch) gives the same features")
        f_dino = f

# ---------------------------------------------------------------- records: family, normalisation, resampling
def dry_record(*args):
    rf = os.path.join(S, "record.json")
    if os.path.exists(rf):
        os.remove(rf)
    run(a.petl, "run", "--method", "linear", "--task", "fam", "--data-root", root, "--dry-run", "--record-file", rf,
        "--threads", "1", *args)
    return json.loads(open(rf).read().splitlines()[-1])


r = dry_record("--backbone", f_clip)
c.check(r["settings"]["recipe"]["normalisation"] == "clip" and r["backbone"].get("family") == "clip" and
        r["backbone"].get("layout") == "clip_openai" and r["backbone"]["arch"] == "vit_base_patch16_clip_224",
        f"a CLIP job: the family's normalisation (clip), family and layout recorded ({r['backbone']})")
n_ref = sum(p.numel() for p in clip.visual.parameters()) - clip.visual.proj.numel()
c.check(r.get("backbone_params") == n_ref,
        f"CLIP: petl's backbone parameter count {r.get('backbone_params')} equals the reference tower's without proj {n_ref}")
r = dry_record("--backbone", f_dino, "--pos-resample", "dinov2")
pr = r["backbone"].get("pos_embed_resampled", {})
c.check(r["backbone"].get("family") == "dinov2" and pr == {"from_grid": 37, "to_grid": 16, "method": "dinov2"} and
        r["settings"]["recipe"]["normalisation"] == "imagenet",
        f"a DINOv2 job records the resampling 37 -> 16 and its method ({pr})")
r2 = dry_record("--backbone", f_dino)
c.check(r2.get("job_key") and r.get("job_key") and r2["job_key"] != r["job_key"] and
        r2["backbone"]["pos_embed_resampled"]["method"] == "timm",
        "the job key differs between the two resamplings; the default is timm's")

# ---------------------------------------------------------------- strictness: the key is named
bad = os.path.join(S, "bad_clip.safetensors")
sd, _ = R.read_safetensors(f_clip)
sd["visual.ln_mid.weight"] = torch.zeros(D)
R.write_safetensors(bad, sd)
p = run(a.petl, "cache", "build", "--data-root", root, "--task", "fam", "--backbone", bad, "--splits", "test",
        "--taps", "cls", "--normalisation", "clip", "--out", os.path.join(S, "c_bad"), expect=None)
c.check(p.returncode != 0 and "ln_mid.weight" in p.stderr, f"a CLIP file with a stray visual tensor: named ({p.stderr[-200:]})")
p = run(a.petl, "list")
c.check(all(n in p.stdout for n in ["vit_base_patch16_clip_224", "vit_base_patch14_dinov2", "vit_base_patch14_reg4_dinov2",
                                    "clip_openai", "dinov2_original"]),
        "petl list shows CLIP and DINOv2 with their layouts")
c.done()

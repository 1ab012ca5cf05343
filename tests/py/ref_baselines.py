"""Independent Python (Debian python3-torch) implementations of the baseline PETL methods, written
from the reference codes' formulas (docs/spec/baselines.md and the repositories named in each
methods/*.cpp header), in eval mode (no dropout, no drop path). Used by tests/test_baselines.cpp:
the C++ test writes <dir>/<method>.safetensors with the backbone (backbone.*), the method's
trainable tensors (method.* under the reference names; bitfit's live in backbone.*), the input
and the C++ logits; this script recomputes the logits and fails when they differ.

usage: ref_baselines.py --dir DIR
"""
import argparse
import glob
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_models import finish, read_safetensors  # noqa: E402


def ln(x, p, name, eps=1e-6):
    return F.layer_norm(x, (x.shape[-1],), p[name + ".weight"], p[name + ".bias"], eps)


def lin(x, p, name, bias=True):
    return F.linear(x, p[name + ".weight"], p.get(name + ".bias") if bias else None)


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class Vit:
    """timm 0.4.12 ViT written out token by token, with the places where the reference codes
    change a block exposed as plain callables (all default to "no change")."""

    def __init__(self, p, heads, depth, patch):
        self.p, self.heads, self.depth, self.patch = p, heads, depth, patch

    def embed(self, x, ssf_patch=None):
        p = self.p
        t = F.conv2d(x, p["patch_embed.proj.weight"], p["patch_embed.proj.bias"], stride=self.patch)
        t = t.flatten(2).transpose(1, 2)
        if ssf_patch is not None:
            t = ssf_patch(t)
        B = t.shape[0]
        return torch.cat([p["cls_token"].expand(B, -1, -1), t], 1) + p["pos_embed"]

    def block(self, i, t, m=None):
        m = m or {}
        p, H = self.p, self.heads
        b = f"blocks.{i}."
        B, N, D = t.shape
        ss = m.get("ssf", lambda name: (lambda z: z))
        h = ss("norm1")(ln(t, p, b + "norm1"))
        qkv = lin(h, p, b + "attn.qkv")
        if "qkv_delta" in m:
            qkv = qkv + m["qkv_delta"](h)
        qkv = ss("qkv")(qkv)
        qkv = qkv.reshape(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if "kv" in m:
            m["kv"](k, v)
        a = ((q @ k.transpose(-2, -1)) * (D // H) ** -0.5).softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(B, N, D)
        pr = lin(o, p, b + "attn.proj")
        if "proj_delta" in m:
            pr = pr + m["proj_delta"](o)
        pr = ss("proj")(pr)
        x = t + pr
        if "attn_bypass" in m:
            x = x + m["attn_bypass"](h)
        h2 = ss("norm2")(ln(x, p, b + "norm2"))
        f1 = lin(h2, p, b + "mlp.fc1")
        if "fc1_delta" in m:
            f1 = f1 + m["fc1_delta"](h2)
        g = F.gelu(ss("fc1")(f1))
        f2 = lin(g, p, b + "mlp.fc2")
        if "fc2_delta" in m:
            f2 = f2 + m["fc2_delta"](g)
        f2 = ss("fc2")(f2)
        if "after_mlp" in m:
            f2 = m["after_mlp"](f2)
        out = x + f2
        if "mlp_bypass" in m:
            out = out + m["mlp_bypass"](x, h2)
        return out

    def norm(self, z):
        return ln(z, self.p, "norm")


def split(tensors):
    bb = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
    me = {k[len("method."):]: v for k, v in tensors.items() if k.startswith("method.")}
    return bb, me


def head(me, z):
    return F.linear(z, me["head.weight"], me["head.bias"])


def plain(vit, x, per_block=None, ssf_patch=None, final=None):
    t = vit.embed(x, ssf_patch)
    for i in range(vit.depth):
        t = vit.block(i, t, per_block(i) if per_block else None)
    z = vit.norm(t[:, 0])
    return final(z) if final else z


def m_bitfit(vit, me, x, s):
    return F.linear(plain(vit, x), me["head.weight"], me["head.bias"])


def m_vpt(vit, me, x, s, deep):
    n = int(s["num_tokens"])
    t = vit.embed(x)
    B = t.shape[0]
    t = torch.cat([t[:, :1], me["prompt_embeddings"].expand(B, -1, -1), t[:, 1:]], 1)
    for i in range(vit.depth):
        if deep and i > 0:
            t = torch.cat([t[:, :1], me["deep_prompt_embeddings"][i - 1].expand(B, -1, -1), t[:, 1 + n:]], 1)
        t = vit.block(i, t)
    return head(me, vit.norm(t[:, 0]))


def m_adapter(vit, me, x, s):
    def pb(i):
        a = f"blocks.{i}.adapter."
        return {"after_mlp": lambda z: z + lin(quick_gelu(lin(z, me, a + "ln1")), me, a + "ln2")}
    return head(me, plain(vit, x, pb))


def m_adaptformer(vit, me, x, s):
    sc = float(s["ffn_adapter_scalar"])

    def pb(i):
        a = f"blocks.{i}.adaptmlp."
        return {"mlp_bypass": lambda xx, h2: lin(F.relu(lin(xx, me, a + "down_proj")), me, a + "up_proj") * sc}
    return bn_head(me, plain(vit, x, pb), s)


def bn_head(me, z, s):
    """MAE main_linprobe.py's head (AdaptFormer's main_image.py keeps it): BatchNorm1d(D, affine=False,
    eps=1e-6), Linear. Eval: running statistics; training (s["_train"]): the batch's (biased
    variance), running ones updated (momentum 0.1, unbiased variance) as torch.nn.BatchNorm1d does."""
    if s.get("_train"):
        mean, var = z.mean(0), z.var(0, unbiased=False)
        with torch.no_grad():
            me["head.0.running_mean"].mul_(0.9).add_(0.1 * mean)
            me["head.0.running_var"].mul_(0.9).add_(0.1 * z.var(0, unbiased=True))
        z = (z - mean) / torch.sqrt(var + 1e-6)
    else:
        z = (z - me["head.0.running_mean"]) / torch.sqrt(me["head.0.running_var"] + 1e-6)
    return F.linear(z, me["head.1.weight"], me["head.1.bias"])


def m_mae_linprobe(vit, me, x, s):
    """MAE's linear probe: the frozen cls token after the final norm into bn_head."""
    return bn_head(me, plain(vit, x), s)


def m_lora(vit, me, x, s):
    def pb(i):
        a = f"blocks.{i}.attn."
        return {"qkv_delta": lambda h: F.linear(F.linear(h, me[a + "LoRA_a.weight"]), me[a + "LoRA_b.weight"])}
    return head(me, plain(vit, x, pb))


def m_ssf(vit, me, x, s):
    def aff(path, k):
        return lambda z: z * me[f"{path}ssf_scale_{k}"] + me[f"{path}ssf_shift_{k}"]

    def pb(i):
        b = f"blocks.{i}."
        table = {"norm1": aff(b, 1), "norm2": aff(b, 2), "qkv": aff(b + "attn.", 1), "proj": aff(b + "attn.", 2),
                 "fc1": aff(b + "mlp.", 1), "fc2": aff(b + "mlp.", 2)}
        return {"ssf": lambda name: table[name]}
    patch = lambda z: z * me["patch_embed.ssf_scale_1"] + me["patch_embed.ssf_shift_1"]  # noqa: E731
    z = plain(vit, x, pb, ssf_patch=patch)
    return head(me, z * me["ssf_scale_1"] + me["ssf_shift_1"])


def m_convpass(vit, me, x, s):
    sc = float(s["scale"])

    def conv_bypass(a, z):
        B, N, _ = z.shape
        g = int(math.isqrt(N - 1))
        d = quick_gelu(lin(z, me, a + "adapter_down"))
        r = d.shape[-1]
        w, b = me[a + "adapter_conv.weight"], me[a + "adapter_conv.bias"]
        pt = F.conv2d(d[:, 1:].reshape(B, g, g, r).permute(0, 3, 1, 2), w, b, padding=1)
        pt = pt.permute(0, 2, 3, 1).reshape(B, g * g, r)
        cl = F.conv2d(d[:, :1].reshape(B, 1, 1, r).permute(0, 3, 1, 2), w, b, padding=1)
        cl = cl.permute(0, 2, 3, 1).reshape(B, 1, r)
        return lin(quick_gelu(torch.cat([cl, pt], 1)), me, a + "adapter_up")

    def pb(i):
        b = f"blocks.{i}."
        return {"attn_bypass": lambda h: conv_bypass(b + "adapter_attn.", h) * sc,
                "mlp_bypass": lambda xx, h2: conv_bypass(b + "adapter_mlp.", h2) * sc}
    return head(me, plain(vit, x, pb))


def m_fact_tt(vit, me, x, s):
    sc, r = float(s["fact_scale"]), int(s["fact_dim"])
    U = lambda z: F.linear(z, me["FacTu.weight"])  # noqa: E731
    V = lambda z: F.linear(z, me["FacTv.weight"])  # noqa: E731

    def pb(i):
        a, m = f"blocks.{i}.attn.", f"blocks.{i}.mlp."
        c = lambda name, z: F.linear(z, me[name + ".weight"])  # noqa: E731

        def qkv(h):
            u = U(h)
            return torch.cat([V(c(a + "q_FacTs", u)), V(c(a + "k_FacTs", u)), V(c(a + "v_FacTs", u))], 2) * sc

        def fc1(h):
            B, N, C = h.shape
            return V(c(m + "fc1_FacTs", U(h)).reshape(B, N, 4, r)).reshape(B, N, 4 * C) * sc

        def fc2(g):
            B, N, C4 = g.shape
            return V(c(m + "fc2_FacTs", U(g.reshape(B, N, 4, C4 // 4)).reshape(B, N, 4 * r))) * sc
        return {"qkv_delta": qkv, "proj_delta": lambda o: V(c(a + "proj_FacTs", U(o))) * sc,
                "fc1_delta": fc1, "fc2_delta": fc2}
    return head(me, plain(vit, x, pb))


def m_fact_tk(vit, me, x, s):
    sc, r = float(s["fact_scale"]), int(s["fact_dim"])
    U = lambda z: F.linear(z, me["FacTu.weight"])  # noqa: E731
    V = lambda z: F.linear(z, me["FacTv.weight"])  # noqa: E731
    Pm, Cc = me["FacTp"], me["FacTc"]

    def pb(i):
        ca = Cc @ Pm[:, 12 * i:12 * i + 4]        # (r, r, 4): q, k, v, proj
        cm = Cc @ Pm[:, 12 * i + 4:12 * i + 12]   # (r, r, 8): fc1 (4), fc2 (4)
        fc1c = cm[:, :, :4].reshape(r, 4 * r)
        fc2c = cm[:, :, 4:].reshape(r, 4 * r)

        def qkv(h):
            u = U(h)
            return torch.cat([V(u @ ca[:, :, 0]), V(u @ ca[:, :, 1]), V(u @ ca[:, :, 2])], 2) * sc

        def fc1(h):
            B, N, C = h.shape
            return V((U(h) @ fc1c).reshape(B, N, 4, r)).reshape(B, N, 4 * C) * sc

        def fc2(g):
            B, N, C4 = g.shape
            return V(U(g.reshape(B, N, 4, C4 // 4)).reshape(B, N, 4 * r) @ fc2c.t()) * sc
        return {"qkv_delta": qkv, "proj_delta": lambda o: V(U(o) @ ca[:, :, 3]) * sc,
                "fc1_delta": fc1, "fc2_delta": fc2}
    return head(me, plain(vit, x, pb))


def m_dtl(vit, me, x, s, plus):
    start = int(s["dtl_first_side_block"])
    beta = float(s["dtl_beta"])
    t = vit.embed(x)
    R = 0
    for i in range(vit.depth):
        A, Bm = me[f"lora_dict.{i}.lora_A"], me[f"lora_dict.{i}.lora_B"]
        R = R + (t @ A.t()) @ Bm.t()
        t = vit.block(i, t)
        if i >= start:
            g = R * torch.sigmoid(beta * R)
            if plus:
                B, N, D = g.shape
                gr = int(math.isqrt(N - 1))
                img = g[:, 1:].transpose(1, 2).reshape(B, D, gr, gr)
                img = F.conv2d(img, me["lora_fusion.weight"], None, padding="same", groups=D)
                g = torch.cat([g[:, :1], img.flatten(2).transpose(1, 2)], 1)
            t = t + g
    return head(me, vit.norm(t[:, 1:].mean(1)))


def m_vqt(vit, me, x, s):
    Q = me["query_prompt_embeddings"]
    T = Q.shape[1]
    p, H = vit.p, vit.heads
    t = vit.embed(x)
    B, N, D = t.shape
    feats = []
    for i in range(vit.depth):
        b = f"blocks.{i}."
        seq = torch.cat([Q[i].expand(B, -1, -1), t], 1)  # queries prepended before cls
        h = ln(seq, p, b + "norm1")
        qkv = lin(h, p, b + "attn.qkv").reshape(B, T + N, 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1][:, :, T:], qkv[2][:, :, T:]  # keys / values of the image tokens only
        a = ((q @ k.transpose(-2, -1)) * (D // H) ** -0.5).softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(B, T + N, D)
        seq = seq + lin(o, p, b + "attn.proj")
        seq = seq + lin(F.gelu(lin(ln(seq, p, b + "norm2"), p, b + "mlp.fc1")), p, b + "mlp.fc2")
        feats.append(F.normalize(seq[:, :T].reshape(B, T * D), dim=-1))
        t = seq[:, T:]
    cls = F.normalize(vit.norm(t[:, 0]), dim=-1)
    return head(me, torch.cat([cls] + feats, 1))


def m_lst(vit, me, x, s):
    temp = float(s["gate_temperature"])
    t = vit.embed(x)
    hs = [t]
    for i in range(vit.depth):
        t = vit.block(i, t)
        hs.append(t)
    d = me["side_norm.weight"].shape[0]
    heads = vit.heads if d % vit.heads == 0 else 1
    side = Vit(me, heads, vit.depth, vit.patch)
    h = lin(hs[0], me, "side_downsamples.0")
    g = torch.sigmoid(me["side_gates"] / temp)
    for i in range(vit.depth):
        sb = {k.replace(f"side_blocks.{i}.", f"blocks.{i}.", 1): v for k, v in me.items() if k.startswith(f"side_blocks.{i}.")}
        side.p = sb
        h = g[i] * side.block(i, h) + (1 - g[i]) * lin(hs[i + 1], me, f"side_downsamples.{i + 1}")
    return head(me, ln(h[:, 0], me, "side_norm"))


METHODS = {
    "bitfit": m_bitfit,
    "vpt_shallow": lambda v, m, x, s: m_vpt(v, m, x, s, False),
    "vpt_deep": lambda v, m, x, s: m_vpt(v, m, x, s, True),
    "adapter": m_adapter,
    "adaptformer": m_adaptformer,
    "mae_linprobe": m_mae_linprobe,
    "lora": m_lora,
    "ssf": m_ssf,
    "convpass": m_convpass,
    "fact_tt": m_fact_tt,
    "fact_tk": m_fact_tk,
    "dtl": lambda v, m, x, s: m_dtl(v, m, x, s, False),
    "dtl_plus": lambda v, m, x, s: m_dtl(v, m, x, s, True),
    "vqt": m_vqt,
    "lst": m_lst,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.dir, "*.safetensors")))
    bad = 0
    seen = set()
    for f in files:
        tensors, meta = read_safetensors(f)
        name = meta["method"]
        seen.add(name)
        bb, me = split(tensors)
        vit = Vit(bb, int(meta["heads"]), int(meta["depth"]), int(meta["patch"]))
        settings = json.loads(meta["settings"])
        with torch.no_grad():
            ref = METHODS[name](vit, me, tensors["input"], settings)
        got = tensors["logits"]
        diff = ((got - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()
        ok = got.shape == ref.shape and diff < 1e-5
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {name:12s} logits {tuple(got.shape)} max relative difference {diff:.2e}")
    finish(METHODS, seen, bad)


if __name__ == "__main__":
    main()

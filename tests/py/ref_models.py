"""Reference computations in Debian's python3-torch, written independently of petl's C++:
timm 0.4.12 ViT forward (LayerNorm eps 1e-6, exact GELU, [q|k|v], scale (D/H)^-1/2) and the SynQT
forward of taolinzhang/SynQT synqt.py (eval mode: no dropout / drop path). Parameters are read
from safetensors files by the tiny reader below (the safetensors package is not in Debian).
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

_DT = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
       "U8": np.uint8, "I8": np.int8, "I16": np.int16, "BOOL": np.bool_}


def finish(methods, seen, bad):
    """The reference scripts' end: C++ outputs missing for some method count as failures; exit 1
    when anything failed."""
    missing = set(methods) - seen
    if missing:
        print("missing C++ outputs for:", ", ".join(sorted(missing)))
        bad += len(missing)
    sys.exit(1 if bad else 0)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        arr = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=_DT[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(arr.copy())
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    names = sorted(tensors)
    header, blobs, off = {}, [], 0
    for k in names:
        a = tensors[k].detach().cpu().contiguous().numpy().astype(np.float32)
        b = a.tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def vit_tokens(p, x, heads, depth, hook=None):
    """Tokens after every block (before the final norm), timm 0.4.12 math."""
    B = x.shape[0]
    w = p["patch_embed.proj.weight"]
    t = F.conv2d(x, w, p["patch_embed.proj.bias"], stride=w.shape[-1]).flatten(2).transpose(1, 2)
    t = torch.cat([p["cls_token"].expand(B, -1, -1), t], 1) + p["pos_embed"]
    D = t.shape[-1]
    for i in range(depth):
        b = f"blocks.{i}."
        h = F.layer_norm(t, (D,), p[b + "norm1.weight"], p[b + "norm1.bias"], 1e-6)
        qkv = F.linear(h, p[b + "attn.qkv.weight"], p[b + "attn.qkv.bias"])
        N = t.shape[1]
        qkv = qkv.reshape(B, N, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if hook is not None:
            hook(i, k, v)
        a = ((q @ k.transpose(-2, -1)) * (D // heads) ** -0.5).softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(B, N, D)
        t = t + F.linear(o, p[b + "attn.proj.weight"], p[b + "attn.proj.bias"])
        h = F.layer_norm(t, (D,), p[b + "norm2.weight"], p[b + "norm2.bias"], 1e-6)
        h = F.linear(F.gelu(F.linear(h, p[b + "mlp.fc1.weight"], p[b + "mlp.fc1.bias"])),
                     p[b + "mlp.fc2.weight"], p[b + "mlp.fc2.bias"])
        t = t + h
    return t


def vit_cls(p, x, heads, depth):
    t = vit_tokens(p, x, heads, depth)
    D = t.shape[-1]
    return F.layer_norm(t[:, 0], (D,), p["norm.weight"], p["norm.bias"], 1e-6)


def _adapter(s, pre, u):  # u + fc2(gelu(fc1(u)))
    return u + F.linear(F.gelu(F.linear(u, s[pre + "mlp.fc1.weight"], s[pre + "mlp.fc1.bias"])),
                        s[pre + "mlp.fc2.weight"], s[pre + "mlp.fc2.bias"])


def _ln(s, pre, u, eps=1e-5):
    return F.layer_norm(u, (u.shape[-1],), s[pre + ".weight"], s[pre + ".bias"], eps)


def synqt_logits(p, s, x, heads, depth):
    """p: backbone tensors (timm names); s: SynQT tensors (reference names, incl. head.*)."""
    B = x.shape[0]
    kv = {}
    vit_tokens(p, x, heads, depth, hook=lambda i, k, v: kv.__setitem__(i, (k, v)))
    D = p["pos_embed"].shape[-1]
    z, hs, hhs = [], [], []
    for i in range(depth):
        b = f"blocks.{i}."
        pr = s["synqt.q"][i].unsqueeze(0).expand(B, -1, -1)
        if i > 0:
            pr = pr + z[-1] * s["synqt.feat_scale"]
        pr = _adapter(s, f"synqt.prompt_ffn.{i}.", pr)
        qb = f"synqt.qsm_block.{i}."
        u = _ln(s, qb + "norm1", pr)
        q = _adapter(s, qb + "attn.q_proj.", _ln(s, qb + "attn.q_norm", u))
        kvn = _ln(s, qb + "attn.kv_norm", u)
        k2, v2 = _adapter(s, qb + "attn.k_proj.", kvn), _adapter(s, qb + "attn.v_proj.", kvn)
        att = ((q @ k2.transpose(-2, -1)) * D ** -0.5).softmax(-1)
        pr = pr + _adapter(s, qb + "attn.proj.", att @ v2) * s[qb + "attn_scale"]
        pr = pr + _adapter(s, qb + "mlp.", _ln(s, qb + "norm2", pr)) * s[qb + "ffn_scale"]
        # KEM: query-only attention against the block's own K/V
        T = pr.shape[1]
        hq = F.layer_norm(pr, (D,), p[b + "norm1.weight"], p[b + "norm1.bias"], 1e-6)
        qq = F.linear(hq, p[b + "attn.qkv.weight"], p[b + "attn.qkv.bias"]).reshape(B, T, 3, heads, D // heads)
        qq = qq.permute(2, 0, 3, 1, 4)[0]
        k, v = kv[i]
        a = ((qq @ k.transpose(-2, -1)) * (D // heads) ** -0.5).softmax(-1)
        h = F.linear((a @ v).transpose(1, 2).reshape(B, T, D), p[b + "attn.proj.weight"], p[b + "attn.proj.bias"])
        pr = pr + h
        hh = F.layer_norm(pr, (D,), p[b + "norm2.weight"], p[b + "norm2.bias"], 1e-6)
        hh = F.linear(F.gelu(F.linear(hh, p[b + "mlp.fc1.weight"], p[b + "mlp.fc1.bias"])),
                      p[b + "mlp.fc2.weight"], p[b + "mlp.fc2.bias"])
        pr = pr + hh
        if T > 1:
            pr, h, hh = pr.mean(1, keepdim=True), h.mean(1, keepdim=True), hh.mean(1, keepdim=True)
        z.append(pr)
        hs.append(h)
        hhs.append(hh)
    feat = torch.cat([z[-1]] + z + hs + hhs, 1)
    g = feat + _adapter(s, "synqt.mlp.", _ln(s, "synqt.out_norm", feat))
    w = torch.tanh(F.gelu(F.linear(g[:, 0], s["synqt.out_combine.get_weight.fc1.weight"],
                                   s["synqt.out_combine.get_weight.fc1.bias"])))
    w = torch.cat([torch.ones(B, 1, dtype=w.dtype), w], 1)
    zz = (w.unsqueeze(-1) * g).mean(1)
    zz = _ln(s, "synqt.head_norm", zz)
    return F.linear(zz, s["head.weight"], s["head.bias"])

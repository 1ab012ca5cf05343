"""Reference computations in Debian's python3-torch, written independently of petl's C++:
timm 0.4.12 ViT forward (LayerNorm eps 1e-6, exact GELU, [q|k|v], scale (D/H)^-1/2) and the SynQT
forward of taolinzhang/SynQT synqt.py (eval mode: no dropout / drop path), the MAE / MoCo v3 encoders,
OpenAI CLIP's image tower and DINOv2 (transcribed from the authors' model files, their parameter
names), and timm 0.9.16's position-embedding resampling. Parameters are read
from safetensors files by the tiny reader below (the safetensors package is not in Debian).
"""
import json
import math
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
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


# ---------------------------------------------------------------- backbone families (issue 30)
# Written from the authors' sources, not from petl: facebookresearch/mae (models_vit.py, models_mae.py,
# util/pos_embed.py, main_linprobe.py) and facebookresearch/moco-v3 (vits.py, moco/builder.py,
# main_lincls.py). Both build timm's VisionTransformer blocks (qkv_bias, LayerNorm eps 1e-6), whose
# math vit_tokens above follows.

def _sincos_1d_mae(dim, pos):
    """util/pos_embed.py get_1d_sincos_pos_embed_from_grid: [sin | cos] of pos * omega, float64."""
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def mae_pos_embed(dim, grid, cls_token=True):
    """util/pos_embed.py get_2d_sincos_pos_embed: meshgrid(w, h), h half first, a zero cls row."""
    gh = np.arange(grid, dtype=np.float32)
    gw = np.arange(grid, dtype=np.float32)
    g = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, grid, grid)
    emb = np.concatenate([_sincos_1d_mae(dim // 2, g[0]), _sincos_1d_mae(dim // 2, g[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
    return torch.from_numpy(emb).float().unsqueeze(0)


def mocov3_pos_embed(dim, h, w, temperature=10000.0):
    """vits.py build_2d_sincos_position_embedding: meshgrid(grid_w, grid_h) ('ij'), [sin w | cos w |
    sin h | cos h] with dim // 4 frequencies each, a zero cls row."""
    gw, gh = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="ij")
    pd = dim // 4
    omega = 1.0 / (temperature ** (torch.arange(pd, dtype=torch.float32) / pd))
    ow = torch.einsum("m,d->md", gw.flatten(), omega)
    oh = torch.einsum("m,d->md", gh.flatten(), omega)
    pe = torch.cat([torch.sin(ow), torch.cos(ow), torch.sin(oh), torch.cos(oh)], dim=1)[None]
    return torch.cat([torch.zeros(1, 1, dim), pe], dim=1)


def mocov3_lincls_state(sd):
    """main_lincls.py: keep module.base_encoder.* except its head (the projector), drop the prefix;
    everything else (momentum encoder, predictor) is deleted."""
    out = {}
    for k, v in sd.items():
        if k.startswith("module.base_encoder") and not k.startswith("module.base_encoder.head"):
            out[k[len("module.base_encoder."):]] = v
    return out


def family_features(p, x, heads, depth, global_pool=False):
    """models_vit.py forward_features: global_pool → fc_norm(mean of x[:, 1:]); else norm(x)[:, 0].
    Returns (feature (B, D), [(k, v)] per block as the attention uses them, (B, H, N, D/H))."""
    kv = []
    t = vit_tokens(p, x, heads, depth, hook=lambda i, k, v: kv.append((k, v)))
    D = t.shape[-1]
    if global_pool:
        f = F.layer_norm(t[:, 1:, :].mean(dim=1), (D,), p["fc_norm.weight"], p["fc_norm.bias"], 1e-6)
    else:
        f = F.layer_norm(t, (D,), p["norm.weight"], p["norm.bias"], 1e-6)[:, 0]
    return f, kv


# ------------------------------------------------------------------ OpenAI CLIP image tower
# A transcription of openai/CLIP clip/model.py (VisionTransformer, ResidualAttentionBlock,
# QuickGELU, fp32 LayerNorm) with its parameter names; attention through torch.nn.MultiheadAttention
# as CLIP's, so the K/V taps below are computed from in_proj on ln_1's output.
class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ClipBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d, d * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(d * 4, d))]))
        self.ln_2 = nn.LayerNorm(d)

    def forward(self, x):  # x: (N, B, D), sequence first as CLIP's
        x = x + self.attn(self.ln_1(x), self.ln_1(x), self.ln_1(x), need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ClipTransformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.Sequential(*[ClipBlock(width, heads) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class ClipVisual(nn.Module):
    def __init__(self, resolution=224, patch=16, width=768, layers=12, heads=12, output_dim=512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((resolution // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = ClipTransformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))
        self.heads = heads

    def features(self, x):
        """ln_post of the class token (what PETL heads read; `@ proj` gives CLIP's embedding) and
        every block's K and V as (B, H, N, D/H)."""
        x = self.conv1(x).reshape(x.shape[0], self.conv1.out_channels, -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)  # NLD -> LND
        kv = []
        for blk in self.transformer.resblocks:
            h = blk.ln_1(x).permute(1, 0, 2)  # (B, N, D)
            B, N, D = h.shape
            _, wk, wv = blk.attn.in_proj_weight.chunk(3)
            _, bk, bv = blk.attn.in_proj_bias.chunk(3)
            heads = lambda t: t.reshape(B, N, self.heads, D // self.heads).permute(0, 2, 1, 3)
            kv.append((heads(F.linear(h, wk, bk)), heads(F.linear(h, wv, bv))))
            x = blk(x)
        x = x.permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]), kv

    def forward(self, x):
        return self.features(x)[0] @ self.proj


def clip_init_(m, seed):
    """CLIP's own init leaves LayerNorms at (1, 0) and biases zero; perturb them so every tensor counts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("bias") or "ln_" in n:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
            elif p.dim() >= 2 and n != "positional_embedding" and n != "proj":
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


# ------------------------------------------------------------------ DINOv2
# A transcription of facebookresearch/dinov2 dinov2/models/vision_transformer.py
# (DinoVisionTransformer: interpolate_pos_encoding with interpolate_offset 0.1 and antialias off,
# register tokens after cls after the position embedding) and layers/block.py (LayerScale ls1/ls2).
class Dinov2Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.num_heads = heads
        self.scale = (d // heads) ** -0.5
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.tap = None

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        if self.tap is not None:
            self.tap.append((k, v))
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class LayerScale(nn.Module):
    def __init__(self, d, init_values):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(d))

    def forward(self, x):
        return x * self.gamma


class Dinov2Mlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Dinov2Block(nn.Module):
    def __init__(self, d, heads, init_values):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Dinov2Attention(d, heads)
        self.ls1 = LayerScale(d, init_values)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Dinov2Mlp(d, 4 * d)
        self.ls2 = LayerScale(d, init_values)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class Dinov2(nn.Module):
    def __init__(self, img_size=518, patch=14, d=768, depth=12, heads=12, registers=0, init_values=1e-5):
        super().__init__()
        self.patch_size = patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, d, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch) ** 2 + 1, d))
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, d)) if registers else None
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        self.blocks = nn.ModuleList([Dinov2Block(d, heads, init_values) for _ in range(depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.interpolate_offset, self.interpolate_antialias = 0.1, False

    def interpolate_pos_encoding(self, x, w, h):
        previous_dtype = x.dtype
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        class_pos_embed = pos_embed[:, 0]
        patch_pos_embed = pos_embed[:, 1:]
        dim = x.shape[-1]
        w0, h0 = w // self.patch_size, h // self.patch_size
        M = int(math.sqrt(N))
        sx, sy = float(w0 + self.interpolate_offset) / M, float(h0 + self.interpolate_offset) / M
        patch_pos_embed = F.interpolate(patch_pos_embed.reshape(1, M, M, dim).permute(0, 3, 1, 2),
                                        mode="bicubic", antialias=self.interpolate_antialias, scale_factor=(sx, sy))
        assert (w0, h0) == patch_pos_embed.shape[-2:]
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1).to(previous_dtype)

    def features(self, x):
        """x_norm_clstoken and every block's K and V (B, H, N, D/H)."""
        B, _, w, h = x.shape
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x, w, h)
        if self.register_tokens is not None:
            x = torch.cat((x[:, :1], self.register_tokens.expand(x.shape[0], -1, -1), x[:, 1:]), dim=1)
        kv = []
        for blk in self.blocks:
            blk.attn.tap = kv
            x = blk(x)
            blk.attn.tap = None
        return self.norm(x)[:, 0], kv


def dinov2_init_(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "norm" in n and n.endswith("weight"):
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.1)
            elif n.endswith("gamma"):  # layer scale trained away from its 1e-5 init
                p.copy_(torch.rand(p.shape, generator=g) * 0.5)
            elif n.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def timm_resample_abs_pos_embed(posemb, new_size, num_prefix_tokens=1):
    """timm 0.9.16 layers/pos_embed.py resample_abs_pos_embed (interpolation bicubic, antialias True)."""
    num_pos_tokens = posemb.shape[1]
    if new_size[0] * new_size[1] + num_prefix_tokens == num_pos_tokens and new_size[0] == new_size[1]:
        return posemb
    hw = int(math.sqrt(num_pos_tokens - num_prefix_tokens))
    prefix, posemb = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    embed_dim, orig_dtype = posemb.shape[-1], posemb.dtype
    posemb = posemb.float().reshape(1, hw, hw, -1).permute(0, 3, 1, 2)
    posemb = F.interpolate(posemb, size=new_size, mode="bicubic", antialias=True)
    posemb = posemb.permute(0, 2, 3, 1).reshape(1, -1, embed_dim).to(orig_dtype)
    return torch.cat([prefix, posemb], dim=1)

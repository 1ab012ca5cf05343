#!/usr/bin/python3
"""Converts a PyTorch state dict (.pth/.pt pickle, e.g. a timm checkpoint or a reference-code
checkpoint of trainable tensors) to safetensors, which petl reads without Python:

    /usr/bin/python3 tools/pth_to_safetensors.py model.pth model.safetensors [--key state_dict]

Uses Debian's python3-torch. Tensor names are kept as they are (a leading "module." is removed).
Checkpoints that wrap the state dict in a training checkpoint are unwrapped: without --key, a
pickle whose top level holds no tensors but a dict under `model` (facebookresearch/mae) or
`state_dict` (facebookresearch/moco-v3, with epoch, optimizer, ...) is read from that key (said on
stdout). Nested dicts of tensors are flattened with "." (as nn.Module state dicts name them).
OpenAI CLIP's ViT-B-16.pt is a TorchScript archive: its module's state_dict() is taken (said on
stdout); the text tower comes along and petl ignores it.
Examples (README: Backbone families):
    tools/pth_to_safetensors.py mae_pretrain_vit_base.pth mae_b16.safetensors        # ['model']
    tools/pth_to_safetensors.py vit-b-300ep.pth.tar mocov3_b16.safetensors           # ['state_dict']
    tools/pth_to_safetensors.py ViT-B-16.pt clip_b16.safetensors                       # TorchScript
    tools/pth_to_safetensors.py dinov2_vitb14_pretrain.pth dinov2_b14.safetensors      # top level
"""
import argparse
import json
import struct

import torch

DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
      torch.bool: "BOOL"}


def unwrap(obj, key):
    """The state dict inside a loaded pickle: obj[key], or the `model` / `state_dict` entry of a
    training checkpoint whose top level holds no tensors."""
    if key:
        if key not in obj:
            raise SystemExit(f"no key '{key}' in the checkpoint (top-level keys: {sorted(obj)})")
        return obj[key], key
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        for k in ("model", "state_dict"):
            if isinstance(obj.get(k), dict):
                return obj[k], k
    return obj, None


def load(src):
    """The pickle at src, or the state_dict() of a TorchScript archive (OpenAI CLIP's .pt)."""
    try:
        obj = torch.load(src, map_location="cpu")  # torch 1.13 hands TorchScript archives to torch.jit.load
    except RuntimeError as e:
        if "jit" not in str(e) and "TorchScript" not in str(e):
            raise
        obj = torch.jit.load(src, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        print("TorchScript archive: its module's state_dict() taken")
        return dict(obj.state_dict())
    return obj


def flatten(d, prefix=""):
    """{name: tensor} with nested dicts of tensors joined by '.'; other values are skipped."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif torch.is_tensor(v):
            out[prefix + str(k)] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--key", help="take the state dict from this key of the pickle (e.g. state_dict, model)")
    a = ap.parse_args()
    sd, used = unwrap(load(a.src), a.key)
    if used and not a.key:
        print(f"state dict taken from the checkpoint's '{used}' entry")
    sd = flatten(sd)
    header, blobs, off = {}, [], 0
    for name in sorted(sd):
        t = sd[name].detach().contiguous()
        b = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""  # 0-d too (BN counters)
        key = name[7:] if name.startswith("module.") else name
        header[key] = {"dtype": DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt", "converted_from": a.src}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(a.dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    print(f"wrote {len(header) - 1} tensors to {a.dst}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Converts a PyTorch state dict (.pth/.pt pickle, e.g. a timm checkpoint or a reference-code
checkpoint of trainable tensors) to safetensors, which petl reads without Python:

    /usr/bin/python3 tools/pth_to_safetensors.py model.pth model.safetensors [--key state_dict]

Uses Debian's python3-torch. Tensor names are kept as they are (a leading "module." is removed).
"""
import argparse
import json
import struct

import torch

DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
      torch.bool: "BOOL"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--key", help="take the state dict from this key of the pickle (e.g. state_dict, model)")
    a = ap.parse_args()
    sd = torch.load(a.src, map_location="cpu")
    if a.key:
        sd = sd[a.key]
    header, blobs, off = {}, [], 0
    for name in sorted(sd):
        t = sd[name]
        if not torch.is_tensor(t):
            continue
        t = t.detach().contiguous()
        b = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
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

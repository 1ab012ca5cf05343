#!/usr/bin/env python3
"""PIL reference outputs for tests/io/test_image.cpp.

Builds test images from real Fashion-MNIST pictures (grey, colourised tilings, odd sizes, every
PNG colour type PIL writes, JPEGs), then for every *.png / *.jpg in --out (including the files the
C++ test wrote itself) stores what PIL makes of it:
  <file>.rgb                         Image.open(f).convert("RGB") bytes (HWC)
  <file>.<w>x<h>.rgb                 that RGB image .resize((w, h), Image.BICUBIC)
  <file>.L.<w>x<h>.l                 for mode-L files also the single-channel resize
  <file>.<w>x<h>.<norm>.f32          torchvision ToTensor + Normalize of a resize (CHW float32)
and a manifest.json describing all of them.
"""
import argparse
import gzip
import json
import os

import numpy as np
from PIL import Image

# Resize targets per generated file (w, h); files not listed get DEFAULT_TARGETS.
TARGETS = {
    "fm28_L.png": [(32, 32), (224, 224)],
    "fm28_rgb.png": [(32, 32), (224, 224), (28, 28), (14, 14), (28, 40)],
    "t37x53_rgb.png": [(224, 224), (17, 91)],
    "t53x37_L.png": [(224, 224), (20, 100)],
    "t300x200_rgb.png": [(224, 224), (224, 200), (300, 224), (150, 100)],
    "t64_L.png": [(32, 32), (224, 224)],
    "t64_rgb.png": [(32, 32)],
    "t500x375_rgb.png": [(224, 224), (1, 1), (499, 374), (1000, 50)],
    "t1x1_rgb.png": [(5, 3), (224, 224)],
    "t3x2_rgb.png": [(7, 5), (2, 1)],
    "t2000x9_L.png": [(224, 224), (13, 9)],
}
DEFAULT_TARGETS = [(224, 224)]
# Files whose 224x224 resize also gets normalisation references.
NORM_FILES = {"t300x200_rgb.png", "fm28_L.png"}
NORMS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": None,
}


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    assert magic == 2051, "not an idx3 image file: %s" % path
    return np.frombuffer(data[16:], dtype=np.uint8).reshape(int(n), int(rows), int(cols))


def tile(fm, w, h, start):
    """A w x h grey canvas tiled with consecutive Fashion-MNIST pictures."""
    gw, gh = (w + 27) // 28, (h + 27) // 28
    canvas = np.zeros((gh * 28, gw * 28), np.uint8)
    k = start
    for gy in range(gh):
        for gx in range(gw):
            canvas[gy * 28:(gy + 1) * 28, gx * 28:(gx + 1) * 28] = fm[k % len(fm)]
            k += 1
    return canvas[:h, :w]


def colour(fm, w, h, start):
    """Three differently offset tilings as R, G, B, with a gradient so no channel is flat."""
    r = tile(fm, w, h, start).astype(np.int32)
    g = tile(fm, w, h, start + 101).astype(np.int32)
    b = tile(fm, w, h, start + 202).astype(np.int32)
    yy, xx = np.mgrid[0:h, 0:w]
    g = (g + (xx * 255) // max(w - 1, 1)) // 2
    b = 255 - (b + (yy * 255) // max(h - 1, 1)) // 2
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def make_images(fm, out):
    def save(name, im, **kw):
        im.save(os.path.join(out, name), **kw)

    save("fm28_L.png", Image.fromarray(fm[0], "L"))
    save("fm28_rgb.png", Image.fromarray(np.stack([fm[1], fm[2], fm[3]], -1), "RGB"))
    save("t37x53_rgb.png", Image.fromarray(colour(fm, 37, 53, 10), "RGB"))
    save("t53x37_L.png", Image.fromarray(tile(fm, 53, 37, 20), "L"))
    save("t300x200_rgb.png", Image.fromarray(colour(fm, 300, 200, 30), "RGB"))
    save("t64_L.png", Image.fromarray(tile(fm, 64, 64, 40), "L"))
    save("t64_rgb.png", Image.fromarray(colour(fm, 64, 64, 45), "RGB"))
    save("t500x375_rgb.png", Image.fromarray(colour(fm, 500, 375, 50), "RGB"))
    save("t1x1_rgb.png", Image.fromarray(np.array([[[200, 17, 90]]], np.uint8), "RGB"))
    save("t3x2_rgb.png", Image.fromarray(colour(fm, 3, 2, 1), "RGB"))
    save("t2000x9_L.png", Image.fromarray(tile(fm, 2000, 9, 60), "L"))

    # Every 8-bit PNG colour type PIL can write, plus 1-bit and 16-bit grey.
    base = Image.fromarray(colour(fm, 37, 53, 70), "RGB")
    alpha = Image.fromarray(tile(fm, 37, 53, 80), "L")
    rgba = base.copy()
    rgba.putalpha(alpha)
    save("m37x53_rgba.png", rgba)
    la = Image.fromarray(tile(fm, 37, 53, 90), "L")
    la.putalpha(alpha)
    save("m37x53_la.png", la)
    save("m37x53_p.png", base.quantize(colors=61))
    pt = base.quantize(colors=16)
    save("m37x53_p_trns.png", pt, transparency=3)
    save("m37x53_p4bit.png", base.quantize(colors=16), bits=4)
    save("m37x53_1bit.png", Image.fromarray(tile(fm, 37, 53, 95), "L").convert("1"))
    g16 = tile(fm, 37, 53, 99).astype(np.uint16) * 3  # PIL clamps values > 255 on convert
    save("m37x53_g16.png", Image.fromarray(g16))

    # JPEGs: PIL (libjpeg) and stb decode them independently.
    save("fm28_L.jpg", Image.fromarray(fm[0], "L"), quality=90)
    save("t300x200_rgb.jpg", Image.fromarray(colour(fm, 300, 200, 30), "RGB"), quality=90)
    save("t500x375_rgb.jpg", Image.fromarray(colour(fm, 500, 375, 50), "RGB"), quality=75)
    save("t37x53_rgb444.jpg", Image.fromarray(colour(fm, 37, 53, 10), "RGB"), quality=95,
         subsampling=0)
    save("t64_L.jpg", Image.fromarray(tile(fm, 64, 64, 40), "L"), quality=80)
    save("t300x200_prog.jpg", Image.fromarray(colour(fm, 300, 200, 35), "RGB"), quality=85,
         progressive=True)


def normalise(rgb, norm):
    """torchvision ToTensor + Normalize, in torch float32 (Debian's python3-torch: a missing torch is
    an error, never a silent fallback to another computation)."""
    import torch
    arr = np.asarray(rgb, dtype=np.uint8)
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    if NORMS[norm] is not None:
        mean = torch.as_tensor(NORMS[norm][0], dtype=torch.float32)[:, None, None]
        std = torch.as_tensor(NORMS[norm][1], dtype=torch.float32)[:, None, None]
        t = t.sub(mean).div(std)
    return t.numpy().astype("<f4"), "torch"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fmnist", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = args.out
    make_images(read_idx_images(args.fmnist), out)

    entries = []
    for name in sorted(os.listdir(out)):
        if not name.endswith((".png", ".jpg")):
            continue
        im = Image.open(os.path.join(out, name))
        im.load()
        rgb = im.convert("RGB")
        with open(os.path.join(out, name + ".rgb"), "wb") as f:
            f.write(rgb.tobytes())
        entry = {"file": name, "format": im.format, "mode": im.mode, "width": im.width,
                 "height": im.height, "decoded": name + ".rgb", "resizes": [], "norms": []}
        for w, h in TARGETS.get(name, DEFAULT_TARGETS):
            ref = "%s.%dx%d.rgb" % (name, w, h)
            with open(os.path.join(out, ref), "wb") as f:
                f.write(rgb.resize((w, h), Image.BICUBIC).tobytes())
            entry["resizes"].append({"w": w, "h": h, "channels": 3, "file": ref})
            if im.mode == "L":
                ref_l = "%s.L.%dx%d.l" % (name, w, h)
                with open(os.path.join(out, ref_l), "wb") as f:
                    f.write(im.resize((w, h), Image.BICUBIC).tobytes())
                entry["resizes"].append({"w": w, "h": h, "channels": 1, "file": ref_l})
        if name in NORM_FILES:
            resized = rgb.resize((224, 224), Image.BICUBIC)
            for norm in NORMS:
                x, how = normalise(resized, norm)
                ref = "%s.224x224.%s.f32" % (name, norm)
                with open(os.path.join(out, ref), "wb") as f:
                    f.write(x.tobytes())
                entry["norms"].append({"norm": norm, "size": 224, "file": ref, "by": how})
        entries.append(entry)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"pil_version": Image.__version__, "images": entries}, f, indent=1)


if __name__ == "__main__":
    main()

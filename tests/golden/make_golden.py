#!/usr/bin/python3
"""Regenerates the golden files used by tests/test_golden.cpp (run with Debian's python3-torch):

  /usr/bin/python3 tests/golden/make_golden.py tests/golden

A small random ViT (img 32, patch 8, D 48, depth 3, heads 4) with non-trivial LayerNorm
parameters, saved twice: as a timm state dict (vit_small.safetensors) and in the Google .npz
layout (vit_small.npz, the inverse of timm's _load_weights mapping); an input batch; the reference
outputs (final-norm tokens, cls feature); random SynQT parameters under the reference names for
T=1 and T=3 (synqt_t{T}.safetensors) and their eval-mode logits. The reference maths is
tests/py/ref_models.py, written independently of petl's C++.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
import ref_models as R  # noqa: E402

IMG, PATCH, D, DEPTH, HEADS, C, B = 32, 8, 48, 3, 4, 7, 5


def backbone(g):
    N = (IMG // PATCH) ** 2 + 1
    r = lambda *s: torch.randn(*s, generator=g) * 0.1
    p = {"patch_embed.proj.weight": r(D, 3, PATCH, PATCH), "patch_embed.proj.bias": r(D),
         "cls_token": r(1, 1, D), "pos_embed": r(1, N, D),
         "norm.weight": 1 + r(D), "norm.bias": r(D)}
    for i in range(DEPTH):
        b = f"blocks.{i}."
        p.update({b + "norm1.weight": 1 + r(D), b + "norm1.bias": r(D),
                  b + "attn.qkv.weight": r(3 * D, D), b + "attn.qkv.bias": r(3 * D),
                  b + "attn.proj.weight": r(D, D), b + "attn.proj.bias": r(D),
                  b + "norm2.weight": 1 + r(D), b + "norm2.bias": r(D),
                  b + "mlp.fc1.weight": r(4 * D, D), b + "mlp.fc1.bias": r(4 * D),
                  b + "mlp.fc2.weight": r(D, 4 * D), b + "mlp.fc2.bias": r(D)})
    return p


def to_google(p):
    """timm names → Google ViT .npz keys (inverse of timm's _load_weights)."""
    n = lambda t: t.numpy().astype(np.float32)
    dh = D // HEADS
    o = {"embedding/kernel": n(p["patch_embed.proj.weight"].permute(2, 3, 1, 0)),
         "embedding/bias": n(p["patch_embed.proj.bias"]), "cls": n(p["cls_token"]),
         "Transformer/posembed_input/pos_embedding": n(p["pos_embed"]),
         "Transformer/encoder_norm/scale": n(p["norm.weight"]), "Transformer/encoder_norm/bias": n(p["norm.bias"]),
         "head/kernel": np.zeros((D, 11), np.float32), "head/bias": np.zeros(11, np.float32)}
    for i in range(DEPTH):
        b, g = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        m = g + "MultiHeadDotProductAttention_1/"
        o[g + "LayerNorm_0/scale"], o[g + "LayerNorm_0/bias"] = n(p[b + "norm1.weight"]), n(p[b + "norm1.bias"])
        o[g + "LayerNorm_2/scale"], o[g + "LayerNorm_2/bias"] = n(p[b + "norm2.weight"]), n(p[b + "norm2.bias"])
        w, bias = p[b + "attn.qkv.weight"], p[b + "attn.qkv.bias"]
        for j, name in enumerate(["query", "key", "value"]):
            o[m + name + "/kernel"] = n(w[j * D:(j + 1) * D].t().reshape(D, HEADS, dh))
            o[m + name + "/bias"] = n(bias[j * D:(j + 1) * D].reshape(HEADS, dh))
        o[m + "out/kernel"] = n(p[b + "attn.proj.weight"].t().reshape(HEADS, dh, D))
        o[m + "out/bias"] = n(p[b + "attn.proj.bias"])
        o[g + "MlpBlock_3/Dense_0/kernel"] = n(p[b + "mlp.fc1.weight"].t())
        o[g + "MlpBlock_3/Dense_0/bias"] = n(p[b + "mlp.fc1.bias"])
        o[g + "MlpBlock_3/Dense_1/kernel"] = n(p[b + "mlp.fc2.weight"].t())
        o[g + "MlpBlock_3/Dense_1/bias"] = n(p[b + "mlp.fc2.bias"])
    return {"opt/target/" + k: v for k, v in o.items()}


def synqt_params(g, T):
    r = lambda *s: torch.randn(*s, generator=g) * 0.1
    s = {"synqt.q": torch.rand(DEPTH, T, D, generator=g) * 2 - 1, "synqt.feat_scale": torch.tensor([0.3]),
         "head.weight": r(C, D), "head.bias": r(C)}

    def lin(pre, i, o):
        s[pre + ".weight"], s[pre + ".bias"] = r(o, i), r(o)

    def ln(pre):
        s[pre + ".weight"], s[pre + ".bias"] = 1 + r(D), r(D)

    def ad(pre, h):
        lin(pre + "mlp.fc1", D, h)
        lin(pre + "mlp.fc2", h, D)

    for i in range(DEPTH):
        ln(f"synqt.pre_norm.{i}")
        ad(f"synqt.prompt_ffn.{i}.", 48)
        q = f"synqt.qsm_block.{i}."
        ln(q + "norm1"), ln(q + "norm2"), ln(q + "attn.q_norm"), ln(q + "attn.kv_norm")
        for a in ["q_proj", "k_proj", "v_proj", "proj"]:
            ad(q + "attn." + a + ".", 8)
        ad(q + "mlp.", 48)
        s[q + "attn_scale"], s[q + "ffn_scale"] = torch.tensor([0.7]), torch.tensor([0.4])
    ad("synqt.mlp.", 48)
    lin("synqt.out_combine.get_weight.fc1", D, 3 * DEPTH)
    s["synqt.out_combine.weight"] = torch.ones(3 * DEPTH + 1)
    ln("synqt.out_norm"), ln("synqt.head_norm")
    return s


def main(out):
    g = torch.Generator().manual_seed(1234)
    p = backbone(g)
    meta = {"petl_vit_config": '{"arch":"golden_small","img_size":32,"patch_size":8,"in_chans":3,"embed_dim":48,'
                               '"depth":3,"num_heads":4,"mlp_ratio":4.0,"ln_eps":1e-06}'}
    R.write_safetensors(os.path.join(out, "vit_small.safetensors"), p, meta)
    np.savez(os.path.join(out, "vit_small.npz"), **to_google(p))
    x = torch.randn(B, 3, IMG, IMG, generator=g)
    np.save(os.path.join(out, "input.npy"), x.numpy())
    with torch.no_grad():
        tok = R.vit_tokens(p, x, HEADS, DEPTH)
        tok = torch.nn.functional.layer_norm(tok, (D,), p["norm.weight"], p["norm.bias"], 1e-6)
        np.save(os.path.join(out, "vit_tokens.npy"), tok.numpy())
        for T in (1, 3):
            s = synqt_params(g, T)
            R.write_safetensors(os.path.join(out, f"synqt_t{T}.safetensors"), s,
                                {"method_settings": '{"token_nums": "%d"}' % T})
            np.save(os.path.join(out, f"synqt_t{T}_logits.npy"), R.synqt_logits(p, s, x, HEADS, DEPTH).numpy())
    print("golden files written to", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))

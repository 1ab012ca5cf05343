"""Reference training loop for tests/test_train_parity.cpp: for each <method>.safetensors written by
the C++ test (backbone.*, method.* initial tensors, final.* tensors after petl's three steps, the
batch, petl's losses and the recipe), rebuild the method's forward from ref_baselines.py, compute
each step's learning rate from the recipe with the schedule formulas of the reference codes (below:
never petl's rates), train the same three steps with python3-torch's AdamW (weight decay on every
tensor, or none on 1-D ones when the recipe says no_decay_1d) and compare the losses and the final
tensors (1e-9 relative in float64). Elements whose gradient is mathematically zero (round-off in
either implementation) are predicted by rule, not by a cap: see zero_gradient_rows.

usage: ref_train_steps.py --dir DIR
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
from ref_baselines import METHODS as BASELINES, Vit, head, plain, split  # noqa: E402
from ref_models import finish, read_safetensors, synqt_logits  # noqa: E402

# The baselines' reference forwards, plus linear probe / full fine-tuning (head on the final-norm
# cls token; full trains the backbone too) and SynQT (ref_models.synqt_logits, the reference model).
METHODS = dict(BASELINES)
METHODS["linear"] = lambda vit, me, x, s: head(me, plain(vit, x))
METHODS["full"] = lambda vit, me, x, s: head(me, plain(vit, x))
METHODS["synqt"] = lambda vit, me, x, s: synqt_logits(vit.p, me, x, vit.heads, vit.depth)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def timm_cosine(t, r):
    """timm 0.4.12 CosineLRScheduler._get_lr(t) (scheduler/cosine_lr.py): cycle_limit 1, warmup_prefix
    False, t_mul 1, decay_rate 1 — a linear warmup from warmup_lr_init over warmup_t, then the cosine
    over t_initial (t not shifted by the warmup), min_lr past the cycle."""
    lr, lr_min, warmup_t = float(r["lr"]), float(r["min_lr"]), int(r["warmup_epochs"])
    warmup_lr_init, t_initial = float(r["warmup_lr_init"]), int(r["epochs"])
    if t < warmup_t:
        return warmup_lr_init + t * (lr - warmup_lr_init) / warmup_t
    if t >= t_initial:
        return lr_min
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * t / t_initial))


def learning_rate(r, epoch, it=0, iters=1):
    """The rate the reference training loop uses in iteration `it` of epoch `epoch`, by schedule."""
    sched = r["schedule"]
    if sched == "iter_warmup_cosine":
        # SynQT utils.adjust_learning_rate (also VQT's, NOAH's iteration variant): called every
        # iteration with epoch + it/iters; linear warmup from 0, then the half cosine to min_lr.
        t = epoch + it / iters
        lr, lr_min, warmup, epochs = float(r["lr"]), float(r["min_lr"]), int(r["warmup_epochs"]), int(r["epochs"])
        if t < warmup:
            return lr * t / warmup
        return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / (epochs - warmup)))
    if sched == "timm_train_cosine":
        # timm train.py: lr_scheduler.step(epoch + 1) after each epoch, f(0) before the first; the
        # cooldown epochs after the cycle run at min_lr.
        return timm_cosine(epoch, r)
    if sched == "timm_epoch_cosine":
        # NOAH / PETL-ViT train loops: scheduler.step(ep) after epoch ep, so epoch e trains with f(e - 1).
        return timm_cosine(max(epoch - 1, 0), r)
    raise SystemExit(f"unknown schedule {sched}")


def zero_gradient_rows(name, k, p, heads):
    """A boolean mask of the elements of trainable tensor `k` whose gradient is mathematically zero:
    a term that adds the same vector to every token's key (a key bias: qkv.bias rows D..2D, and the
    shift SSF applies to the qkv output there) cannot change a softmax over the keys. Everything else
    must match; an element outside this mask whose gradient is round-off is a failure."""
    mask = torch.zeros_like(p, dtype=torch.bool)
    dim = p.shape[0] // 3 if p.dim() == 1 and p.shape[0] % 3 == 0 else None
    # SSF's attention shift (ssf_shift_1 of Attention, after qkv; 3D wide) shifts the keys too.
    key_bias = k.endswith("attn.qkv.bias") or (name == "ssf" and k.endswith(".attn.ssf_shift_1"))
    if dim is not None and key_bias:
        mask[dim:2 * dim] = True
    return mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    bad, seen = 0, set()
    for f in sorted(glob.glob(os.path.join(a.dir, "*.safetensors"))):
        t, meta = read_safetensors(f)
        name = meta["method"]
        seen.add(name)
        final = {k[len("final."):]: v for k, v in t.items() if k.startswith("final.")}
        bb, me = split({k: v for k, v in t.items() if not k.startswith("final.")})
        trainable = json.loads(meta["trainable"])
        params = []
        for k in trainable:
            holder = me if k in me else bb  # bitfit trains backbone biases
            if "running_" in k:
                continue  # BatchNorm statistics: state, not parameters
            holder[k] = holder[k].clone().requires_grad_(True)
            params.append((k, holder[k]))
        nd = meta["no_decay_1d"] == "1"
        wd = float(meta["weight_decay"])
        decay = [p for k, p in params if not (nd and p.dim() <= 1)]
        no_decay = [p for k, p in params if nd and p.dim() <= 1]
        groups = ([{"params": decay, "weight_decay": wd}] if decay else []) + \
                 ([{"params": no_decay, "weight_decay": 0.0}] if no_decay else [])
        opt = torch.optim.AdamW(groups, lr=1.0, betas=tuple(json.loads(meta["betas"])), eps=json.loads(meta["eps"]))
        vit = Vit(bb, int(meta["heads"]), int(meta["depth"]), int(meta["patch"]))
        s = json.loads(meta["settings"])
        s["_train"] = True
        x, y = t["input"], t["labels"].long()
        want_losses = json.loads(meta["losses"])
        recipe = json.loads(meta["recipe"])
        worst_loss = 0.0
        # Adam divides each gradient element by its own magnitude: an element whose gradient is
        # round-off takes a full ±lr step of arbitrary sign in either implementation. Which elements
        # have a mathematically zero gradient is predicted (zero_gradient_rows); those are left out,
        # and every element found with a round-off gradient (0 < |g| < 1e-10 of the tensor's largest,
        # in float64) must be one of them.
        expected = {k: zero_gradient_rows(name, k, p, int(meta["heads"])) for k, p in params}
        noise = {k: torch.zeros_like(p, dtype=torch.bool) for k, p in params}
        signal = {k: torch.zeros_like(p, dtype=torch.bool) for k, p in params}
        for step in range(len(want_losses)):
            lr = learning_rate(recipe, step)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad()
            loss = F.cross_entropy(METHODS[name](vit, me, x, s), y)
            loss.backward()
            for k, p in params:
                if p.grad is None:  # unused by the forward (SynQT's out_combine.weight): no step, as in petl
                    continue
                g = p.grad.abs()
                noise[k] |= (g > 0) & (g < 1e-10 * g.max())
                signal[k] |= g >= 1e-10 * g.max()
            opt.step()
            worst_loss = max(worst_loss, abs(loss.item() - want_losses[step]) / max(1e-12, abs(want_losses[step])))
        worst_t, worst_k, n_left_out, n_all, unexpected = 0.0, "", 0, 0, []
        for k, v in final.items():
            got = (me if k in me else bb)[k].detach()
            left_out = expected[k] if k in expected else torch.zeros_like(got, dtype=torch.bool)
            if k in noise and bool((noise[k] & ~left_out).any()):
                unexpected.append(f"{k}: {int((noise[k] & ~left_out).sum())} elements")
            if k in signal and bool((signal[k] & left_out).any()):  # the rule must not hide a real gradient
                unexpected.append(f"{k}: {int((signal[k] & left_out).sum())} predicted-zero elements with a gradient")
            n_left_out += int(left_out.sum())
            n_all += got.numel()
            d = ((v - got).abs() * ~left_out).max().item() / max(1e-12, got.abs().max().item())
            if d > worst_t:
                worst_t, worst_k = d, k
        ok = worst_loss < 1e-9 and worst_t < 1e-9 and len(final) == len(trainable) and not unexpected
        if unexpected:
            print(f"    {name}: the predicted zero-gradient elements are not the round-off ones: {'; '.join(unexpected)}")
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {name:12s} 3 steps: losses rel {worst_loss:.1e}, "
              f"updated tensors rel {worst_t:.1e} ({worst_k or '-'}; {len(final)} tensors, "
              f"{n_left_out} of {n_all} elements with a mathematically zero gradient left out)")
    finish(METHODS, seen, bad)


if __name__ == "__main__":
    main()

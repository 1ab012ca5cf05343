"""`petl import-checkpoint --from authors`: for each method whose authors' code names its tensors
differently (VPT, VQT, BitFit through VPT's ViT, AdaptFormer's full state_dict), a checkpoint trained
by petl is rewritten here in the authors' layout (their names, VPT's separate query/key/value
biases, VPT's head.last_layer, the frozen backbone's tensors beside them), imported back, and must
give the same tensors bit for bit and the same accuracy under `petl eval`."""
import json
import os

import torch

from common import GOLDEN, Checks, make_task, parse_args, run
import ref_models as R

a = parse_args()
c = Checks()
S = a.scratch
backbone = os.path.join(GOLDEN, "vit_small.safetensors")
root = os.path.join(S, "data")
task = make_task(root, "imp", 24, 16, 4, seed=1)


def frozen(shape):
    return torch.randn(*shape)


def vpt_head(t):
    return {"head.last_layer.weight": t.pop("head.weight"), "head.last_layer.bias": t.pop("head.bias")}


def to_authors(method, t):
    t = dict(t)
    out = {"enc.transformer.embeddings.position_embeddings": frozen((1, 17, 48)),
           "enc.transformer.encoder.layer.0.attn.query.weight": frozen((48, 48))}
    if method in ("vpt_shallow", "vpt_deep"):
        out["enc.transformer.prompt_embeddings"] = t.pop("prompt_embeddings")
        if method == "vpt_deep":
            out["enc.transformer.deep_prompt_embeddings"] = t.pop("deep_prompt_embeddings")
        out.update(vpt_head(t))
    elif method == "vqt":
        out["enc.transformer.encoder.query_prompt_embeddings"] = t.pop("query_prompt_embeddings")
        out.update(vpt_head(t))
    elif method == "bitfit":
        e = "enc.transformer."
        out[e + "embeddings.patch_embeddings.bias"] = t.pop("patch_embed.proj.bias")
        out[e + "encoder.encoder_norm.bias"] = t.pop("norm.bias")
        i = 0
        while f"blocks.{i}.attn.qkv.bias" in t:
            l, b = f"{e}encoder.layer.{i}.", f"blocks.{i}."
            q, k, v = t.pop(b + "attn.qkv.bias").chunk(3)
            out.update({l + "attn.query.bias": q.clone(), l + "attn.key.bias": k.clone(), l + "attn.value.bias": v.clone(),
                        l + "attn.out.bias": t.pop(b + "attn.proj.bias"), l + "attention_norm.bias": t.pop(b + "norm1.bias"),
                        l + "ffn_norm.bias": t.pop(b + "norm2.bias"), l + "ffn.fc1.bias": t.pop(b + "mlp.fc1.bias"),
                        l + "ffn.fc2.bias": t.pop(b + "mlp.fc2.bias")})
            i += 1
        out.update(vpt_head(t))
    elif method == "adaptformer":
        out = {"blocks.0.attn.qkv.weight": frozen((144, 48)), "head.0.num_batches_tracked": torch.tensor(7)}
        out.update(t)
        t = {}
    assert not t, f"{method}: tensors left unmapped: {sorted(t)}"
    return out


for method, extra in [("vpt_shallow", ["--set", "num_tokens=2"]), ("vpt_deep", ["--set", "num_tokens=2"]),
                      ("vqt", ["--set", "token_nums=2"]), ("bitfit", []), ("adaptformer", ["--set", "ffn_num=4"])]:
    out = os.path.join(S, "runs_" + method)
    run(a.petl, "run", "--method", method, "--task", "imp", "--data-root", root, "--backbone", backbone, "--epochs", "2",
        "--batch-size", "4", "--threads", "1", "--out", out, *extra)
    rec = [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))][-1]
    mine, _ = R.read_safetensors(rec["checkpoint"])
    authors = to_authors(method, mine)
    src = os.path.join(S, method + "_authors.safetensors")
    R.write_safetensors(src, authors)
    dst = os.path.join(S, method + "_imported.safetensors")
    p = run(a.petl, "import-checkpoint", "--method", method, "--from", "authors", src, dst)
    back, _ = R.read_safetensors(dst)
    same = set(back) == set(mine) and all(torch.equal(back[k], mine[k]) for k in mine)
    c.check(same, f"{method}: the authors' layout imports back to petl's tensors bit for bit ({len(mine)} tensors)")
    c.check("2 of the authors' frozen-backbone tensors dropped" in p.stdout,
            f"{method}: the 2 frozen-backbone tensors beside them are dropped and counted")
    p = run(a.petl, "eval", "--method", method, "--task", "imp", "--data-root", root, "--backbone", backbone,
            "--checkpoint", dst, *extra)
    acc = rec["accuracy_by_protocol"]["final"]
    c.check(f"accuracy {acc:.2f}%" in p.stdout, f"{method}: petl eval of the imported checkpoint gives the run's accuracy")

broken = os.path.join(S, "broken.safetensors")
R.write_safetensors(broken, {"head.last_layer.weight": torch.zeros(4, 48), "head.last_layer.bias": torch.zeros(4)})
p = run(a.petl, "import-checkpoint", "--method", "vpt_deep", broken, os.path.join(S, "x.safetensors"), expect=2)
c.check("enc.transformer.prompt_embeddings" in p.stderr and broken in p.stderr,
        "a checkpoint without the method's tensors: the error names the file and the missing tensor")
p = run(a.petl, "import-checkpoint", "--method", "lora", broken, os.path.join(S, "x.safetensors"), expect=2)
c.check("already carry the authors' names" in p.stderr, "methods with the authors' names need no import")
c.done()

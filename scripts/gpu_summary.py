"""Step 7 of scripts/gpu-check.sh: OUTDIR/summary.json and the markdown (stdout) for README.md."""
import json
import os
import sys

out = sys.argv[1]


def lines(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [json.loads(l) for l in f if l.strip()]


steps = [l.rstrip("\n").split(" ", 1) for l in open(os.path.join(out, "steps.txt")) if l.strip()]
env = open(os.path.join(out, "env.txt")).read() if os.path.exists(os.path.join(out, "env.txt")) else ""
agree = json.load(open(os.path.join(out, "agree.json"))) if os.path.exists(os.path.join(out, "agree.json")) else {}
bench = {p: lines(f"bench-{p}.jsonl") for p in ("fp32", "bf16")}
cached = lines("bench-cached.jsonl")
json.dump({"steps": steps, "agree": agree, "bench": bench, "bench_cached": cached},
          open(os.path.join(out, "summary.json"), "w"), indent=1)

print("## petl on the GPU\n")
gpu = [l for l in env.splitlines() if l.startswith("torch ")]
print(f"{env.splitlines()[0] if env else '?'}; {gpu[0] if gpu else '?'}\n")
print("| step | result |\n|---|---|")
for s in steps:
    print(f"| {s[0]} | {s[1] if len(s) > 1 else ''} |")
if agree:
    print(f"\n{agree.get('device', 'cuda').upper()} vs CPU on {agree.get('images')} test images: fp32 max relative logit difference "
          f"{agree.get('fp32_max_rel_diff'):.3g}, bf16 top-1 agreement {agree.get('bf16_top1_agreement'):.4f}.")
rows = {}
for p, rs in bench.items():
    for r in rs:
        rows.setdefault((r["method"], r["batch_size"]), {})[p] = r
if rows:
    print("\n| method | batch | fp32 img/s | fp32 peak alloc MiB | fp32 peak reserved MiB | bf16 img/s | "
          "bf16 peak alloc MiB | bf16 peak reserved MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for (m, b), d in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cells = []
        for p in ("fp32", "bf16"):
            r = d.get(p)
            if r:
                mm = r["memory"]
                res = mm.get("peak_train_reserved_mib")
                cells += [f"{r['images_per_s']:.1f}", f"{mm['peak_train_mib']:.0f}",
                          f"{res:.0f}" if isinstance(res, (int, float)) else "-"]
            else:
                cells += ["-", "-", "-"]
        print(f"| {m} | {b} | " + " | ".join(cells) + " |")
if cached:
    print("\n| case | live img/s | resident img/s | speed-up | live peak MiB | resident peak MiB | live vs K/V floor |"
          "\n|---|---:|---:|---:|---:|---:|---:|")
    for r in cached:
        print(f"| {r['case']} | {r['live_images_per_s']:.1f} | {r['resident_images_per_s']:.1f} | {r['speedup']:.1f}x | "
              f"{r['live_peak_mib']:.0f} | {r['resident_peak_mib']:.0f} | {r['live_peak_vs_floor']:.2f} |")

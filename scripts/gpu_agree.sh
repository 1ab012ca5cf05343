#!/usr/bin/env bash
# Step 4 of scripts/gpu-check.sh: CUDA against the CPU on real images (the embedded suite).
#   gpu_agree.sh PETL WORKDIR OUTDIR [DEVICE]   → OUTDIR/agree.json; the last line says pass or fail
# (DEVICE cpu: the rehearsal of scripts/gpu-check.sh on a machine without a GPU)
set -euo pipefail
petl=$1 w=$2 out=$3 dev=${4:-cuda}
py=${PETL_PYTHON:-python3}
"$petl" suite --out "$w/suite" --no-progress > /dev/null
"$petl" run --method linear --task fashion_mnist --data-root "$w/suite" --epochs 5 --out "$w/cpu" --no-progress \
  > /dev/null 2>&1
ckpt=$(ls "$w"/cpu/checkpoints/*.safetensors | head -1)
for dp in cpu:fp32 $dev:fp32 $dev:bf16; do
  "$petl" eval --method linear --task fashion_mnist --data-root "$w/suite" --checkpoint "$ckpt" --no-progress \
    --device "${dp%%:*}" --precision "${dp##*:}" --logits "$w/logits_${dp%%:*}_${dp##*:}.h5" | tail -1
done
for p in fp32 bf16; do  # SynQT trains on the GPU (live backbone path), in both precisions
  "$petl" run --method synqt --task objects_dist --data-root "$w/suite" --epochs 3 --device $dev --precision $p \
    --out "$w/synqt_$p" --no-progress 2>&1 | tail -1
done
LD_LIBRARY_PATH=${PETL_PY_LD_LIBRARY_PATH:-${LD_LIBRARY_PATH:-}} "$py" - "$w" "$out" "$dev" <<'PY'
import glob, json, sys
import h5py, numpy as np
w, out, dev = sys.argv[1:]
L = {k: h5py.File(f"{w}/logits_{k}.h5", "r")["logits"][:] for k in ("cpu_fp32", f"{dev}_fp32", f"{dev}_bf16")}
ref = L["cpu_fp32"]
rel = float(np.abs(L[f"{dev}_fp32"] - ref).max() / np.abs(ref).max())
agree = float(np.mean(L[f"{dev}_bf16"].argmax(1) == ref.argmax(1)))
res = {"device": dev, "images": int(len(ref)), "fp32_max_rel_diff": rel, "bf16_top1_agreement": agree}
for p in ("fp32", "bf16"):
    recs = [json.loads(l) for f in glob.glob(f"{w}/synqt_{p}/results.jsonl") for l in open(f) if l.strip()]
    r = recs[-1] if recs else {}
    res[f"synqt_{p}"] = {"status": r.get("status"), "accuracy": r.get("accuracy"),
                               "peak_train_mib": r.get("memory", {}).get("peak_train_mib"),
                               "peak_train_reserved_mib": r.get("memory", {}).get("peak_train_reserved_mib"),
                               "train_s": r.get("timing", {}).get("train_s")}
json.dump(res, open(f"{out}/agree.json", "w"), indent=1)
ok = rel <= 1e-4 and agree >= 0.99 and all(res[f"synqt_{p}"]["status"] == "ok" for p in ("fp32", "bf16"))
print(json.dumps(res))
print(("PASS" if ok else "FAIL") + f": fp32 max rel diff {rel:.3g} (<= 1e-4), bf16 top-1 agreement {agree:.4f} "
      f"(>= 0.99) on {len(ref)} images, synqt on {dev}: " + ", ".join(
          f"{p} {res[f'synqt_{p}']['status']}" for p in ("fp32", "bf16")))
sys.exit(0 if ok else 1)
PY

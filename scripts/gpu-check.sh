#!/usr/bin/env bash
# The GPU check (issue 14), in one command on a machine with a CUDA PyTorch (its LibTorch), nvcc,
# CMake, ninja and a C++ compiler, but none of petl's other libraries: those come as Debian
# packages carried in .deps/ (scripts/carry-deps.sh, run on Debian 12 before).
#   scripts/gpu-check.sh OUTDIR
# Steps, each time-boxed so that the whole run stays under ~8 minutes and every step's figures
# reach OUTDIR even when a later one fails:
#   1 env       machine, driver, torch, nvcc, compilers                       → env.txt
#   2 build     unpack .deps, configure against torch's LibTorch (CUDA) + NCCL, build petl and
#               petl_cuda_tests (ccache off, all cores)                       → build.log
#   3 tests     ctest -L cuda: CUDA vs CPU (fp32 ≤ 1e-4 relative), meter, NCCL  → cuda-tests.log
#   4 agree     a linear probe trained on CPU; `petl eval` CPU fp32 vs CUDA fp32 (≤ 1e-4) and CUDA
#               bf16 (top-1 agreement ≥ 99 %) on the embedded suite's test split; SynQT trains on CUDA
#   5 farm      `mpirun -np 2 petl sweep --gpus-per-node 1` on the embedded suite  → farm.log
#   6 bench     petl bench at ViT-B/16, every method, batch 64 and 128, fp32 and bf16; petl bench
#               --cached (SynQT live vs resident features in GPU memory)       → bench-*.jsonl
#   7 summary   summary.json and summary.md (what passed, the figures)
# On this workplace's device machine (the device tool's run; at most 8 files come back):
#   run(command="timeout 500 bash scripts/gpu-check.sh /tmp/gc; tar czf $OUT/gpu-check.tgz -C /tmp gc;
#       cp /tmp/gc/summary.md /tmp/gc/steps.txt $OUT/", carry=[".deps"], timeout_s=560)
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
t0=$(date +%s)
deadline=$((t0 + ${PETL_GPU_CHECK_SECONDS:-470}))  # every step's time limit is cut to what is left
tl() { local l=$((deadline - $(date +%s))); [ "$l" -lt "$1" ] && echo $((l > 5 ? l : 5)) || echo "$1"; }
py=${PETL_PYTHON:-python3}
status() { echo "$1 $2" >> "$out/steps.txt"; echo "=== gpu-check: $1 $2 ($(( $(date +%s) - t0 )) s)"; }
: > "$out/steps.txt"

# 1 env
{
  date -u; uname -a; nvidia-smi 2>&1 | head -20
  $py -c 'import torch,sys; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None); print("cmake prefix", torch.utils.cmake_prefix_path)' 2>&1
  nvcc --version 2>&1 | tail -2; g++ --version 2>&1 | head -1; cmake --version | head -1; ninja --version; nproc
} > "$out/env.txt" 2>&1
status env done

# 2 build (a rehearsal on a machine without a GPU: PETL_GPU_CHECK_REHEARSE=BUILD_DIR runs every later
# step with that CPU build, on the CPU and the embedded architecture: the script's plumbing, not CUDA)
dev=cuda arch=vit_base_patch16_224_in21k gpus=1
if [ -n "${PETL_GPU_CHECK_REHEARSE:-}" ]; then
  b=$(cd "$PETL_GPU_CHECK_REHEARSE" && pwd) dev=cpu arch=petl_vit_mini_p8_32 gpus=0
  export PETL_PY_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
  status build "skipped: rehearsal on the CPU with $b"
else
  deps=/tmp/petl-deps
  bash scripts/unpack-deps.sh "$src/.deps" "$deps" > "$out/build.log" 2>&1 || { status build "failed: no carried packages"; exit 1; }
  torch_prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
  # NCCL and cuDNN from their wheels (nvidia/nccl or, for CUDA 13 wheels, nvidia/cu13): the folder
  # above the one holding the library.
  nv=$($py -c 'import os, torch; print(os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), "nvidia"))')
  wheel_root() { local f; f=$(find "$nv" -name "$1" 2>/dev/null | head -1); [ -n "$f" ] && dirname "$(dirname "$f")"; }
  export NCCL_ROOT=${NCCL_ROOT:-$(wheel_root 'libnccl.so*')}
  cudnn_root=$(wheel_root 'libcudnn.so*')
  echo "NCCL_ROOT=$NCCL_ROOT cuDNN=$cudnn_root" >> "$out/env.txt"
  # Python keeps the machine's own libraries (the carried ones are Debian 12's, for petl and mpirun).
  export PETL_PY_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
  source "$deps/env.sh"
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} CCACHE_DISABLE=1
  [ -d /usr/local/cuda ] && export CUDAToolkit_ROOT=/usr/local/cuda
  # The wheel's libraries (torch, NCCL, cuDNN...) for petl at run time.
  export LD_LIBRARY_PATH=$torch_prefix/../../lib:${NCCL_ROOT:+$NCCL_ROOT/lib:}$LD_LIBRARY_PATH
  b=$src/build-gpu
  timeout $(tl 420) cmake -S "$src" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix;$deps/usr" \
    $PETL_DEPS_CMAKE_ARGS ${cudnn_root:+-DCUDNN_ROOT=$cudnn_root} -DCMAKE_CUDA_ARCHITECTURES=90 >> "$out/build.log" 2>&1 &&
    grep "petl:" "$out/build.log" &&
    timeout $(tl 420) cmake --build "$b" -j "$(nproc)" --target petl petl_cuda_tests >> "$out/build.log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then tail -40 "$out/build.log"; status build "failed (exit $rc): see build.log"; exit 1; fi
  status build "ok: $(grep -o 'petl: LibTorch.*' "$out/build.log" | tail -1)"
fi
petl=$b/petl

# 3 CUDA tests
(cd "$b" && timeout $(tl 90) ctest -L cuda --output-on-failure -V) > "$out/cuda-tests.log" 2>&1
rc=$?
status tests "$( [ $rc -eq 0 ] && echo ok || echo "failed (exit $rc)"): $(grep -E 'tests passed|tests failed' "$out/cuda-tests.log" | tail -1)"

# 4 agreement on real images
w=/tmp/petl-gpu && rm -rf "$w" && mkdir -p "$w"
timeout $(tl 120) "$src/scripts/gpu_agree.sh" "$petl" "$w" "$out" "$dev" > "$out/agree.log" 2>&1
rc=$?
status agree "$( [ $rc -eq 0 ] && echo ok || echo "failed (exit $rc)"): $(tail -1 "$out/agree.log")"

# 5 the farm on two ranks, one GPU per node
cat > "$w/sweep.yaml" <<YAML
name: gpu
out: $w/sweep
data_root: $w/suite
methods: [linear, synqt]
tasks: [objects_dist, sprites_loc]
seeds: [0, 1]
epochs: 2
YAML
timeout $(tl 90) mpirun --allow-run-as-root --oversubscribe -np 2 "$petl" sweep "$w/sweep.yaml" --gpus-per-node $gpus \
  > "$out/farm.log" 2>&1
rc=$?
ok=$(cat "$w"/sweep/jobs/*/results.jsonl 2>/dev/null | grep -c '"status":"ok"')
cuda=$(cat "$w"/sweep/jobs/*/results.jsonl 2>/dev/null | grep -c "\"device\":\"$dev")
status farm "$( [ $rc -eq 0 ] && [ "$ok" -ge 8 ] && echo ok || echo "failed (exit $rc)"): $ok ok records, $cuda on $dev"

# 6 benchmarks
for p in fp32 bf16; do
  timeout $(tl 100) "$petl" bench --device $dev --arch $arch --precision $p --methods all --batch-sizes 64,128 --steps 5 \
    --json "$out/bench-$p.jsonl" > "$out/bench-$p.md" 2> "$out/bench-$p.log"
  status "bench-$p" "exit $?"
done
timeout $(tl 60) "$petl" bench --cached --device $dev --arch $arch --steps 5 --json "$out/bench-cached.jsonl" > "$out/bench-cached.md" \
  2> "$out/bench-cached.log"
status bench-cached "exit $?"

# 7 summary
LD_LIBRARY_PATH=$PETL_PY_LD_LIBRARY_PATH $py "$src/scripts/gpu_summary.py" "$out" > "$out/summary.md" 2>> "$out/steps.txt"
status summary "$(( $(date +%s) - t0 )) s in all"
cat "$out/steps.txt"

#!/usr/bin/env bash
# README command 1: install everything, build petl, and run the main job on the embedded default:
# every registered method on every task of the embedded suite "mini" (built on first use) with
# the embedded backbone, printing accuracy, trainable parameters and peak training memory.
# Extra arguments go to `petl demo` (e.g. --methods synqt,linear --epochs 5).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/install-deps.sh
bash scripts/build.sh petl
./build/petl demo --out runs/demo --data data/mini "$@"
echo "main job done in $(( $(date +%s) - start )) s (install + build + suite + training)"

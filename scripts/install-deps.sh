#!/usr/bin/env bash
# Installs every Debian package petl needs to build, test and run. Idempotent: a second run
# only checks. Called by both README commands and by .ci/run.
set -euo pipefail
PKGS=(
  cmake g++ make pkg-config ninja-build ccache clang-format
  libtorch-dev libopenblas0-openmp          # LibTorch (CPU) + the OpenMP OpenBLAS (docs/spec/platform.md BLAS trap)
  libopenmpi-dev openmpi-bin                # MPI job farming
  libhdf5-dev                               # feature cache / logits files
  libboost-program-options-dev              # CLI
  libgtest-dev libgmock-dev                 # tests
  nlohmann-json3-dev libyaml-cpp-dev        # JSON records / YAML configs
  libstb-dev libjpeg62-turbo-dev            # PNG (stb) and JPEG (libjpeg-turbo, as Pillow) decoding
  libzip-dev zlib1g-dev libssl-dev          # .npz (zip), gzip, SHA-256
  dataset-fashion-mnist                     # real data for the embedded suite
  gnuplot-nox                               # report plots (SVG + PNG)
  slurm-wlm munge                           # ctest -L slurm: a single-node test cluster runs slurm/*.sbatch
  iproute2 util-linux                       # ctest -L multinode: nodes as network namespaces (ip, nsenter, unshare)
  python3-torch python3-pil python3-h5py python3-numpy   # reference computations in tests
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "[install-deps] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "[install-deps] all ${#PKGS[@]} packages present"

#!/usr/bin/env bash
# Downloads, as Debian packages, every library petl needs besides LibTorch (headers, CMake/pkg-config
# files, shared libraries and their library dependencies, mpirun) into DIR (default: .deps), for a
# machine that has a compiler, CMake and a LibTorch but none of these (the GPU machine: issue 14).
# scripts/unpack-deps.sh unpacks them there into a prefix (dpkg -x) and prints the settings a build
# needs; scripts/gpu-check.sh does both. Run it here, on Debian 12, after scripts/install-deps.sh.
#   scripts/carry-deps.sh [DIR]        (about 40 MB of .deb files)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.deps}
mkdir -p "$out"
# What the build reads: headers, CMake package files, .pc files, the link-time .so names, mpicxx.
dev=(libboost1.74-dev libboost-program-options1.74-dev libhdf5-dev libhdf5-cpp-103-1 nlohmann-json3-dev
     libyaml-cpp-dev libssl-dev zlib1g-dev libjpeg62-turbo-dev libzip-dev libstb-dev libgtest-dev
     libopenmpi-dev openmpi-bin openmpi-common pkgconf pkgconf-bin libpkgconf3)
# What petl, its tests and mpirun load: the libraries above and what they load in turn (read off
# `ldd` of them, of orterun and of OpenMPI's and PMIx's plugins on Debian 12), less the C and C++
# runtimes, which the target's compiler brings (newer).
runtime=(libhdf5-103-1 libboost-program-options1.74.0 libyaml-cpp0.7 libzip4 libstb0 libjpeg62-turbo zlib1g
         libssl3 libopenmpi3 libpmix2 libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7 libmunge2
         libaec0 libsz2 libcurl4 libbrotli1 libnghttp2-14 libpsl5 librtmp1 libssh2-1 libldap-2.5-0 libsasl2-2
         libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2 libgnutls30 libhogweed6
         libnettle8 libgmp10 libidn2-0 libunistring2 libp11-kit0 libffi8 libtasn1-6 libzstd1 libudev1 libuuid1
         libbz2-1.0 libatomic1 libnuma1 libfabric1 libucx0 libibverbs1 ibverbs-providers librdmacm1 libnl-3-200
         libnl-route-3-200 libpsm2-2 libpsm-infinipath1)
rm -f "$out"/*.deb
(cd "$out" && apt-get -o APT::Sandbox::User=root download "${dev[@]}" "${runtime[@]}" >/dev/null)
echo "carry-deps: $(ls "$out"/*.deb | wc -l) packages, $(du -sh "$out" | cut -f1) in $out"

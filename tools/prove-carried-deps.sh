#!/usr/bin/env bash
# Proves here (Debian 12, as root) that the carried packages suffice: downloads them
# (scripts/carry-deps.sh), unpacks them into a prefix (scripts/unpack-deps.sh), then, in a private
# mount namespace where the system's copies of those libraries, headers, CMake files and MPI/HDF5
# wrappers are hidden, configures and builds petl against the prefix only (LibTorch and the
# compiler stay the system's), checks with ldd that petl's libraries resolve into the prefix, and
# runs `petl list`, a small training job and the MPI farm tests on 2 ranks with the prefix's mpirun.
#   tools/prove-carried-deps.sh [WORKDIR]     (default /tmp/petl-carried; ~7 min on 2 cores)
# PETL_CARRIED_KEEP_BUILD=1 keeps WORKDIR/build from an earlier run (only what changed is rebuilt).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/petl-carried}
targets=${PETL_CARRIED_TARGETS:-petl petl_mpi_tests}
mkdir -p "$work"
bash "$src/scripts/carry-deps.sh" "$work/debs"
rm -rf "$work/prefix"
bash "$src/scripts/unpack-deps.sh" "$work/debs" "$work/prefix"

# The part that runs with the system's copies hidden (a file: mpirun would read a script on stdin).
cat > "$work/inner.sh" <<'INNER'
set -euo pipefail
src=$1 work=$2 targets=$3
L=/usr/lib/x86_64-linux-gnu
empty=$(mktemp -d) && touch "$work/empty-file"
hide() {  # each path: a folder becomes empty, a file (or what a link points to) becomes empty
  for p in "$@"; do
    [ -e "$p" ] || continue
    if [ -d "$p" ]; then mount -t tmpfs none "$p"; else mount --bind "$work/empty-file" "$p"; fi
  done
}
hide /usr/include/boost /usr/include/hdf5 /usr/include/nlohmann /usr/include/yaml-cpp /usr/include/openssl \
     /usr/include/gtest /usr/include/gmock /usr/include/stb /usr/include/zip.h /usr/include/zipconf.h \
     /usr/include/jpeglib.h /usr/include/jerror.h /usr/include/jmorecfg.h /usr/include/x86_64-linux-gnu/jconfig.h \
     /usr/include/zlib.h /usr/include/zconf.h \
     $L/openmpi $L/hdf5 $L/pmix2 /usr/share/openmpi $L/cmake/yaml-cpp $L/cmake/GTest $L/cmake/Boost-1.74.0 \
     $L/cmake/boost_headers-1.74.0 $L/cmake/boost_program_options-1.74.0 $L/cmake/libzip /usr/share/cmake/nlohmann_json \
     $L/pkgconfig /usr/share/pkgconfig \
     $L/libboost_program_options.so.1.74.0 $L/libyaml-cpp.so.0.7.0 $L/libzip.so.4.0 $L/libstb.so.0 \
     $L/libhdf5_serial.so.103.3.0 $L/libhdf5_serial_cpp.so.103.3.0 $L/libmpi.so.40.30.4 $L/libopen-pal.so.40.30.2 \
     $L/libopen-rte.so.40.30.2 $L/libpmix.so.2.6.2 $L/libgtest.a $L/libgtest_main.a \
     $L/libjpeg.so.62.3.0 \
     /usr/bin/mpicxx.openmpi /usr/bin/mpicc.openmpi /usr/bin/orterun /usr/bin/orted /usr/bin/h5cc /usr/bin/h5c++ \
     /usr/bin/pkgconf
source "$work/prefix/env.sh"
echo "prove-carried-deps: system copies hidden; building against $PETL_DEPS_PREFIX"
[ -n "${PETL_CARRIED_KEEP_BUILD:-}" ] || rm -rf "$work/build"
CCACHE_DISABLE=1 cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release $PETL_DEPS_CMAKE_ARGS \
  | grep -E "petl:|Found (MPI|HDF5|Boost|GTest|nlohmann|yaml|PkgConfig)|libzip|stb" || true
CCACHE_DISABLE=1 cmake --build "$work/build" -j "$(nproc)" --target $targets
echo "--- ldd petl (our libraries must resolve into the prefix)"
bad=0
for lib in libhdf5_serial libhdf5_serial_cpp libboost_program_options libyaml-cpp libzip libstb libjpeg libmpi \
           libopen-pal libopen-rte libcrypto libz.so; do
  where=$(ldd "$work/build/petl" | awk -v l="$lib" 'index($1, l) == 1 {print $3}' | head -1)
  case "$where" in
    "$PETL_DEPS_PREFIX"/*) echo "ok   $lib -> $where" ;;
    *) echo "FAIL $lib -> ${where:-not found}"; bad=1 ;;
  esac
done
"$work/build/petl" list >/dev/null && echo "ok   petl list"
cd "$work"
"$work/build/petl" suite --out "$work/suite" --no-progress >/dev/null && echo "ok   petl suite"
"$work/build/petl" run --method linear --task objects_dist --data-root "$work/suite" --epochs 1 --threads 2 \
  --out "$work/runs" --no-progress 2>&1 | tail -1
ls "$PETL_DEPS_PREFIX"/usr/lib/x86_64-linux-gnu/pmix2/lib/pmix/*.so >/dev/null && echo "ok   PMIx plugins in the prefix"
mpirun --allow-run-as-root --oversubscribe -np 2 "$work/build/tests/petl_mpi_tests" --gtest_brief=1 2>&1 | tail -2
echo "mpirun: $(command -v mpirun) -> $(readlink -f "$(command -v mpirun)")"
case "$(readlink -f "$(command -v mpirun)")" in "$PETL_DEPS_PREFIX"/*) echo "ok   mpirun is the prefix's" ;; *) echo "FAIL mpirun is not the prefix's"; bad=1 ;; esac
mpirun --allow-run-as-root --oversubscribe -np 2 "$work/build/petl" list >/dev/null && echo "ok   the prefix's mpirun starts petl on 2 ranks"
exit $bad
INNER
exec unshare -m --propagation private bash "$work/inner.sh" "$src" "$work" "$targets" < /dev/null

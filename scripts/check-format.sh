#!/usr/bin/env bash
# Fails (exit 1) when a C++ file of the project is not formatted as .clang-format says, naming the
# files and how to fix them; `scripts/check-format.sh --fix` formats them in place. The `format`
# test runs it, so CI fails on unformatted code. clang-format comes from Debian (install-deps).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format not found (bash scripts/install-deps.sh)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.h' '*.cpp' 2>/dev/null || find . -path ./build -prune -o \( -name '*.h' -o -name '*.cpp' \) -print)
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  echo "check-format: formatted ${#files[@]} files"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format: ${#bad[@]} of ${#files[@]} files are not formatted with .clang-format ($(clang-format --version)):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix: bash scripts/check-format.sh --fix   (or clang-format -i FILE)" >&2
  exit 1
fi
echo "check-format: all ${#files[@]} C++ files formatted"

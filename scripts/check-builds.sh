#!/usr/bin/env bash
# Every build type with both compilers, warnings as errors: what a packager
# or a contributor on another compiler builds first. make test builds gcc
# RelWithDebInfo (build/) and gcc Debug with the sanitizers (build-asan/)
# itself; this builds the rest of the matrix, every target, in
# build-matrix/<compiler>-<type>/, and names the first one that fails.
#   scripts/check-builds.sh [--all]   --all: the two make test builds too
set -euo pipefail
cd "$(dirname "$0")/.."
all=0
[ "${1:-}" = --all ] && all=1
jobs=$(nproc)
mkdir -p build-matrix
failed=()
for cc in gcc clang; do
  command -v "$cc" >/dev/null || { echo "check-builds: $cc is not installed (scripts/bootstrap.sh --test installs it)" >&2; exit 1; }
  for type in Debug RelWithDebInfo Release; do
    if [ $all = 0 ] && [ "$cc" = gcc ] && [ "$type" != Release ]; then
      continue
    fi
    dir=build-matrix/$cc-$type
    t0=$SECONDS
    if CC=$cc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=$type >"$dir.log" 2>&1 &&
       cmake --build "$dir" -j "$jobs" >>"$dir.log" 2>&1; then
      echo "check-builds: $cc $type: ok ($((SECONDS - t0)) s)"
    else
      echo "check-builds: $cc $type: FAILED ($dir.log):" >&2
      grep -E 'error|warning' "$dir.log" | head -20 >&2 || tail -20 "$dir.log" >&2
      failed+=("$cc $type")
    fi
  done
done
[ ${#failed[@]} -eq 0 ] || { echo "check-builds: FAILED: ${failed[*]}" >&2; exit 1; }

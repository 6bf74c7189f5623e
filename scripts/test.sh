#!/usr/bin/env bash
# Checks the format and the purity of features/ and models/
# (scripts/check-style.sh), then builds and runs every test twice: a
# normal build, then under AddressSanitizer + UndefinedBehaviorSanitizer;
# then the install check
# (scripts/check-install.sh), the fault suite's quick
# subset (build/loy_faults --quick), a short libFuzzer run of every fuzz
# target (scripts/fuzz.sh --quick, ~20 s each; needs clang) and every
# command of the README (scripts/readme-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
# format and purity first: seconds, and what a change most often breaks
echo "== style"
make --no-print-directory check-style
echo "== build types"
make --no-print-directory check-builds
jobs=$(nproc)
for variant in build build-asan; do
  flags=()
  [ "$variant" = build-asan ] && flags=(-DLOY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  cmake -S . -B "$variant" "${flags[@]}" >/dev/null
  cmake --build "$variant" -j "$jobs" >/dev/null
  echo "== tests ($variant)"
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir "$variant" --output-on-failure
done
# What `cmake --install` puts in place works (unit, config, alert rules).
echo "== install"
scripts/check-install.sh build
# The fault suite's quick subset against the real binaries (docs/faults.md;
# the seed is printed, `build/loy_faults --quick --seed N` replays it), and
# its hostile corpus once more against the sanitized loyaltyd.
echo "== faults (quick)"
make --no-print-directory faults-quick
ASAN_OPTIONS=detect_leaks=1 build/loy_faults --quick --bin build-asan/loyaltyd hostile
echo "== fuzz (quick)"
make --no-print-directory fuzz-quick
# Every command of README.md as written (scripts/readme-commands): the
# long ones only started and stopped; `make readme-check FULL=1` runs them.
echo "== README"
make --no-print-directory readme-check

#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan in build-fuzz/ and runs each one in turn (one fuzzer process at a
# time), then prints executions and crashes per target. Exits non-zero when
# a target crashed, leaked, timed out or ran out of memory, or when clang
# (or its libFuzzer runtime) is missing.
#
#   scripts/fuzz.sh                  every target, FUZZ_SECONDS (600) each;
#                                    corpora grow in build-fuzz/corpus/<t>
#   scripts/fuzz.sh --quick          every target ~20 s (FUZZ_QUICK_SECONDS)
#                                    from the seed corpus only
#   scripts/fuzz.sh decode model     only these targets
#
# Seeds: tests/fuzz/corpus/<t>/ (read, never written). Crash inputs:
# build-fuzz/artifacts/<t>/; replay one with build-fuzz/fuzz_<t> <file>.
# Logs: build-fuzz/logs/<t>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
targets=()
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz: unknown option $a" >&2; exit 2 ;;
    *) targets+=("${a#fuzz_}") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(decode config model pack)
if [ "$quick" = 1 ]; then
  secs=${FUZZ_QUICK_SECONDS:-20}
else
  secs=${FUZZ_SECONDS:-600}
fi
bdir=${FUZZ_BUILD_DIR:-build-fuzz}

scripts/bootstrap.sh
cc=${FUZZ_CC:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "fuzz: FAILED: $cc not found (scripts/bootstrap.sh installs clang)" >&2
  exit 1
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)'\
'{ (void)d; (void)n; return 0; }\n' > "$probe/p.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" \
     >"$probe/log" 2>&1; then
  cat "$probe/log" >&2
  echo "fuzz: FAILED: $cc cannot link -fsanitize=fuzzer (libclang-rt-*-dev)" >&2
  exit 1
fi

CC="$cc" cmake -S . -B "$bdir" -DLOY_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  >/dev/null
cmake --build "$bdir" -j "${FUZZ_BUILD_JOBS:-2}" \
  --target "${targets[@]/#/fuzz_}" >/dev/null

mkdir -p "$bdir/logs"
failed=0
summary=()
for t in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/$t
  art=$bdir/artifacts/$t
  log=$bdir/logs/$t.log
  if [ "$quick" = 1 ]; then
    corpus=$bdir/corpus-quick/$t
    rm -rf "$corpus"
  else
    corpus=$bdir/corpus/$t
  fi
  mkdir -p "$corpus" "$art"
  [ -d "$seeds" ] || { echo "fuzz: no seed corpus $seeds" >&2; exit 1; }
  before=$(find "$art" -type f | wc -l)
  echo "== fuzz_$t: ${secs}s, corpus $corpus (seeds $seeds)"
  rc=0
  # -timeout: one input taking 10 s is a hang; leaks and UBSan reports
  # are crashes too (-fno-sanitize-recover in the build)
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "$bdir/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/" "$corpus" "$seeds" \
    >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(find "$corpus" -type f | wc -l)
  new=$(( $(find "$art" -type f | wc -l) - before ))
  crashes=$(grep -c 'Test unit written to' "$log" || true)
  line=$(printf '%-12s %7ss %12s execs %8s/s %6s corpus  %s crash(es)' \
         "fuzz_$t" "$secs" "${execs:-?}" "${rate:-?}" "$units" "$crashes")
  if [ "$rc" != 0 ] || [ "$crashes" != 0 ] || [ "$new" -gt 0 ]; then
    failed=1
    line="$line  FAILED (exit $rc)"
    echo "fuzz_$t FAILED; the end of $log:" >&2
    grep -v '^#[0-9]' "$log" | tail -40 >&2
    grep 'Test unit written to' "$log" | sed 's/^.*written to /  input: /' >&2
  fi
  echo "$line"
  summary+=("$line")
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
[ "$failed" = 0 ] || { echo "fuzz: FAILED" >&2; exit 1; }

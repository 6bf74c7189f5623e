#!/usr/bin/env bash
# What the build's tools enforce beyond warnings (../shared/STYLE.md):
#   1. every C file is as clang-format (.clang-format) writes it;
#      --fix rewrites them instead (`make format`);
#   2. features/ and models/ stay pure: they include the C library, POSIX,
#      GSL and each other, never Kafka, Redis, Avro, HTTP or the stream/
#      and state/ modules (DESIGN.md).
# Usage: scripts/check-style.sh [--fix]
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find cmd stream state features models config tests \
                      examples -name '*.[ch]' 2>/dev/null | sort)
[ ${#files[@]} -gt 0 ] || { echo "check-style: no C files found" >&2; exit 1; }
command -v clang-format >/dev/null || { echo "check-style: clang-format is missing" >&2; exit 1; }
if [ "${1:-}" = --fix ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=0
unformatted=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
done
if [ ${#unformatted[@]} -gt 0 ]; then
  echo "check-style: not as clang-format writes them (make format fixes them; 'clang-format FILE | diff FILE -' shows how):" >&2
  printf '  %s\n' "${unformatted[@]}" >&2
  bad=1
fi
# the pure code: features/, models/ and the settings table type they use
pure=(features/*.[ch] models/*.[ch] config/loy_confmap.[ch])
# an include is pure when it is <name.h> (C library, POSIX), <gsl/...>, a
# quoted header of features/ or models/, or config/loy_confmap.h
impure=$(grep -Hn '^[[:space:]]*#[[:space:]]*include' "${pure[@]}" |
  grep -Ev '#[[:space:]]*include[[:space:]]*(<[a-z0-9_]+\.h>|<sys/[a-z0-9_]+\.h>|<gsl/[a-z0-9_]+\.h>|"(\.\./(features|models)/)?loy_[a-z0-9_]+\.h"|"(\.\./config/)?loy_confmap\.h")' || true)
if [ -n "$impure" ]; then
  echo "check-style: features/ and models/ must stay pure (no Kafka, Redis, Avro, HTTP, stream/ or state/ headers):" >&2
  echo "$impure" | sed 's/^/  /' >&2
  bad=1
fi
# a quoted header must be one of the pure ones itself
while IFS= read -r inc; do
  file=${inc%%:*}; hdr=$(sed -E 's/.*"([^"]+)".*/\1/' <<< "$inc")
  path=$(realpath -m --relative-to=. "$(dirname "$file")/$hdr")
  case " ${pure[*]} " in
    *" $path "*) ;;
    *) echo "check-style: $file includes \"$hdr\", not a header of features/, models/ or config/loy_confmap.h" >&2; bad=1 ;;
  esac
done < <(grep -H '#[[:space:]]*include[[:space:]]*"' "${pure[@]}")
[ $bad -eq 0 ] && echo "check-style: ${#files[@]} files formatted; features/, models/ and config/loy_confmap pure"
exit $bad

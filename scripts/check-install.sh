#!/usr/bin/env bash
# The install target and what it installs (docs/operations.md), from a
# built tree: `cmake --install` into a temporary prefix, the installed
# loyaltyd checks the installed config and model, the systemd unit passes
# systemd-analyze without a warning, a second install keeps an edited
# config, and the Prometheus examples pass promtool (config, rules, the
# rules' unit tests), and the examples' sources build from where they are
# installed. Usage: scripts/check-install.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
prefix=$(mktemp -d /tmp/loy-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "check-install: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
conf="$prefix/etc/loyaltyd/loyaltyd.conf"
unit="$prefix/lib/systemd/system/loyaltyd.service"
for f in "$prefix/bin/loyaltyd" "$prefix/bin/loyaltyctl" "$conf" \
         "$prefix/etc/loyaltyd/model.default" "$unit" \
         "$prefix/share/doc/loyaltyd/operations.md" \
         "$prefix/share/loyaltyd/prometheus/loyaltyd-alerts.yml"; do
  [ -e "$f" ] || fail "missing $f"
done
examples="$prefix/share/doc/loyaltyd/examples"
for f in README.md produce_purchase.c read_scores.c consume_triggers.c \
         purchase.avsc reward_trigger.avsc; do
  [ -e "$examples/$f" ] || fail "missing $examples/$f"
done
# as examples/README.md says to build them: public libraries only
for e in produce_purchase:"rdkafka avro-c" consume_triggers:"rdkafka avro-c" \
         read_scores:hiredis; do
  # shellcheck disable=SC2046
  out=$(cc -Wall -Wextra -Werror -o "$prefix/${e%%:*}" "$examples/${e%%:*}.c" \
        $(pkg-config --cflags --libs ${e#*:}) 2>&1) \
    || fail "installed ${e%%:*}.c does not build: $out"
  (cd "$examples" && "$prefix/${e%%:*}" --help >/dev/null) \
    || fail "installed ${e%%:*} does not answer --help"
done
# from elsewhere: the model path is relative to the config file
(cd / && "$prefix/bin/loyaltyd" -c "$conf" --check) || fail "installed config refused"
grep -q "^ExecStart=$prefix/bin/loyaltyd -c $conf\$" "$unit" \
  || fail "unit does not start the installed binary on the installed config"
expire="$prefix/lib/systemd/system/loyaltyd-expire"
grep -q "^ExecStart=$prefix/bin/loyaltyctl expire -c $conf\$" "$expire.service" \
  || fail "expiry unit does not run the installed loyaltyctl on the installed config"
out=$(systemd-analyze verify "$unit" "$expire.service" "$expire.timer" 2>&1) \
  || fail "systemd-analyze: $out"
[ -z "$out" ] || fail "systemd-analyze warns: $out"

echo "# edited" >> "$conf"
cmake --install "$build" --prefix "$prefix" >/dev/null
grep -q "^# edited" "$conf" || fail "a second install overwrote the edited config"
[ -e "$conf.new" ] || fail "a second install did not put the shipped config beside it"

(cd "$prefix/share/loyaltyd/prometheus" &&
   promtool check config prometheus.yml >/dev/null &&
   promtool test rules loyaltyd-alerts.test.yml >/dev/null) \
  || fail "promtool refused the Prometheus examples"
echo "check-install: ok ($prefix)"

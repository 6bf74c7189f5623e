#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need, when
# any is missing. Idempotent: does nothing on a machine that has them.
set -euo pipefail
pkgs=(build-essential cmake pkg-config librdkafka-dev libavro-dev
      libhiredis-dev libcunit1-dev libjansson-dev libgsl-dev zlib1g-dev
      libmicrohttpd-dev           # /metrics, /healthz, /readyz (docs/operations.md)
      libssl-dev                  # HMAC pseudonyms (docs/privacy.md)
      redis-server kafkacat gnuplot-nox curl
      stunnel4 openssl           # TLS to Redis: a stunnel client (docs/redis-keys.md)
      clang libclang-rt-14-dev)   # fuzz targets: clang + libFuzzer runtime
# --test: also what only the tests use (promtool checks the metrics text and
# the alert rules, systemd-analyze the unit, headless chromium renders the
# dashboard, socat puts the README's localhost:9092 in front of the mock
# cluster for scripts/readme-check.sh, whose private network needs ip to
# bring its loopback up, clang-format checks the format); not installed for the demo, as
# Debian's prometheus package also sets up a Prometheus server.
[ "${1:-}" = --test ] && pkgs+=(prometheus systemd chromium fonts-dejavu-core socat iproute2 clang-format)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "bootstrap: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system redis on 6379; loyaltyd's tests and demo use their
# own private servers, so the system one is left as the admin configured it.

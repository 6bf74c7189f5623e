#!/usr/bin/env bash
# Runs every command of README.md as written (scripts/readme-commands says
# how each one is run and what must hold afterwards) and fails when one
# fails, or when the README and that table disagree on the commands.
#
# The commands run as a new user runs them: from the repository's top
# folder, against a Redis on localhost:6379 (and 6380) and a Kafka on
# localhost:9092 (and broker:9092). So that nothing of this machine is in
# the way or touched, they run in private user, network, mount and PID
# namespaces (unshare): loopback is theirs, /etc/hosts says "broker", HOME
# is a scratch folder, and every process they leave is gone at the end.
# The Kafka is librdkafka's mock cluster (`loyaltyctl kafka`) behind socat.
#
# Usage: scripts/readme-check.sh [--full] [--list]
#   --full  run the "bounded" commands (benchmarks, the full fault suite,
#           long fuzzing, a paced replay) to their end as well
#   --list  print the README's commands as the check reads them, and stop
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
table=scripts/readme-commands
full=0 list=0
for a in "$@"; do
  case $a in
    --full) full=1 ;;
    --list) list=1 ;;
    *) echo "usage: scripts/readme-check.sh [--full] [--list]" >&2; exit 2 ;;
  esac
done

# README.md -> its commands, one per line: the lines of ```sh blocks
# (trailing comments cut) and the code spans of prose that start like a
# command (paragraphs joined first: a span may wrap).
readme_commands() {
  awk '
  function flush(   rest, span) {
    rest = para
    while (match(rest, /`[^`]+`/)) {
      span = substr(rest, RSTART + 1, RLENGTH - 2)
      rest = substr(rest, RSTART + RLENGTH)
      if (span ~ /^(build\/|build-fuzz\/|scripts\/|make( |$)|cmake |ctest|redis-cli|kcat |curl |openssl |FUZZ_SECONDS=)/)
        print span
    }
    para = ""
  }
  /^```/ { if (inblock) inblock = 0; else { flush(); inblock = 1 }; next }
  inblock {
    line = $0
    if (line ~ /^[[:space:]]*(#|$)/) next
    sub(/[[:space:]]+#[[:space:]].*$/, "", line)
    sub(/[[:space:]]+$/, "", line)
    print line
    next
  }
  /^[[:space:]]*$/ { flush(); next }
  { para = para " " $0 }
  END { flush() }' README.md
}
table_commands() { grep -v -e '^#' -e '^%' -e '^[[:space:]]*$' "$table"; }

if [ $list = 1 ]; then readme_commands; exit 0; fi

# The two lists first: cheap, and what a README edit breaks.
diff_out=$(diff <(readme_commands | sort -u) <(table_commands | sort -u) || true)
if [ -n "$diff_out" ]; then
  echo "readme-check: README.md and $table disagree (< only in the README: add it to the table with how to run it; > only in the table):" >&2
  echo "$diff_out" | grep '^[<>]' >&2
  exit 1
fi
dups=$(table_commands | sort | uniq -d)
[ -z "$dups" ] || { echo "readme-check: listed twice in $table: $dups" >&2; exit 1; }

if [ -z "${LOY_README_NS:-}" ]; then
  # what the commands need, installed while the network is still there
  scripts/bootstrap.sh --test
  for tool in unshare ip socat redis-server redis-cli kcat curl; do
    command -v $tool >/dev/null || { echo "readme-check: $tool is missing" >&2; exit 1; }
  done
  if ! unshare -rnmpf --mount-proc true 2>/dev/null; then
    echo "readme-check: cannot create private namespaces (unshare -rnmpf: user namespaces disabled?)" >&2
    exit 1
  fi
  exec unshare -rnmpf --mount-proc env LOY_README_NS=1 "$0" "$@"
fi

# ---- inside the namespaces: PID 1, a loopback of our own ----------------
ip link set lo up
T=$(mktemp -d /tmp/loy-readme-XXXXXX)
export T
printf '127.0.0.1 localhost broker\n::1 localhost\n' > "$T/hosts"
mount --bind "$T/hosts" /etc/hosts
mkdir -p "$T/home"
export HOME="$T/home"
# the README's outputs in the tree: set aside what a developer had there
for f in model.fitted cdnow.model; do
  [ -e "$f" ] && mv "$f" "$T/saved.$f"
done
restore() {
  for f in model.fitted cdnow.model; do
    rm -f "$top/$f"
    [ -e "$T/saved.$f" ] && mv "$T/saved.$f" "$top/$f"
  done
  return 0
}
trap restore EXIT

# wait_for SECS 'SNIPPET': the snippet is evaluated anew on every try
wait_for() {
  local end=$((SECONDS + $1))
  until bash -c "$2"; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.5
  done
}
export -f wait_for

for port in 6379 6380; do
  redis-server --port $port --bind '127.0.0.1 ::1' --save '' --appendonly no \
    --dir "$T" --logfile "$T/redis-$port.log" --daemonize yes
done
build/loyaltyctl kafka > "$T/kafka.addr" 2> "$T/kafka.log" &
wait_for 30 'grep -Eq "^127\.0\.0\.1:[0-9]+$" "$T/kafka.addr"' \
  || { echo "readme-check: the embedded Kafka did not start" >&2; cat "$T/kafka.log" >&2; exit 1; }
# on both loopback addresses, as a broker listening on all interfaces:
# kcat gives up when the first address of localhost (::1) refuses
socat TCP-LISTEN:9092,bind=127.0.0.1,fork,reuseaddr "TCP:$(head -1 "$T/kafka.addr")" &
socat TCP6-LISTEN:9092,bind=[::1],fork,reuseaddr "TCP:$(head -1 "$T/kafka.addr")" &
wait_for 30 'redis-cli -p 6380 ping >/dev/null'
wait_for 30 'exec 3<>/dev/tcp/127.0.0.1/9092 && exec 4<>/dev/tcp/::1/9092'

n=0 failed=0
bgs=()          # "pid<TAB>command" of the bg commands, stopped at the end
fail() { echo "FAIL  $1"; echo "      $2"; [ -s "$OUT" ] && tail -n 15 "$OUT" | sed 's/^/      | /'; failed=$((failed + 1)); }
# starts a command in its own process group, a child of this shell: $pid
start() { setsid bash -c "$1" > "$OUT" 2>&1 < /dev/null & pid=$!; }
# SIGTERM to its group, then its exit status (KILL after 60 s: 137)
stop() {
  local pid=$1 i
  kill -TERM -- -"$pid" 2>/dev/null || true
  for i in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- -"$pid" 2>/dev/null || true
  wait "$pid"
}
# polls the check while the command runs: 0 held, 1 timed out, 2 it ended
poll() {
  local pid=$1 secs=$2 check=$3 end=$((SECONDS + $2))
  while :; do
    kill -0 "$pid" 2>/dev/null || { bash -c "$check" >/dev/null 2>&1 && return 0; return 2; }
    bash -c "$check" >/dev/null 2>&1 && return 0
    [ $SECONDS -lt $end ] || return 1
    sleep 0.5
  done
}

run_one() {
  local mode=$1 args=$2 cmd=$3 rc=0 pid t0=$SECONDS
  n=$((n + 1))
  export OUT="$T/out.$n"
  : > "$OUT"
  [ $full = 1 ] && [ "$mode" = bounded ] && { mode=run; args=${args#* }; }
  case $mode in
    run|install|copy|arg)
      local where=$top envs=()
      [ $mode = install ] && { export DESTDIR="$T/dest"; envs=(DESTDIR="$DESTDIR"); }
      if [ $mode = copy ]; then
        where="$T/copy"; mkdir -p "$where"
        if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
          git ls-files -z | xargs -0 cp --parents -t "$where"
        else
          tar -C "$top" --exclude='./build*' -cf - . | tar -C "$where" -xf -
        fi
      fi
      local c=$cmd
      [ $mode = arg ] && { local ph=${args%%=*}; c=${cmd//"$ph"/$(eval "echo ${args#*=}")}; args=""; }
      (cd "$where" && env "${envs[@]}" timeout 1800 bash -c "$c") > "$OUT" 2>&1 < /dev/null || rc=$?
      [ $mode = copy ] || [ $mode = arg ] && args=""
      if [ $rc -ne 0 ]; then fail "$cmd" "exit $rc ($mode)"
      elif [ -n "$args" ] && ! bash -c "$args" >/dev/null 2>&1; then fail "$cmd" "exit 0, but not: $args"
      else echo "ok    $cmd  ($mode, $((SECONDS - t0)) s)"; fi
      unset DESTDIR ;;
    serve|bg|bounded)
      local secs=${args%% *} check=${args#* }
      start "$cmd"
      poll "$pid" "$secs" "$check" || rc=$?
      if [ $rc -ne 0 ]; then
        [ $rc = 2 ] && { wait "$pid" || true; fail "$cmd" "ended before: $check"; } \
                    || { stop "$pid" || true; fail "$cmd" "not within $secs s: $check"; }
      elif [ $mode = bg ]; then
        bgs+=("$pid	$cmd"); echo "ok    $cmd  (bg: $check after $((SECONDS - t0)) s; runs on)"
      elif [ $mode = bounded ]; then
        stop "$pid" || true; echo "ok    $cmd  (bounded: $check after $((SECONDS - t0)) s, still running; stopped)"
      else
        stop "$pid" || rc=$?
        if [ $rc -ne 0 ]; then fail "$cmd" "exit $rc on SIGTERM"
        else echo "ok    $cmd  (serve: $check after $((SECONDS - t0)) s; exit 0 on SIGTERM)"; fi
      fi ;;
    ci)
      local file=${args%% *} text=${args#* }
      if grep -qF -- "$text" "$file"; then echo "ok    $cmd  (ci: $file runs \"$text\")"
      else fail "$cmd" "$file does not run \"$text\""; fi ;;
    name)
      local w=${cmd%% *}
      if [ -e "$w" ] || command -v "$w" >/dev/null; then echo "ok    $cmd  (named: exists)"
      else fail "$cmd" "names $w, which does not exist"; fi ;;
    *) echo "readme-check: $table: unknown mode $mode" >&2; exit 2 ;;
  esac
}

echo "== README commands (scripts/readme-commands; scratch $T)"
mode="" args=""
while IFS= read -r line; do
  case $line in
    '#'*|'') continue ;;
    '% '*) read -r mode args <<< "${line#% }"; continue ;;
  esac
  [ -n "$mode" ] || { echo "readme-check: $table: a command before any % line" >&2; exit 2; }
  run_one "$mode" "$args" "$line"
done < "$table"

for b in "${bgs[@]}"; do
  pid=${b%%	*} cmd=${b#*	}
  export OUT="$T/out.stop.$pid"
  rc=0; stop "$pid" || rc=$?
  [ $rc -eq 0 ] && echo "ok    $cmd  (exit 0 on SIGTERM)" || fail "$cmd" "exit $rc on SIGTERM"
done
echo "readme-check: $n commands, $failed failed"
[ $failed -eq 0 ]

#!/usr/bin/env bash
# bench-alloc: start N tfsite agents (the tfsite-agent binary the appliance runs) at once as separate processes on this
# machine (each on its own loopback address 127.211.X.Y, default ports), and
# measure the time until every site holds a committed allocation (its durable
# record is written only after the commit), and the RSS of every agent process.
# Prints one table row per N. No root needed; nothing leaves loopback.
#
# Usage: hack/bench-alloc.sh [N...]        (default: 10 100 500)
#   VOTERS=3      number of voter sites (site-1..site-VOTERS)
#   PROFILE=wan   gossip timers (lan, wan, local)
#   RAFT=3        allocator.raftMultiplier (scales the voters' Raft timeouts)
#   GOMAXPROCS=1  passed to every agent (Go runtime threads running Go code)
# The defaults are the settings for a large fleet (docs/benchmarks.md): with
# the agent's own defaults (lan, 1, one P per core) 100 sites are fine but
# 500 agents sharing 2 cores overload the machine and the voters' Raft.
#   TIMEOUT=180   seconds to wait for every allocation
#   BIN=path      use this tfsite-agent binary instead of building one
#   LOGS=dir      keep every agent's log in dir/nN/site-I.log
#   HOLD=0        keep each fleet running this many seconds after measuring
#                 (to profile it, e.g. perf record -g -p PID; the agent PIDs
#                 are listed in $work/pids)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 500)
VOTERS=${VOTERS:-3}
PROFILE=${PROFILE:-wan}
RAFT=${RAFT:-3}
export GOMAXPROCS=${GOMAXPROCS:-1}
TIMEOUT=${TIMEOUT:-180}

work=$(mktemp -d /tmp/bench-alloc.XXXXXX)
pids=()
cleanup() {
  if [ ${#pids[@]} -gt 0 ]; then kill -9 "${pids[@]}" 2>/dev/null || true; sleep 0.5; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${BIN:-}" ]; then
  BIN=$work/tfsite-agent
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$BIN" ./cmd/tfsite-agent
fi
ulimit -n 65536 2>/dev/null || true

addr() { echo "127.211.$(( $1 / 250 )).$(( $1 % 250 + 1 ))"; }
# Encrypted gossip and authenticated allocator RPC, as in production.
printf 'gossip:\n  profile: %s\n  key: %s\nallocator:\n  raftMultiplier: %s\n' \
  "$PROFILE" "$(head -c32 /dev/urandom | base64)" "$RAFT" >"$work/common.yaml"

voters=$(seq -s, -f 'site-%g' 1 "$VOTERS")
seeds="$(addr 1),$(addr 2),$(addr 3)"

# RSS counts the binary's text pages, which every agent maps from the same
# file (stored once); PSS divides shared pages among the processes sharing
# them, anon is each process's own heap and stacks.
# spawn_s: time to fork all N agents; first_s: time of the first committed
# allocation (roughly when the voters had elected a leader); cpu_pct: CPU of all agents together in
# the 5 s after the last allocation, in % of one core (the machine has 2).
echo "profile=$PROFILE raftMultiplier=$RAFT GOMAXPROCS=$GOMAXPROCS"
printf '%-6s %-7s %8s %8s %14s %10s %8s %11s %11s %12s %11s %12s %8s\n' sites voters spawn_s first_s all_allocated median_ms p90_ms rss_med_MB rss_max_MB voter_max_MB pss_med_MB anon_med_MB cpu_pct
for n in "${sizes[@]}"; do
  pids=()
  run=$work/n$n
  mkdir -p "$run"
  (cd "$run" && seq -f 'site-%g' 1 "$n" | xargs mkdir -p)
  t0=$EPOCHREALTIME
  for ((i = 1; i <= n; i++)); do
    d=$run/site-$i
    "$BIN" --site "site-$i" --voters "$voters" --seeds "$seeds" --bind "127.211.$(( i / 250 )).$(( i % 250 + 1 ))" \
      --state-dir "$d/state" --socket "$d/api.sock" --metrics off --no-underlay \
      --config "$work/common.yaml" --cmdline "" --nocloud off --log-level warn 2>"$d/agent.log" &
    pids+=($!)
    disown $!
  done
  spawn=$(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000 ))
  # Poll the durable records; note when each appears.
  declare -A seen=()
  times=()
  while :; do
    now=$EPOCHREALTIME
    ms=$(( (${now/./} - ${t0/./}) / 1000 ))
    for ((i = 1; i <= n; i++)); do
      if [ -z "${seen[$i]:-}" ] && [ -f "$run/site-$i/state/alloc/allocation.json" ]; then
        seen[$i]=1
        times+=("$ms")
      fi
    done
    [ ${#seen[@]} -ge "$n" ] && break
    if (( ms > TIMEOUT * 1000 )); then
      kill -9 "${pids[@]}" 2>/dev/null; pids=()
      trap - EXIT
      echo "bench-alloc: only ${#seen[@]} of $n sites allocated within ${TIMEOUT}s; logs kept in $run" >&2
      exit 1
    fi
    sleep 0.2
  done
  total=$ms
  ticks() { local p sum=0; for p in "${pids[@]}"; do read -ra f </proc/"$p"/stat && sum=$(( sum + f[13] + f[14] )); done; echo $sum; }
  c0=$(ticks); sleep 5; c1=$(ticks)
  cpu=$(( (c1 - c0) * 100 / (5 * $(getconf CLK_TCK)) ))
  rss=() pss=() anon=()
  for p in "${pids[@]}"; do
    rss+=("$(awk '/^VmRSS/ {print $2}' /proc/"$p"/status)")
    anon+=("$(awk '/^RssAnon/ {print $2}' /proc/"$p"/status)")
    pss+=("$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup)")
  done
  med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int(NR/2)+1]}'; }
  pct() { local q=$1; shift; printf '%s\n' "$@" | sort -n | awk -v q="$q" '{a[NR]=$1} END {i=int(NR*q); if (i<1) i=1; print a[i]}'; }
  # rss_max is over the sites that are not voters; voter_max over the voters
  # (site-1..site-VOTERS), which also run Raft and the allocation RPC server.
  awk -v n="$n" -v v="$VOTERS" -v sp="$spawn" -v cpu="$cpu"  -v tot="$total" -v first="${times[0]}" -v mt="$(med "${times[@]}")" -v pt="$(pct 0.9 "${times[@]}")" \
      -v rm="$(med "${rss[@]}")" -v rx="$(pct 1 "${rss[@]:VOTERS}")" -v vx="$(pct 1 "${rss[@]:0:VOTERS}")" -v pm="$(med "${pss[@]}")" -v am="$(med "${anon[@]}")" \
    'BEGIN {printf "%-6s %-7s %8.1f %8.1f %13.2fs %10d %8d %11.1f %11.1f %12.1f %11.1f %12.1f %8d\n", n, v, sp/1000, first/1000, tot/1000, mt, pt, rm/1024, rx/1024, vx/1024, pm/1024, am/1024, cpu}'
  if [ "${HOLD:-0}" -gt 0 ]; then
    printf '%s\n' "${pids[@]}" >"$work/pids"
    echo "holding $n agents for ${HOLD}s (pids in $work/pids)" >&2
    sleep "$HOLD"
  fi
  kill -9 "${pids[@]}" 2>/dev/null || true
  for p in "${pids[@]}"; do while [ -e /proc/"$p" ]; do sleep 0.05; done; done
  pids=()
  unset seen
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS/n$n" && for ((i = 1; i <= n; i++)); do cp "$run/site-$i/agent.log" "$LOGS/n$n/site-$i.log"; done; fi
  rm -rf "$run"
done

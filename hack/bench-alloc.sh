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
#   PEER=serf     after each fleet, run the named peer at the same size and
#                 print a ratio line; PEER= (empty) skips it. The peer is
#                 HashiCorp's serf agent (memberlist gossip, the same library
#                 and encryption, no Raft and no allocation) with the same
#                 gossip profile and GOMAXPROCS, on 127.212.X.Y. Its time is
#                 until three members (the first, middle and last) each list
#                 all N alive. SERF=path picks the binary; without it, serf on
#                 PATH, else Debian's package unpacked into bin/peers/ (apt-get
#                 download: no service is installed or started).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 500)
VOTERS=${VOTERS:-3}
PROFILE=${PROFILE:-wan}
RAFT=${RAFT:-3}
export GOMAXPROCS=${GOMAXPROCS:-1}
TIMEOUT=${TIMEOUT:-180}
PEER=${PEER-serf}

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

# serf_bin prints the peer's binary: $SERF, serf on PATH, or Debian's serf
# package unpacked (not installed) into bin/peers/.
serf_bin() {
  if [ -n "${SERF:-}" ]; then echo "$SERF"; return; fi
  if command -v serf >/dev/null; then command -v serf; return; fi
  if [ ! -x bin/peers/usr/bin/serf ]; then
    local d
    d=$(mktemp -d)
    (cd "$d" && apt-get download serf >/dev/null 2>&1) && dpkg-deb -x "$d"/serf_*.deb bin/peers || {
      rm -rf "$d"
      echo "bench-alloc: the serf peer is not available (apt-get download serf failed: run apt-get update; or set SERF=path, or PEER= to skip it)" >&2
      return 1
    }
    rm -rf "$d"
  fi
  echo "$PWD/bin/peers/usr/bin/serf"
}
if [ "$PEER" = serf ]; then
  SERF=$(serf_bin) || PEER=
elif [ -n "$PEER" ]; then
  echo "bench-alloc: unknown PEER=$PEER (serf, or empty for none)" >&2
  exit 2
fi

addr() { echo "127.211.$(( $1 / 250 )).$(( $1 % 250 + 1 ))"; }
peeraddr() { echo "127.212.$(( $1 / 250 )).$(( $1 % 250 + 1 ))"; }
# Encrypted gossip and authenticated allocator RPC, as in production; the
# peer gossips with the same key.
key=$(head -c32 /dev/urandom | base64)
printf 'gossip:\n  profile: %s\n  key: %s\nallocator:\n  raftMultiplier: %s\n' \
  "$PROFILE" "$key" "$RAFT" >"$work/common.yaml"

voters=$(seq -s, -f 'site-%g' 1 "$VOTERS")
seeds="$(addr 1),$(addr 2),$(addr 3)"

med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int(NR/2)+1]}'; }
pct() { local q=$1; shift; printf '%s\n' "$@" | sort -n | awk -v q="$q" '{a[NR]=$1} END {i=int(NR*q); if (i<1) i=1; print a[i]}'; }
ms_since() { echo $(( (${EPOCHREALTIME/./} - ${1/./}) / 1000 )); }
# measure: CPU of all $pids over 5 s (cpu, % of one core), then each one's
# RSS, anon and PSS in KiB (arrays rss, anon, pss, in $pids order).
measure() {
  ticks() { local p sum=0; for p in "${pids[@]}"; do read -ra f </proc/"$p"/stat && sum=$(( sum + f[13] + f[14] )); done; echo $sum; }
  local c0 c1 p
  c0=$(ticks); sleep 5; c1=$(ticks)
  cpu=$(( (c1 - c0) * 100 / (5 * $(getconf CLK_TCK)) ))
  rss=() pss=() anon=()
  for p in "${pids[@]}"; do
    rss+=("$(awk '/^VmRSS/ {print $2}' /proc/"$p"/status)")
    anon+=("$(awk '/^RssAnon/ {print $2}' /proc/"$p"/status)")
    pss+=("$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup)")
  done
}
stop_fleet() {
  kill -9 "${pids[@]}" 2>/dev/null || true
  local p
  for p in "${pids[@]}"; do while [ -e /proc/"$p" ]; do sleep 0.05; done; done
  pids=()
}

# run_serf N: the peer at N members; prints its row and sets peer_* for the
# ratio line.
run_serf() {
  local n=$1 i j t0 ms s c ok
  local dir=$work/serf$n
  mkdir -p "$dir"
  pids=()
  t0=$EPOCHREALTIME
  for ((i = 1; i <= n; i++)); do
    j=()
    for s in 1 2 3; do j+=(-join "$(peeraddr $s)"); done
    "$SERF" agent -node "site-$i" -bind "$(peeraddr "$i"):7946" -rpc-addr "$(peeraddr "$i"):7373" \
      -encrypt "$key" -profile "$PROFILE" "${j[@]}" -log-level warn >"$dir/site-$i.log" 2>&1 &
    pids+=($!)
    disown $!
  done
  local spawn
  spawn=$(ms_since "$t0")
  local samples=(1 $(( n / 2 + 1 )) "$n")
  while :; do
    ok=0
    for s in "${samples[@]}"; do
      c=$("$SERF" members -rpc-addr "$(peeraddr "$s"):7373" -status alive 2>/dev/null | wc -l) || c=0
      [ "$c" -ge "$n" ] && ok=$(( ok + 1 ))
    done
    ms=$(ms_since "$t0")
    [ "$ok" -eq ${#samples[@]} ] && break
    if (( ms > TIMEOUT * 1000 )); then
      stop_fleet
      local kept
      kept=$(mktemp -d /tmp/bench-alloc-serf.XXXXXX)
      mv "$dir" "$kept/"
      echo "bench-alloc: serf peer: members ${samples[*]} did not all see $n alive within ${TIMEOUT}s; logs kept in $kept" >&2
      peer_time=0
      return 0
    fi
    sleep 0.5
  done
  measure
  peer_time=$ms peer_rss_med=$(med "${rss[@]}") peer_rss_max=$(pct 1 "${rss[@]}")
  awk -v n="$n" -v sp="$spawn" -v tot="$ms" -v rm="$peer_rss_med" -v rx="$peer_rss_max" -v pm="$(med "${pss[@]}")" -v am="$(med "${anon[@]}")" -v cpu="$cpu" \
    'BEGIN {printf "%-6s %-7s %8.1f %8s %13.2fs %10s %8s %11.1f %11.1f %12s %11.1f %12.1f %8d\n", n, "serf", sp/1000, "-", tot/1000, "-", "-", rm/1024, rx/1024, "-", pm/1024, am/1024, cpu}'
  stop_fleet
  rm -rf "$dir"
}

# RSS counts the binary's text pages, which every agent maps from the same
# file (stored once); PSS divides shared pages among the processes sharing
# them, anon is each process's own heap and stacks.
# spawn_s: time to fork all N agents; first_s: time of the first committed
# allocation (roughly when the voters had elected a leader); done: every
# site holds a committed allocation (serf: three members each see all N
# alive); cpu_pct: CPU of all agents together in the 5 s after that, in %
# of one core (the machine has 2).
echo "profile=$PROFILE raftMultiplier=$RAFT GOMAXPROCS=$GOMAXPROCS peer=${PEER:-none}"
printf '%-6s %-7s %8s %8s %14s %10s %8s %11s %11s %12s %11s %12s %8s\n' sites voters spawn_s first_s done median_ms p90_ms rss_med_MB rss_max_MB voter_max_MB pss_med_MB anon_med_MB cpu_pct
for n in "${sizes[@]}"; do
  pids=()
  run=$work/n$n
  mkdir -p "$run"
  (cd "$run" && seq -f 'site-%g' 1 "$n" | xargs mkdir -p)
  t0=$EPOCHREALTIME
  for ((i = 1; i <= n; i++)); do
    d=$run/site-$i
    "$BIN" --site "site-$i" --voters "$voters" --seeds "$seeds" --bind "$(addr "$i")" \
      --state-dir "$d/state" --socket "$d/api.sock" --metrics off --no-underlay \
      --config "$work/common.yaml" --cmdline "" --nocloud off --platform none --log-level warn 2>"$d/agent.log" &
    pids+=($!)
    disown $!
  done
  spawn=$(ms_since "$t0")
  # Poll the durable records; note when each appears.
  declare -A seen=()
  times=()
  while :; do
    ms=$(ms_since "$t0")
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
  measure
  # rss_max is over the sites that are not voters; voter_max over the voters
  # (site-1..site-VOTERS), which also run Raft and the allocation RPC server.
  rss_med=$(med "${rss[@]}") rss_all_max=$(pct 1 "${rss[@]}")
  awk -v n="$n" -v v="$VOTERS" -v sp="$spawn" -v cpu="$cpu"  -v tot="$total" -v first="${times[0]}" -v mt="$(med "${times[@]}")" -v pt="$(pct 0.9 "${times[@]}")" \
      -v rm="$rss_med" -v rx="$(pct 1 "${rss[@]:VOTERS}")" -v vx="$(pct 1 "${rss[@]:0:VOTERS}")" -v pm="$(med "${pss[@]}")" -v am="$(med "${anon[@]}")" \
    'BEGIN {printf "%-6s %-7s %8.1f %8.1f %13.2fs %10d %8d %11.1f %11.1f %12.1f %11.1f %12.1f %8d\n", n, v, sp/1000, first/1000, tot/1000, mt, pt, rm/1024, rx/1024, vx/1024, pm/1024, am/1024, cpu}'
  if [ "${HOLD:-0}" -gt 0 ]; then
    printf '%s\n' "${pids[@]}" >"$work/pids"
    echo "holding $n agents for ${HOLD}s (pids in $work/pids)" >&2
    sleep "$HOLD"
  fi
  stop_fleet
  unset seen
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS/n$n" && for ((i = 1; i <= n; i++)); do cp "$run/site-$i/agent.log" "$LOGS/n$n/site-$i.log"; done; fi
  rm -rf "$run"
  if [ -n "$PEER" ]; then
    run_serf "$n"
    if [ "$peer_time" -gt 0 ]; then
      awk -v n="$n" -v rm="$rss_med" -v rx="$rss_all_max" -v prm="$peer_rss_med" -v prx="$peer_rss_max" -v t="$total" -v pt="$peer_time" \
        'BEGIN {printf "ratio tfsite/serf at %d: rss median %.2f, rss max (voters included) %.2f, time %.2f (tfsite: every site allocated; serf: gossip only)\n", n, rm/prm, rx/prx, t/pt}'
    fi
  fi
done

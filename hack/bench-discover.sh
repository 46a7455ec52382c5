#!/usr/bin/env bash
# Benchmark: time one DHCP discovery by `tfsite discover` and by established
# clients (udhcpc, dhclient, dhcpcd) against the same real dnsmasq in a
# network namespace, RUNS times each, and print each median and the ratio
# tfsite / best peer. Target: ratio <= 1.0 and < 50 ms per discovery.
#
# Usage: sudo hack/bench-discover.sh [RUNS]   (or: sudo make bench-discover)
# Env:   TFSITE=bin/tfsite (built by make build), RUNS=15
#
# Every client is configured alike: one shot on eth0, a fresh DORA exchange
# (no remembered lease), 10s timeout, option 121 requested, no ARP probe of
# the offered address, and no script that changes anything (dhcpcd itself
# configures the address, so it is flushed after each run). Each run is what a
# user waits for: the wall time from start until the lease is known. For
# tfsite that is when it prints the lease (process exit comes 10-20 ms later,
# while the kernel releases the raw socket); for the peers it is when the
# process returns with a lease (dhclient and dhcpcd fork a daemon once bound;
# the parent returns then, and the daemon is stopped afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-${RUNS:-15}}
TFSITE=${TFSITE:-bin/tfsite}
[ "$(id -u)" -eq 0 ] || { echo "bench-discover: needs root (network namespaces): sudo make bench-discover" >&2; exit 1; }
[ -x "$TFSITE" ] || { echo "bench-discover: $TFSITE missing: run make build" >&2; exit 1; }
command -v dnsmasq >/dev/null || { echo "bench-discover: dnsmasq missing: apt-get install dnsmasq-base" >&2; exit 1; }

WORK=$(mktemp -d /tmp/bench-discover.XXXXXX)
LAB=$(hack/lab.sh "$WORK")
cleanup() {
	"$LAB" down --dir "$WORK" || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# The tests' discovery lab (internal/lab, as agent/underlay's tests use it): SRV runs dnsmasq on
# 192.0.2.1/24, CLI's eth0 is unconfigured.
eval "$("$LAB" up pair --prefix "tfs-b$$" --dir "$WORK" --option 121,0.0.0.0/0,192.0.2.1 --option 6,192.0.2.1)"

inns() { ip netns exec "$CLI" "$@"; }
now() { date +%s%N; }
reset_client() {
	inns ip -4 addr flush dev eth0
	inns ip -4 route flush dev eth0 2>/dev/null || true
	rm -f "$WORK"/dhclient.*
}

# Baseline, not a client: `tfsite version` in the namespace, i.e. process start
# (ip netns exec, the Go runtime and every package's init) without discovery.
run_startup() { inns "$TFSITE" version >"$WORK/out" 2>&1; }
# run_tfsite notes in $WORK/t1 when the lease's first line arrives; the loop
# takes that as the end of the run.
run_tfsite() {
	[ -p "$WORK/lease.fifo" ] || mkfifo "$WORK/lease.fifo"
	(IFS= read -r first && now >"$WORK/t1" && printf '%s\n' "$first" && cat) <"$WORK/lease.fifo" >"$WORK/out" &
	local reader=$! rc=0
	inns "$TFSITE" discover --iface eth0 --timeout 10s --json >"$WORK/lease.fifo" 2>"$WORK/err" || rc=$?
	wait "$reader" || true
	cat "$WORK/err" >>"$WORK/out"
	return "$rc"
}
run_udhcpc() { inns udhcpc -i eth0 -f -q -n -t 3 -T 3 -O staticroutes -s /bin/true >"$WORK/out" 2>&1; }
run_dhclient() {
	inns dhclient -4 -1 -sf /bin/true -lf "$WORK/dhclient.leases" -pf "$WORK/dhclient.pid" \
		-cf /dev/null eth0 >"$WORK/out" 2>&1
}
stop_dhclient() { [ -f "$WORK/dhclient.pid" ] && kill "$(cat "$WORK/dhclient.pid")" 2>/dev/null || true; }
cat >"$WORK/dhcpcd.conf" <<'CONF'
# Alike the others: no initial random delay, no reboot of an old lease (go
# straight to DISCOVER), no ARP probe, no IPv4LL, ask for option 121.
nodelay
reboot 0
noarp
noipv4ll
option classless_static_routes
CONF
run_dhcpcd() {
	# -c /bin/true: no script; -1: exit once bound; -K: no carrier wait. dhcpcd configures the
	# address itself (with --noconfigure -1 never sees it bound), so reset_client flushes it.
	inns dhcpcd -4 -1 -K -f "$WORK/dhcpcd.conf" -c /bin/true -t 10 eth0 >"$WORK/out" 2>&1
}
stop_dhcpcd() { inns dhcpcd -4 -x eth0 >/dev/null 2>&1 || true; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

declare -A MED
clients=(tfsite)
command -v udhcpc >/dev/null && clients+=(udhcpc) || echo "bench-discover: udhcpc missing (apt-get install udhcpc), skipped" >&2
command -v dhclient >/dev/null && clients+=(dhclient) || echo "bench-discover: dhclient missing (apt-get install isc-dhcp-client), skipped" >&2
command -v dhcpcd >/dev/null && clients+=(dhcpcd) || echo "bench-discover: dhcpcd missing (apt-get install dhcpcd-base), skipped" >&2
[ ${#clients[@]} -ge 3 ] || { echo "bench-discover: need at least two peer clients" >&2; exit 1; }
clients+=(startup)

# Runs are interleaved (tfsite, udhcpc, dhclient, dhcpcd, tfsite, ...) so that
# load from elsewhere on the machine hits every client alike.
for c in "${clients[@]}"; do : >"$WORK/times.$c"; done
for i in $(seq "$RUNS"); do
	for c in "${clients[@]}"; do
		reset_client
		rm -f "$WORK/t1"
		t0=$(now)
		if ! "run_$c"; then
			echo "bench-discover: $c run $i failed:" >&2; cat "$WORK/out" >&2
			echo "--- dnsmasq log (tail):" >&2; tail -n 30 "$DNSMASQ_LOG" >&2; exit 1
		fi
		t1=$(now)
		[ -s "$WORK/t1" ] && t1=$(cat "$WORK/t1")
		if declare -F "stop_$c" >/dev/null; then "stop_$c"; fi
		echo $(( (t1 - t0) / 1000 )) >>"$WORK/times.$c" # microseconds
	done
done
for c in "${clients[@]}"; do MED[$c]=$(median <"$WORK/times.$c"); done
reset_client

best=""
for c in "${clients[@]}"; do
	case $c in tfsite | startup) continue ;; esac
	if [ -z "$best" ] || awk -v a="${MED[$c]}" -v b="${MED[$best]}" 'BEGIN{exit !(a<b)}'; then best=$c; fi
done
printf '%-10s %12s %10s %10s\n' client "median(ms)" "min(ms)" "max(ms)"
# "startup" is the baseline row (tfsite version): the part of tfsite's time
# that is process start, not discovery.
for c in "${clients[@]}"; do
	read -r mn mx < <(sort -n "$WORK/times.$c" | awk 'NR==1{mn=$1} {mx=$1} END{print mn, mx}')
	awk -v c="$c" -v m="${MED[$c]}" -v mn="$mn" -v mx="$mx" 'BEGIN{printf "%-10s %12.1f %10.1f %10.1f\n", c, m/1000, mn/1000, mx/1000}'
done
awk -v t="${MED[tfsite]}" -v b="${MED[$best]}" -v n="$best" -v runs="$RUNS" 'BEGIN{
	r = t / b
	printf "runs=%d  ratio tfsite/%s = %.2f (target <= 1.0)  tfsite median %.1f ms (target < 50 ms)\n", runs, n, r, t/1000
	if (r > 1.0 || t/1000 >= 50) { print "bench-discover: TARGET MISSED"; exit 2 }
}'

#!/usr/bin/env bash
# demo-bgp.sh — the BGP part of `make demo`: one real BIRD 2 speaker per site, standing
# in for the site's TF control node, each configured by `tfsite peering --format bird`,
# on a shared transit network (a bridge in its own network namespace). Shows every
# session Established, every site's pod prefix learned by the others, a ping from an
# address in each site's pod prefix to one in every other's, prints a summary table,
# cleans up, exits 0 (1 on any failure). Needs root, bird2, iproute2, iputils-ping.
#
# Usage: sudo hack/demo-bgp.sh [NAME:ASN:POD_PREFIX ...]
#   default: alpha:64601:10.40.0.0/16 beta:64602:10.50.0.0/16 gamma:4200000003:10.60.0.0/16
# Env: TFSITE=path/to/tfsite (default bin/tfsite), TIMEOUT=seconds to wait for sessions (60)
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/demo-lib.sh
TFSITE=${TFSITE:-bin/tfsite}
TIMEOUT=${TIMEOUT:-60}
[[ $(id -u) == 0 ]] || { echo "demo-bgp: needs root (network namespaces)" >&2; exit 1; }
for c in bird birdc ip ping; do command -v $c >/dev/null || { echo "demo-bgp: $c missing (apt-get install bird2 iproute2 iputils-ping)" >&2; exit 1; }; done
[[ -x $TFSITE ]] || { echo "demo-bgp: $TFSITE missing (make build)" >&2; exit 1; }

sites=("$@")
[[ ${#sites[@]} -gt 0 ]] || sites=(alpha:64601:10.40.0.0/16 beta:64602:10.50.0.0/16 gamma:4200000003:10.60.0.0/16)
n=${#sites[@]}
id=$$
work=$(mktemp -d)
transit=tfsd-$id-transit
declare -a name asn pod addr podip ns
for i in "${!sites[@]}"; do
  IFS=: read -r name[i] asn[i] pod[i] <<<"${sites[i]}"
  [[ -n ${name[i]} && -n ${asn[i]} && ${pod[i]} == */* ]] || { echo "demo-bgp: bad site ${sites[i]} (want NAME:ASN:PREFIX)" >&2; exit 1; }
  addr[i]=10.99.0.$((10 + i))
  base=${pod[i]%/*}
  podip[i]=${base%.*}.$(( ${base##*.} + 1 ))
  ns[i]=tfsd-$id-$i
done

cleanup() {
  for i in "${!ns[@]}"; do
    [[ -f $work/${name[i]}.pid ]] && kill "$(cat "$work/${name[i]}.pid")" 2>/dev/null || true
    ip netns del "${ns[i]}" 2>/dev/null || true
  done
  ip netns del "$transit" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$transit"
ip -n "$transit" link add br0 type bridge
ip -n "$transit" link set br0 up
for i in "${!sites[@]}"; do
  ip netns add "${ns[i]}"
  ip -n "${ns[i]}" link set lo up
  demo_veth "tfd${id}x$i" "${ns[i]}" eth0 "$transit" "p$i"
  ip -n "${ns[i]}" addr add "${addr[i]}/24" dev eth0
  ip -n "$transit" link set "p$i" master br0
  ip -n "${ns[i]}" addr add "${podip[i]}/32" dev lo
done

t0=$(date +%s.%N)
for i in "${!sites[@]}"; do
  args=(peering --format bird --site "${name[i]}" --asn "${asn[i]}" --pod "${pod[i]}" --address "${addr[i]}")
  for j in "${!sites[@]}"; do
    [[ $i == "$j" ]] && continue
    args+=(--peer "name=${name[j]},address=${addr[j]},asn=${asn[j]},accept=${pod[j]}")
  done
  "$TFSITE" "${args[@]}" --out "$work/${name[i]}.conf"
  bird -p -c "$work/${name[i]}.conf"
  ip netns exec "${ns[i]}" bird -c "$work/${name[i]}.conf" -s "$work/${name[i]}.ctl" -P "$work/${name[i]}.pid"
done

# Wait until every site has n-1 Established sessions and every other pod prefix in its kernel.
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  ok=1
  for i in "${!sites[@]}"; do
    est=$(ip netns exec "${ns[i]}" birdc -s "$work/${name[i]}.ctl" show protocols 2>/dev/null | grep -c Established || true)
    [[ $est == $((n - 1)) ]] || ok=0
    for j in "${!sites[@]}"; do
      [[ $i == "$j" ]] && continue
      ip -n "${ns[i]}" route show "${pod[j]}" | grep -q via || ok=0
    done
  done
  [[ $ok == 1 ]] && break
  if (( $(date +%s) > deadline )); then
    echo "demo-bgp: sessions not established within ${TIMEOUT}s" >&2
    for i in "${!sites[@]}"; do ip netns exec "${ns[i]}" birdc -s "$work/${name[i]}.ctl" show protocols >&2 || true; done
    exit 1
  fi
  sleep 0.5
done
converged=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')

fail=0
declare -A pingres
for i in "${!sites[@]}"; do
  for j in "${!sites[@]}"; do
    [[ $i == "$j" ]] && continue
    if ip netns exec "${ns[i]}" ping -c 1 -W 2 -I "${podip[i]}" "${podip[j]}" >/dev/null 2>&1; then
      pingres[$i,$j]=ok
    else
      pingres[$i,$j]=FAIL
      fail=1
    fi
  done
done

printf '\n%-8s %-11s %-16s %-11s %-9s %-28s %s\n' SITE ASN POD_PREFIX BGP_ADDR SESSIONS LEARNED PING_FROM_POD
for i in "${!sites[@]}"; do
  est=$(ip netns exec "${ns[i]}" birdc -s "$work/${name[i]}.ctl" show protocols | grep -c Established || true)
  learned=() pings=()
  for j in "${!sites[@]}"; do
    [[ $i == "$j" ]] && continue
    learned+=("${pod[j]}")
    pings+=("${name[j]}:${pingres[$i,$j]}")
  done
  printf '%-8s %-11s %-16s %-11s %-9s %-28s %s\n' "${name[i]}" "${asn[i]}" "${pod[i]}" "${addr[i]}" \
    "$est/$((n - 1))" "$(IFS=,; echo "${learned[*]}")" "${pings[*]}"
done
echo "converged in ${converged}s (BIRD start to all sessions Established with routes installed)"
exit $fail

#!/usr/bin/env bash
# demo.sh — `make demo`: three tfsite sites on one machine, end to end, as root.
#
#   1. three sites, each a network namespace with its own underlay segment (eth0)
#      served by its own dnsmasq in an underlay-router namespace, all joined by a
#      shared transit bridge (eth1) carrying gossip, allocator RPC and BGP;
#   2. one `tfsite agent` per site (three voters, encrypted gossip): each discovers its
#      underlay gateway through DHCP, joins the others, and gets a committed ASN and
#      pod/service/fabric prefixes;
#   3. per site, `tfsite render --socket` writes kubeadm.yaml + tf.yaml from the
#      allocation and the discovered underlay; the real `kubeadm config validate` and
#      `kubeadm init --dry-run` run on it and the allocated CIDRs are checked in the
#      produced control-plane manifests;
#   4. per site, a real BIRD 2 configured by `tfsite peering --format bird --socket`
#      (the agent's own peer list), standing in for the site's TF control node; every
#      session must be Established, every other site's pod prefix in the kernel, and a
#      ping from an address in each site's pod prefix must reach every other site's;
#   5. a summary table; everything is torn down on exit (also on failure or Ctrl-C).
#
# Exit 0 when every check passed, 1 with a "demo: FAILED: ..." line otherwise.
# Needs root, iproute2, dnsmasq (dnsmasq-base), bird2, iputils-ping, jq, and kubeadm
# from hack/build-kube.sh (make kube-bins).
#
# Env: TFSITE     tfsite binary (default bin/tfsite; make demo builds it)
#      KUBEADM    kubeadm binary (default: the make kube-bins cache)
#      TIMEOUT    seconds to wait for each phase (default 90)
#      RESULT     also write the outcome as JSON to this file (the e2e test reads it)
#      KEEP=1     keep the work directory (configs, logs, rendered files) for a look
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION=$(sed -n 's/^KUBE_VERSION=\(v[0-9.]*\).*/\1/p' hack/build-kube.sh)
TFSITE=$(realpath -m "${TFSITE:-bin/tfsite}")
KUBEADM=$(realpath -m "${KUBEADM:-${TFSITE_KUBE_BIN:-${TFSITE_KUBE_CACHE:-/var/cache/tfsite/kube}/$KUBE_VERSION/bin}/kubeadm}")
TIMEOUT=${TIMEOUT:-90}
RESULT=${RESULT:-}
KEEP=${KEEP:-0}

T0=$(date +%s.%N)
elapsed() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%5.1f", a - b }'; }
step() { printf '==> [%ss] %s\n' "$(elapsed)" "$*"; }
info() { printf '    %s\n' "$*"; }
fail() {
  echo "demo: FAILED: $*" >&2
  exit 1
}

[[ $(id -u) == 0 ]] || fail "needs root (network namespaces, DHCP raw sockets): run sudo make demo"
for c in ip dnsmasq bird birdc ping jq awk; do
  command -v $c >/dev/null || fail "$c not found: apt-get install --no-install-recommends iproute2 dnsmasq-base bird2 iputils-ping jq"
done
[[ -x $TFSITE ]] || fail "$TFSITE missing: run make build (or set TFSITE=)"
[[ -x $KUBEADM ]] || fail "$KUBEADM missing: run make kube-bins (or set KUBEADM=)"

names=(alpha beta gamma)
n=${#names[@]}
id=$$
prefix=tfdemo-$id
work=$(mktemp -d "${TMPDIR:-/tmp}/tfsite-demo.XXXXXX")
# Filled by the lab (hack/lab up sites): the namespaces, addresses and gateways of each site.
transit=""
declare -a ns ulns tr ulnet gw
allns=()
LAB=""
pids=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [[ $rc != 0 ]]; then
    for i in "${!names[@]}"; do
      [[ -f $work/${names[i]}/agent.log ]] || continue
      echo "--- last lines of ${names[i]}'s agent log ($work/${names[i]}/agent.log)" >&2
      tail -n 15 "$work/${names[i]}/agent.log" >&2
    done
  fi
  echo "==> [$(elapsed)s] cleaning up"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for i in "${!names[@]}"; do
    [[ -f $work/${names[i]}/bird.pid ]] && kill "$(cat "$work/${names[i]}/bird.pid")" 2>/dev/null
  done
  # Anything still running inside our namespaces was started here.
  for try in $(seq 50); do
    local left=""
    for x in "${allns[@]}"; do left+=$(ip netns pids "$x" 2>/dev/null | tr '\n' ' '); done
    [[ -z ${left// /} ]] && break
    if [[ $try == 30 ]]; then kill -9 $left 2>/dev/null; else kill $left 2>/dev/null; fi
    sleep 0.1
  done
  [[ -n $LAB ]] && "$LAB" down --dir "$work"
  if [[ $KEEP == 1 ]]; then echo "    kept $work"; else rm -rf "$work"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
step "building the network: transit bridge 192.168.240.0/24, one underlay segment + dnsmasq per site"
# The tests' lab (internal/lab): transit bridge, per site an underlay router namespace with dnsmasq.
LAB=$(hack/lab.sh "$work") || fail "building the lab command (hack/lab) failed"
labenv=$("$LAB" up sites --prefix "$prefix" --dir "$work" "${names[@]}") || fail "building the network failed"
eval "$labenv"
allns=("$transit" "${ns[@]}" "${ulns[@]}")
for i in "${!names[@]}"; do
  info "${names[i]}: netns ${ns[i]}, underlay ${ulnet[i]}.0/24 (dnsmasq, router ${gw[i]}) on eth0, transit ${tr[i]} on eth1"
done

# ---------------------------------------------------------------------------
step "leasing each site's underlay address (tfsite discover --apply, as the appliance's DHCP client)"
dpids=()
for i in "${!names[@]}"; do
  ip netns exec "${ns[i]}" "$TFSITE" discover --iface eth0 --apply --json --timeout 20s \
    >"$work/${names[i]}/discover.json" 2>"$work/${names[i]}/discover.log" &
  dpids+=($!)
done
for i in "${!names[@]}"; do
  wait "${dpids[i]}" || fail "${names[i]}: tfsite discover --apply on eth0 failed: $(cat "$work/${names[i]}/discover.log")"
  info "${names[i]}: $(jq -r '"\(.address) gateway \(.gateway) (\(.gateway_source))"' "$work/${names[i]}/discover.json")"
done

# ---------------------------------------------------------------------------
step "starting one tfsite agent per site (voters: ${names[*]}; gossip on transit, encrypted)"
head -c 32 /dev/urandom | base64 >"$work/gossip.key"
chmod 600 "$work/gossip.key"
for i in "${!names[@]}"; do
  s=${names[i]}
  seeds=()
  for j in "${!names[@]}"; do [[ $i == "$j" ]] || seeds+=("${tr[j]}"); done
  cat >"$work/$s/config.yaml" <<EOF
site: $s
voters: [$(IFS=,; echo "${names[*]}" | sed 's/,/, /g')]
gossip:
  bindAddress: ${tr[i]}
  advertiseAddress: ${tr[i]}
  seeds: [$(IFS=,; echo "${seeds[*]}" | sed 's/,/, /g')]
  keyFile: $work/gossip.key
  profile: local
  rejoinInterval: 1s
allocator:
  retryInterval: 500ms
stateDir: $work/$s/state
apiSocket: $work/$s/api.sock
metricsAddress: ""
underlay:
  interface: eth0
  # generous: with advertiseAddress set, the agent does not retry a failed discovery
  timeout: 30s
EOF
  # --cmdline "", --nocloud off and --platform none: only this file configures the demo agents,
  # whatever the host's kernel command line or attached seed volumes say.
  ip netns exec "${ns[i]}" "$TFSITE" agent --config "$work/$s/config.yaml" --cmdline "" --nocloud off --platform none \
    >"$work/$s/agent.log" 2>&1 &
  pids+=($!)
  disown $!
done

status() { "$TFSITE" status --json --socket "$work/$1/api.sock" 2>/dev/null; }
step "waiting for underlay discovery, join and allocation (tfsite status --json)"
deadline=$(($(date +%s) + TIMEOUT))
while :; do
  ready=0 why=""
  for i in "${!names[@]}"; do
    s=${names[i]}
    st=$(status "$s") || { why="$s: API not answering yet"; continue; }
    kill -0 "${pids[i]}" 2>/dev/null || fail "$s: the agent exited (log: $work/$s/agent.log)"
    w=$(jq -r --argjson n "$n" '
      if .allocation == null then "no allocation yet (phase \(.phase))"
      elif (.underlay.gateway // "") == "" then "underlay not discovered"
      elif ([.peers[] | select(.state == "alive" and .allocation != null)] | length) < ($n - 1)
        then "sees \([.peers[] | select(.state == "alive" and .allocation != null)] | length)/\($n - 1) peers alive with an allocation"
      else "" end' <<<"$st")
    if [[ -z $w ]]; then ready=$((ready + 1)); else why="$s: $w"; fi
  done
  [[ $ready == "$n" ]] && break
  (($(date +%s) < deadline)) || fail "sites not allocated and joined within ${TIMEOUT}s: $why"
  sleep 0.5
done
declare -a asn pod svc fab uaddr ugw uif podip
for i in "${!names[@]}"; do
  s=${names[i]}
  status "$s" >"$work/$s/status.json"
  IFS=$'\t' read -r asn[i] pod[i] svc[i] fab[i] uaddr[i] ugw[i] uif[i] < <(jq -r '[.allocation.asn, .allocation.pod,
    .allocation.service, .allocation.fabric, .underlay.address, .underlay.gateway, .underlay.interface] | @tsv' "$work/$s/status.json")
  [[ ${ugw[i]} == "${gw[i]}" ]] || fail "$s: discovered gateway ${ugw[i]}, but its underlay router is ${gw[i]}"
  base=${pod[i]%/*}
  podip[i]=${base%.*}.$((${base##*.} + 1))
  info "$s: ASN ${asn[i]}, pod ${pod[i]}, service ${svc[i]}, fabric ${fab[i]}; underlay ${uif[i]} ${uaddr[i]} gateway ${ugw[i]}"
done
# The fleet's invariant, checked here independently of the agents: distinct ASNs, disjoint prefixes.
all_prefixes=$(printf '%s\n' "${pod[@]}" "${svc[@]}" "${fab[@]}")
[[ $(printf '%s\n' "${asn[@]}" | sort -u | wc -l) == "$n" ]] || fail "ASNs are not distinct: ${asn[*]}"
[[ $(sort -u <<<"$all_prefixes" | wc -l) == $((3 * n)) ]] || fail "prefixes repeat: $all_prefixes"
step "allocated in $(elapsed | tr -d " ")s since start: distinct ASNs, $((3 * n)) distinct prefixes; ${names[0]}'s view (tfsite peers):"
"$TFSITE" peers --socket "$work/${names[0]}/api.sock" | sed 's/^/    /'

# ---------------------------------------------------------------------------
step "rendering kubeadm + TF configuration per site (tfsite render --socket) and running kubeadm $KUBE_VERSION"
has() { grep -qF -- "$2" "$1" || fail "$1 lacks $2"; }
# kube_site I: render site I and run kubeadm on it. Runs as a background job (the
# three sites in parallel); writes its one-line report or its failure to files.
kube_site() {
  trap - EXIT INT TERM
  local i=$1 s=${names[$1]} r=$work/${names[$1]}/render
  fail() {
    echo "$*" >"$r.failed"
    exit 1
  }
  "$TFSITE" render --socket "$work/$s/api.sock" --out "$r" >/dev/null 2>"$r.log" || fail "$s: tfsite render failed: $(cat "$r.log")"
  "$KUBEADM" config validate --config "$r/kubeadm.yaml" >"$r/validate.log" 2>&1 ||
    fail "$s: kubeadm config validate rejected kubeadm.yaml: $(cat "$r/validate.log")"
  mkdir -p "$r/dryrun"
  # Run in the site's namespace, where the advertise address is the leased one.
  ip netns exec "${ns[i]}" env KUBEADM_INIT_DRYRUN_DIR="$r/dryrun" "$KUBEADM" init --config "$r/kubeadm.yaml" \
    --dry-run --ignore-preflight-errors=all >"$r/init-dryrun.log" 2>&1 ||
    fail "$s: kubeadm init --dry-run failed: $(tail -n 5 "$r/init-dryrun.log")"
  local addr=${uaddr[i]%/*}
  has "$r/dryrun/kube-controller-manager.yaml" "--cluster-cidr=${pod[i]}"
  has "$r/dryrun/kube-controller-manager.yaml" "--service-cluster-ip-range=${svc[i]}"
  has "$r/dryrun/kube-controller-manager.yaml" "--cluster-name=$s"
  has "$r/dryrun/kube-apiserver.yaml" "--service-cluster-ip-range=${svc[i]}"
  has "$r/dryrun/kube-apiserver.yaml" "--advertise-address=$addr"
  has "$r/tf.yaml" "VROUTER_GATEWAY: ${gw[i]}"
  has "$r/tf.yaml" "PHYSICAL_INTERFACE: eth0"
  has "$r/tf.yaml" "BGP_ASN: \"${asn[i]}\""
  has "$r/tf.yaml" "KUBERNETES_POD_SUBNETS: ${pod[i]}"
  has "$r/tf.yaml" "KUBERNETES_SERVICE_SUBNETS: ${svc[i]}"
  has "$r/tf.yaml" "KUBERNETES_IP_FABRIC_SUBNETS: ${fab[i]}"
  echo "$s: kubeadm validate + init --dry-run ok: --cluster-cidr=${pod[i]} --service-cluster-ip-range=${svc[i]} --advertise-address=$addr; tf.yaml VROUTER_GATEWAY ${gw[i]} BGP_ASN ${asn[i]}" >"$r.ok"
}
kpids=()
for i in "${!names[@]}"; do
  kube_site "$i" &
  kpids+=($!)
done
krc=()
for i in "${!names[@]}"; do
  krc[i]=0
  wait "${kpids[i]}" || krc[i]=$?
done
for i in "${!names[@]}"; do
  r=$work/${names[i]}/render
  [[ ${krc[i]} == 0 ]] || fail "$(cat "$r.failed" 2>/dev/null || echo "${names[i]}: render/kubeadm step failed")"
  info "$(cat "$r.ok")"
done

# ---------------------------------------------------------------------------
step "starting BIRD 2 per site from tfsite peering --format bird --socket (stand-in for TF's control node)"
tb=$(date +%s.%N)
for i in "${!names[@]}"; do
  s=${names[i]}
  ip -n "${ns[i]}" addr add "${podip[i]}/32" dev lo
  "$TFSITE" peering --format bird --socket "$work/$s/api.sock" --out "$work/$s/bird.conf" 2>"$work/$s/peering.log" ||
    fail "$s: tfsite peering failed: $(cat "$work/$s/peering.log")"
  peers=$(grep -c '^protocol bgp ' "$work/$s/bird.conf" || true)
  [[ $peers == $((n - 1)) ]] || fail "$s: bird.conf has $peers BGP peers, want $((n - 1)): $(cat "$work/$s/peering.log")"
  bird -p -c "$work/$s/bird.conf" || fail "$s: BIRD rejects the rendered configuration"
  ip netns exec "${ns[i]}" bird -c "$work/$s/bird.conf" -s "$work/$s/bird.ctl" -P "$work/$s/bird.pid"
  info "$s: $(grep -c '^protocol bgp ' "$work/$s/bird.conf") peers: $(grep -o 'neighbor [0-9.]* as [0-9]*' "$work/$s/bird.conf" | sed 's/neighbor //' | paste -sd, | sed 's/,/, /g'); announces ${pod[i]} (pod address ${podip[i]} on lo)"
done

established() { ip netns exec "${ns[$1]}" birdc -s "$work/${names[$1]}/bird.ctl" show protocols 2>/dev/null | grep -c Established || true; }
step "waiting for every BGP session to be Established and every pod prefix learned"
deadline=$(($(date +%s) + TIMEOUT))
while :; do
  ok=1
  for i in "${!names[@]}"; do
    [[ $(established "$i") == $((n - 1)) ]] || ok=0
    for j in "${!names[@]}"; do
      [[ $i == "$j" ]] || ip -n "${ns[i]}" route show "${pod[j]}" | grep -q "via ${tr[j]}" || ok=0
    done
  done
  [[ $ok == 1 ]] && break
  if (($(date +%s) > deadline)); then
    for i in "${!names[@]}"; do
      echo "--- ${names[i]}: birdc show protocols" >&2
      ip netns exec "${ns[i]}" birdc -s "$work/${names[i]}/bird.ctl" show protocols >&2 || true
    done
    fail "BGP sessions not all Established with routes installed within ${TIMEOUT}s"
  fi
  sleep 0.5
done
bgptime=$(awk -v a="$(date +%s.%N)" -v b="$tb" 'BEGIN { printf "%.1f", a - b }')
step "all $((n * (n - 1))) session ends Established, routes installed ${bgptime}s after BIRD started"

step "pinging from each site's pod address to every other site's"
declare -A pingres
failed=""
for i in "${!names[@]}"; do
  for j in "${!names[@]}"; do
    [[ $i == "$j" ]] && continue
    if ip netns exec "${ns[i]}" ping -c 1 -W 2 -I "${podip[i]}" "${podip[j]}" >/dev/null 2>&1 ||
      ip netns exec "${ns[i]}" ping -c 2 -W 2 -I "${podip[i]}" "${podip[j]}" >/dev/null 2>&1; then
      pingres[$i,$j]=ok
    else
      pingres[$i,$j]=FAIL
      failed+=" ${names[i]}(${podip[i]})->${names[j]}(${podip[j]})"
    fi
  done
done
info "$(for i in "${!names[@]}"; do for j in "${!names[@]}"; do [[ $i == "$j" ]] || printf '%s->%s:%s ' "${names[i]}" "${names[j]}" "${pingres[$i,$j]}"; done; done)"

# ---------------------------------------------------------------------------
total=$(elapsed | tr -d " ")
echo
printf '%-6s %-6s %-14s %-14s %-14s %-17s %-13s %-5s %-29s %s\n' \
  SITE ASN POD SERVICE FABRIC UNDERLAY "GATEWAY(DHCP)" BGP LEARNED PING_FROM_POD
json_sites=()
for i in "${!names[@]}"; do
  learned=() lj=() pings=() pj=()
  for j in "${!names[@]}"; do
    [[ $i == "$j" ]] && continue
    if ip -n "${ns[i]}" route show "${pod[j]}" | grep -q via; then learned+=("${pod[j]}"); lj+=("\"${pod[j]}\""); fi
    pings+=("${names[j]}:${pingres[$i,$j]}")
    pj+=("\"${names[j]}\":\"${pingres[$i,$j]}\"")
  done
  est=$(established "$i")
  printf '%-6s %-6s %-14s %-14s %-14s %-17s %-13s %-5s %-29s %s\n' "${names[i]}" "${asn[i]}" "${pod[i]}" "${svc[i]}" \
    "${fab[i]}" "${uaddr[i]}" "${ugw[i]}" "$est/$((n - 1))" "$(IFS=,; echo "${learned[*]}")" "${pings[*]}"
  json_sites+=("$(jq -n --arg site "${names[i]}" --argjson asn "${asn[i]}" --arg pod "${pod[i]}" --arg service "${svc[i]}" \
    --arg fabric "${fab[i]}" --arg address "${uaddr[i]}" --arg gateway "${ugw[i]}" --arg expectGateway "${gw[i]}" \
    --argjson established "$est" --argjson learned "[$(IFS=,; echo "${lj[*]}")]" --argjson ping "{$(IFS=,; echo "${pj[*]}")}" \
    --arg kubeadm ok \
    '{site: $site, asn: $asn, pod: $pod, service: $service, fabric: $fabric, underlayAddress: $address,
      gateway: $gateway, expectGateway: $expectGateway, established: $established, learned: $learned,
      ping: $ping, kubeadmDryRun: $kubeadm}')")
done
echo "allocation + join, kubeadm dry-runs, BGP and pings in ${total}s (BGP converged in ${bgptime}s)"
if [[ -n $RESULT ]]; then
  printf '%s\n' "${json_sites[@]}" | jq -s --arg seconds "$total" --arg bgp "$bgptime" \
    '{sites: ., seconds: ($seconds | tonumber), bgpSeconds: ($bgp | tonumber)}' >"$RESULT"
fi
[[ -z $failed ]] || fail "ping from pod address failed:$failed"
echo "demo: OK"

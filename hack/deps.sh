#!/usr/bin/env bash
# Installs the Debian packages that tfsite's tests, demo and benchmarks drive,
# skipping apt entirely when all are present. Used by .ci/run and `make deps`.
#   dnsmasq-base            DHCP server of the netns rig and the demo's underlays
#   iproute2 nftables       namespaces, veth, partitions
#   iputils-ping procps     reachability checks, sysctl
#   udhcpc isc-dhcp-client dhcpcd5   DHCP peers (tests, bench-discover)
#   bird2 frr               real BGP speakers / config checks (peering tests, demo)
#   jq                      the demo's JSON checks
#   e2fsprogs mount         a volume found by label on a loop device (internal/labelvol)
#   gpg gpgv                signing and verifying update manifests (agent/update)
#   containerd              real containerd for the control-plane images import test (agent/bringup)
#   gcc libc6-dev binutils  the static pause binary of the control-plane images (hack/build-kube.sh)
set -euo pipefail
PKGS=(dnsmasq-base iproute2 nftables iputils-ping procps coreutils udhcpc isc-dhcp-client dhcpcd5
	bird2 frr jq make git ca-certificates containerd gcc libc6-dev binutils e2fsprogs mount gpg gpgv)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PKGS[@]} Debian packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]} — run: sudo make deps" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

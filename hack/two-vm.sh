#!/usr/bin/env bash
# two-vm.sh — the two-VM join test (`make test-two-vm`, as root, after make image): two tfsite VMs
# (direct kernel boot of mkosi.output/tfsite.raw, TCG) on one network served by dnsmasq, configured
# only through the kernel command line, must both report ready with distinct ASNs and
# non-overlapping prefixes and list each other as peers. The test is image/two_vm_test.go
# (TestTwoVMJoin); this script runs it and prints how long it took.
#
# The network lives in a network namespace (tfs-2vm-*): a bridge 10.77.0.1/24, dnsmasq with a
# reserved address per VM MAC (site-a 10.77.0.10, site-b 10.77.0.11), one tap per VM; nothing on the
# host's own interfaces or routes changes, and the namespace (with qemu and dnsmasq in it) is deleted
# when the test ends. Serial consoles: mkosi.output/two-vm-site-{a,b}.log.
# Env: TFSITE_BOOT_TIMEOUT (10m), TFSITE_TWO_VM_SMP (1 vCPU per VM), TFSITE_TWO_VM_MEM (1024 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "two-vm: needs root (network namespace, tap devices); run as root" >&2; exit 1; }
[[ -f mkosi.output/tfsite.raw ]] || { echo "two-vm: mkosi.output/tfsite.raw missing; run make image" >&2; exit 1; }
t0=$(date +%s)
rc=0
TFSITE_TWO_VM_TEST=1 ${GO:-go} test -count=1 -v -timeout 30m -run 'TestTwoVMJoin$' ./image/ || rc=$?
echo "two-vm: $([[ $rc == 0 ]] && echo passed || echo FAILED) in $(( $(date +%s) - t0 )) s (load $(cut -d' ' -f1 /proc/loadavg))"
exit "$rc"

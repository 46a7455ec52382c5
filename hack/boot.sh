#!/usr/bin/env bash
# boot.sh — boot the tfsite image under qemu with the serial console on this terminal (`make boot`).
#
#   hack/boot.sh [IMAGE]            UEFI (OVMF) boot of a disk image (default mkosi.output/tfsite.qcow2,
#                                   else tfsite.raw), or of the ISO when IMAGE ends in .iso (as a CD-ROM;
#                                   ISO_MEDIA=disk attaches it as a disk, as a USB stick written with dd)
#   hack/boot.sh --kernel           direct kernel boot (mkosi.output/tfsite.vmlinuz + tfsite.initrd +
#                                   the UKI's command line; no firmware, a few seconds faster)
# Env: QEMU_FIRMWARE (uefi: OVMF; bios: SeaBIOS, legacy boot — the ISO boots both, the disk images
#      UEFI only), QEMU_MEM (1536), QEMU_SMP (2), QEMU_ACCEL (kvm when /dev/kvm works, else tcg; this host: tcg),
#      TFSITE_CMDLINE (extra kernel command line, direct kernel boot only: e.g. tfsite.site=a),
#      TFSITE_SEED (a NoCloud seed image to attach as a second disk; hack/image-seed.sh makes one),
#      BOOT_PERSIST=1 (write to the image; default: changes are discarded, -snapshot),
#      QEMU_NETDEV (the NIC's -netdev, id n0; default the user-mode network below),
#      QEMU_MAC (the NIC's MAC address), QEMU_EXTRA (extra qemu arguments).
# The user-mode network gives DHCP 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3; host port 2222 -> guest 22.
# Quit: Ctrl-a x.
set -euo pipefail
cd "$(dirname "$0")/.."
out=mkosi.output
mem=${QEMU_MEM:-1536}
smp=${QEMU_SMP:-2}

accel=${QEMU_ACCEL:-}
if [[ -z "$accel" ]]; then
	# KVM only where the CPU advertises virtualization (vmx/svm) and /dev/kvm is writable. This machine
	# kind has a /dev/kvm that qemu cannot use (no vmx/svm in /proc/cpuinfo): TCG.
	accel=tcg
	if [[ -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
fi

firmware=${QEMU_FIRMWARE:-uefi}
[[ "$firmware" == uefi || "$firmware" == bios ]] || { echo "boot: QEMU_FIRMWARE=$firmware: want uefi or bios" >&2; exit 2; }
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars_src=/usr/share/OVMF/OVMF_VARS_4M.fd
vars=$(mktemp /tmp/tfsite-ovmf-vars.XXXXXX)
trap 'rm -f "$vars"' EXIT
cp "$ovmf_vars_src" "$vars"

# -nodefaults: only the devices named here. qemu's default machine would add a VGA card (the kernel
# then draws every console line on a framebuffer: CPU under TCG), an IDE CD-ROM the firmware tries to
# boot first, a floppy and a parallel port, all probed at every boot. The serial line is this
# terminal, multiplexed with qemu's monitor (Ctrl-a c; Ctrl-a x quits). QEMU_EXTRA="-vga std
# -display gtk" gives a screen for tty1.
netdev=${QEMU_NETDEV:-user,id=n0,hostfwd=tcp:127.0.0.1:${SSH_PORT:-2222}-:22}
nic=virtio-net-pci,netdev=n0${QEMU_MAC:+,mac=$QEMU_MAC}
args=(-accel "$accel" -m "$mem" -smp "$smp" -nodefaults -display none -serial mon:stdio -no-reboot
	-netdev "$netdev" -device "$nic" -device virtio-rng-pci)
[[ "${BOOT_PERSIST:-0}" == 1 ]] || args+=(-snapshot)

if [[ "${1:-}" == "--kernel" ]]; then
	shift
	cmdline=$(hack/image-cmdline.sh "$out/tfsite.raw")
	args+=(-kernel "$out/tfsite.vmlinuz" -initrd "$out/tfsite.initrd" -append "$cmdline ${TFSITE_CMDLINE:-}"
		-drive "if=virtio,format=raw,file=$out/tfsite.raw")
else
	img=${1:-}
	if [[ -z "$img" ]]; then
		img=$out/tfsite.qcow2
		[[ -f "$img" ]] || img=$out/tfsite.raw
	fi
	[[ -f "$img" ]] || { echo "boot: $img not found; run make image first" >&2; exit 1; }
	# SeaBIOS is qemu's default firmware: no flash drives for it.
	[[ "$firmware" == bios ]] ||
		args+=(-drive "if=pflash,format=raw,readonly=on,file=$ovmf_code" -drive "if=pflash,format=raw,file=$vars")
	# bootindex=1: the firmware boots this, not the seed disk (mkfs.fat's boot sector would make
	# SeaBIOS stop at "not a bootable disk").
	case "$img:${ISO_MEDIA:-cd}" in
	*.iso:cd) args+=(-drive "if=none,id=cd0,media=cdrom,readonly=on,file=$img" -device virtio-scsi-pci,id=scsi0
		-device scsi-cd,drive=cd0,bus=scsi0.0,bootindex=1) ;;
	*.iso:disk) args+=(-drive "if=none,id=d0,format=raw,file=$img" -device virtio-blk-pci,drive=d0,bootindex=1) ;;
	*.iso:*) echo "boot: ISO_MEDIA=$ISO_MEDIA: want cd or disk" >&2; exit 2 ;;
	*.qcow2:*) args+=(-drive "if=none,id=d0,format=qcow2,file=$img" -device virtio-blk-pci,drive=d0,bootindex=1) ;;
	*) args+=(-drive "if=none,id=d0,format=raw,file=$img" -device virtio-blk-pci,drive=d0,bootindex=1) ;;
	esac
fi
if [[ -n "${TFSITE_SEED:-}" ]]; then
	args+=(-drive "if=virtio,format=raw,readonly=on,file=$TFSITE_SEED")
fi
# Not exec: the EXIT trap removes the firmware variables copy. The explicit <&0 keeps the terminal
# (or a test's pipe) as qemu's stdin; TERM/INT stop qemu.
# shellcheck disable=SC2086
qemu-system-x86_64 "${args[@]}" ${QEMU_EXTRA:-} <&0 &
qemu=$!
trap 'kill "$qemu" 2>/dev/null' TERM INT HUP
rc=0
wait "$qemu" || rc=$?
# A trapped signal interrupts wait: wait again for qemu to finish exiting.
wait "$qemu" 2>/dev/null || true
exit "$rc"

#!/usr/bin/env bash
# image-iso.sh — the bare-metal ISO (UEFI), built without mounting anything (this host cannot mount
# vfat/iso9660). Called by hack/image-build.sh after the disk image; reuses mkosi's package cache.
#
# 1. mkosi --format=uki: one EFI binary whose initrd is the whole OS (same packages, trees and
#    scripts as the disk image). It boots straight into the appliance and runs from RAM (give the
#    machine >= 2 GiB); nothing is installed to disk. For a persistent install, write tfsite.raw to
#    the disk instead.
# 2. An El Torito EFI boot image: a FAT image made with mkfs.fat -C, filled with mmd/mcopy as
#    EFI/BOOT/BOOTX64.EFI; 3. xorriso wraps it into tfsite.iso.
set -euo pipefail
cd "$(dirname "$0")/.."
out=mkosi.output
nice_level=${NICE:-10}
n() { nice -n "$nice_level" "$@"; }

# The live system has no root partition: no root=, no fstab (the disk image's names it), nothing to grow.
n mkosi --force --format=uki --output=tfsite-live --compress-output=zstd \
	--kernel-command-line= \
	--kernel-command-line="console=tty0 console=ttyS0,115200 quiet systemd.firstboot=off" \
	--remove-files=/etc/fstab --remove-files=/usr/lib/repart.d \
	${MKOSI_FLAGS:-} build

uki=$out/tfsite-live.efi
[[ -f "$uki" ]] || { echo "image-iso: mkosi did not produce $uki" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/iso"
# FAT image: the UKI plus 4 MiB for FAT tables and slack, in KiB as mkfs.fat -C wants.
kib=$(( ($(stat -c %s "$uki") + 4 * 1048576) / 1024 ))
mkfs.fat -C -n TFSITE "$work/iso/efi.img" "$kib" >/dev/null
mmd -i "$work/iso/efi.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/iso/efi.img" "$uki" ::/EFI/BOOT/BOOTX64.EFI
n xorriso -as mkisofs -quiet -o "$out/tfsite.iso.tmp" -V TFSITE -r -J \
	-e efi.img -no-emul-boot "$work/iso"
mv -f "$out/tfsite.iso.tmp" "$out/tfsite.iso"

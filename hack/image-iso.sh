#!/usr/bin/env bash
# image-iso.sh — the bare-metal ISO: one hybrid image that boots under legacy BIOS and UEFI, burnt to a
# CD/DVD or written to a USB stick (dd). Built without mounting anything (this host cannot mount
# vfat/iso9660). Called by hack/image-build.sh after the disk image; reuses mkosi's package cache.
#
# 1. mkosi --format=uki: one EFI binary whose initrd is the whole OS (same packages, trees and
#    scripts as the disk image). The ISO boots straight into the appliance and runs from RAM (give the
#    machine >= 2 GiB); nothing is installed to disk. For a persistent install, write tfsite.raw to
#    the disk instead.
# 2. Its kernel, initrd and command line are taken out of the UKI (objcopy): BIOS firmware cannot run
#    an EFI binary, and shipping both the UKI and its parts would double the ISO.
# 3. grub-mkrescue (Debian's grub-pc-bin + grub-efi-amd64-bin) lays out GRUB for both firmwares and
#    xorriso writes the hybrid: El Torito BIOS boot (CD) and an MBR boot record (USB disk) for BIOS,
#    an El Torito EFI image (CD) and an EFI system partition in the partition table (USB disk) for
#    UEFI. GRUB shows one entry on the screen and on the serial line; `e` edits the command line
#    (e.g. to add tfsite.site=...).
set -euo pipefail
cd "$(dirname "$0")/.."
out=mkosi.output
nice_level=${NICE:-10}
n() { nice -n "$nice_level" "$@"; }
die() { echo "image-iso: $*" >&2; exit 1; }

for c in objcopy grub-mkrescue xorriso mformat; do
	command -v "$c" >/dev/null || die "$c not found: run sudo hack/image-deps.sh"
done
for d in i386-pc x86_64-efi; do
	[[ -d /usr/lib/grub/$d ]] || die "/usr/lib/grub/$d missing (grub-pc-bin, grub-efi-amd64-bin): run sudo hack/image-deps.sh"
done

# The live system has no root partition: no root=, no fstab (the disk image's names it), nothing to grow.
cmdline="console=tty0 console=ttyS0,115200 quiet systemd.firstboot=off"
n mkosi --force --format=uki --output=tfsite-live --compress-output=zstd \
	--kernel-command-line= --kernel-command-line="$cmdline" \
	--remove-files=/etc/fstab --remove-files=/usr/lib/repart.d \
	${MKOSI_FLAGS:-} build

uki=$out/tfsite-live.efi
[[ -f "$uki" ]] || die "mkosi did not produce $uki"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/iso/boot/grub"
objcopy -O binary --only-section=.linux "$uki" "$work/iso/boot/vmlinuz"
objcopy -O binary --only-section=.initrd "$uki" "$work/iso/boot/initrd"
for f in vmlinuz initrd; do
	[[ -s "$work/iso/boot/$f" ]] || die "no .${f/vmlinuz/linux} section in $uki"
done
# The UKI's own command line (what mkosi put there), so both boot paths boot alike.
objcopy -O binary --only-section=.cmdline "$uki" "$work/cmdline" 2>/dev/null || true
uki_cmdline=$(tr -d '\0' <"$work/cmdline" 2>/dev/null | tr '\n' ' ' | sed 's/ *$//')
[[ -n "$uki_cmdline" ]] || uki_cmdline=$cmdline

# serial first: on a headless server the serial line is the only screen; terminal_* lists both.
cat >"$work/iso/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=2
set timeout_style=countdown
menuentry "tfsite appliance (live, runs from RAM)" {
	linux /boot/vmlinuz $uki_cmdline
	initrd /boot/initrd
}
CFG

# grub-mkrescue passes what follows -- to xorriso: the volume label.
n grub-mkrescue --quiet --compress=xz -o "$out/tfsite.iso.tmp" "$work/iso" -- -volid TFSITE 2>"$work/mkrescue.log" ||
	{ cat "$work/mkrescue.log" >&2; die "grub-mkrescue failed"; }
mv -f "$out/tfsite.iso.tmp" "$out/tfsite.iso"

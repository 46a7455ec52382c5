#!/usr/bin/env bash
# Install what `make image` / `make boot` / `make test-image` need on a Debian 12 (bookworm) host.
#
# mkosi is pinned to 24.3 from bookworm-backports: bookworm's own mkosi 14 mounts vfat to build UEFI
# images (this kind of host kernel cannot), and mkosi's config syntax changes between releases.
# Everything is installed with --no-install-recommends (mkosi otherwise pulls dnf/zypper/pacman).
# Installing systemd-boot from backports upgrades the host's systemd to 254: harmless where PID 1
# is not systemd, and what mkosi's systemd-repart/ukify path expects.
#
# Usage: sudo hack/image-deps.sh        (idempotent; ~10 s when the packages are cached)
set -euo pipefail

MKOSI_VERSION=${MKOSI_VERSION:-24.3-1~bpo12+1}
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
	echo "image-deps: must run as root (apt-get); try: sudo $0" >&2
	exit 1
fi

# bookworm-backports: add a source if no configured source mentions it.
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	mirror=$("$(dirname "$0")/apt-mirror.sh")
	cat >/etc/apt/sources.list.d/bookworm-backports.sources <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	echo "image-deps: added /etc/apt/sources.list.d/bookworm-backports.sources"
	apt-get update -qq
elif ! apt-cache policy mkosi 2>/dev/null | grep -q 'bpo12'; then
	apt-get update -qq
fi

have=$(dpkg-query -W -f='${Version}' mkosi 2>/dev/null || true)
if [ "$have" != "$MKOSI_VERSION" ]; then
	apt-get install -y -qq --no-install-recommends -t bookworm-backports \
		"mkosi=$MKOSI_VERSION" systemd-boot systemd-boot-efi python3-pefile >/dev/null
fi

# Host tools: depmod (kmod), FAT/ISO builders without mounting (dosfstools, mtools, xorriso),
# GRUB for BIOS and UEFI and objcopy for the hybrid ISO (grub-pc-bin, grub-efi-amd64-bin, grub-common,
# binutils; only GRUB's files are used: nothing is installed to this host's disk), qemu + OVMF +
# SeaBIOS for `make boot` and the boot tests, qemu-img for qcow2; gpg signs updates, fdisk (sfdisk) and
# gzip cut the root slot out of the disk for them (IMAGE_FORMATS=update).
apt-get install -y -qq --no-install-recommends \
	kmod dosfstools mtools cpio zstd e2fsprogs debian-archive-keyring binutils gpg gpgv fdisk gzip \
	grub-common grub-pc-bin grub-efi-amd64-bin \
	qemu-system-x86 ovmf seabios qemu-utils xorriso >/dev/null

echo "image-deps: mkosi $(dpkg-query -W -f='${Version}' mkosi), $(qemu-system-x86_64 --version | head -1)"

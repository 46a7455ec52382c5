#!/usr/bin/env bash
# image-build.sh — build the tfsite appliance image (`make image`). Outputs in mkosi.output/:
#   tfsite.raw     GPT disk: ESP (systemd-boot + UKI), ext4 root; UEFI. dd it to a disk or USB stick.
#   tfsite.qcow2   the same, zlib-compressed for VMs/clouds (qemu-img convert -c).
#   tfsite.iso     bare metal / virtual media (UEFI El Torito): the whole OS in one UKI, runs from RAM.
#   tfsite.efi, tfsite.vmlinuz, tfsite.initrd   the disk's UKI and its parts (direct kernel boot).
#
# What goes in: bin/tfsite and bin/tfsite-agent (make build) and, when present, kubeadm/kubelet/kubectl from
#   ${TFSITE_KUBE_BIN:-${TFSITE_KUBE_CACHE:-/var/cache/tfsite/kube}/<version>/bin}
# where <version> is what `hack/build-kube.sh --print-bin` names (else the newest version directory).
# Missing Kubernetes binaries are reported and left out; the image still builds.
#
# Env: IMAGE_FORMATS   which of "raw qcow2 iso" to produce (default all; raw is always built)
#      MKOSI_FLAGS     extra mkosi flags, e.g. "--root-password=hashed:..." for a development image
#      NICE            niceness of mkosi and compressors (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

out=mkosi.output
stage=.cache/image-stage
formats=${IMAGE_FORMATS:-raw qcow2 iso}
nice_level=${NICE:-10}
n() { nice -n "$nice_level" "$@"; }
die() { echo "image: $*" >&2; exit 1; }
mib() { echo $(( ($(stat -c %s "$1") + 524287) / 1048576 )); }

[[ -x bin/tfsite && -x bin/tfsite-agent ]] || die "bin/tfsite or bin/tfsite-agent missing; run make build"
command -v mkosi >/dev/null || die "mkosi not installed; run sudo hack/image-deps.sh"
v=$(mkosi --version | awk '{print $2}')
[[ "$v" == 24.3 ]] || die "mkosi $v found, 24.3 needed (config syntax differs); run sudo hack/image-deps.sh"
[[ $(id -u) == 0 ]] || die "mkosi needs root here (it builds as root); run as root"

# --- the image's apt sources, from this host's own apt configuration (no mirror is hard-coded) ---
# Used only while building (mkosi.pkgmngr is not copied into the image). Replaces mkosi 24's
# generated list, which hard-codes debian-debug and deb-src entries that fail here.
# bookworm-backports is there for one package: systemd-boot-efi 254 (the UKI stub; see mkosi.conf).
mkdir -p mkosi.pkgmngr/etc/apt/sources.list.d
cat >mkosi.pkgmngr/etc/apt/sources.list.d/mkosi.sources <<SRC
Types: deb
URIs: $(hack/apt-mirror.sh)
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $(hack/apt-mirror.sh --security)
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

# --- stage the binaries (ExtraTrees=.cache/image-stage in mkosi.conf) ---
rm -rf "$stage"
install -D -m 0755 bin/tfsite "$stage/usr/bin/tfsite"
install -D -m 0755 bin/tfsite-agent "$stage/usr/bin/tfsite-agent"
kube_bin=${TFSITE_KUBE_BIN:-}
if [[ -z "$kube_bin" ]]; then
	if [[ -x hack/build-kube.sh ]]; then
		kube_bin=$(hack/build-kube.sh --print-bin 2>/dev/null || true)
	fi
	if [[ -z "$kube_bin" || ! -d "$kube_bin" ]]; then
		kube_bin=$(ls -d "${TFSITE_KUBE_CACHE:-/var/cache/tfsite/kube}"/v*/bin 2>/dev/null | sort -V | tail -1 || true)
	fi
fi
kube_in=() kube_missing=()
for b in kubeadm kubelet kubectl; do
	if [[ -n "$kube_bin" && -x "$kube_bin/$b" ]]; then
		install -D -m 0755 "$kube_bin/$b" "$stage/usr/bin/$b"
		kube_in+=("$b")
	else
		kube_missing+=("$b")
	fi
done
# The control-plane images (hack/build-kube.sh: kube-apiserver, controller-manager, scheduler, proxy, etcd,
# CoreDNS, pause) as one archive bring-up imports into containerd before kubeadm init: no registry needed.
images_tar=${TFSITE_KUBE_IMAGES_TAR:-$(hack/build-kube.sh --print-images 2>/dev/null || true)}
if [[ -n "$images_tar" && -f "$images_tar" && -f "${images_tar%.tar}.list" ]]; then
	install -D -m 0644 "$images_tar" "$stage/usr/share/tfsite/kube-images.tar"
	install -D -m 0644 "${images_tar%.tar}.list" "$stage/usr/share/tfsite/kube-images.tar.list"
	kube_in+=("images")
else
	kube_missing+=("images")
fi
mkdir -p "$stage/usr/lib/tfsite"
# The subcommands the image's units and scripts ask has-subcommand about, answered now by the binary
# itself (same test as has-subcommand's slow path), so that booting does not start the Go binary once
# more per unit to find out.
grep -rhoE 'has-subcommand( [a-z-]+)+' image/rootfs | sed 's/^has-subcommand //' | sort -u |
	while read -r words; do
		# Captured first: with pipefail, `tfsite ... | grep -q` fails when grep exits early (SIGPIPE).
		# shellcheck disable=SC2086
		help=$(bin/tfsite $words --help 2>/dev/null || true)
		if grep -qE "^  tfsite ${words}( |\$)" <<<"$help"; then
			echo "$words"
		fi
	done >"$stage/usr/lib/tfsite/subcommands"
{
	echo "tfsite=$(bin/tfsite version 2>/dev/null || echo unknown)"
	echo "kube_bin=${kube_bin:-none}"
	echo "kube_included=${kube_in[*]:-}"
	echo "kube_missing=${kube_missing[*]:-}"
	echo "subcommands=$(paste -sd, "$stage/usr/lib/tfsite/subcommands")"
	echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$stage/usr/lib/tfsite/image-info"
echo "image: staged $(bin/tfsite version 2>/dev/null); kube: ${kube_in[*]:-none}${kube_missing:+ (missing: ${kube_missing[*]} in ${kube_bin:-<no cache dir>})}"

# --- the disk image (Incremental=yes: packages are installed once and cached in mkosi.cache/) ---
t0=$(date +%s)
n mkosi --force ${MKOSI_FLAGS:-} build
t1=$(date +%s)
echo "image: mkosi disk build $((t1 - t0)) s"

if [[ " $formats " == *" qcow2 "* ]]; then
	n qemu-img convert -c -O qcow2 "$out/tfsite.raw" "$out/tfsite.qcow2.tmp"
	mv -f "$out/tfsite.qcow2.tmp" "$out/tfsite.qcow2"
	echo "image: qcow2 $(( $(date +%s) - t1 )) s"
fi

if [[ " $formats " == *" iso "* ]]; then
	t2=$(date +%s)
	hack/image-iso.sh
	echo "image: iso $(( $(date +%s) - t2 )) s"
fi

echo "image: outputs (MiB):"
for f in "$out"/tfsite.{raw,qcow2,iso,efi} "$out"/tfsite-live.efi; do
	[[ -f "$f" ]] && printf '  %-28s %6s MiB\n' "$f" "$(mib "$f")"
done
if [[ -f "$out/tfsite.raw" ]]; then
	printf '  %-28s %6s MiB (allocated)\n' "tfsite.raw used" "$(( $(du -k "$out/tfsite.raw" | cut -f1) / 1024 ))"
fi
echo "image: total $(( $(date +%s) - t0 )) s"

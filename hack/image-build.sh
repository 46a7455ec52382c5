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
# Env: IMAGE_FORMATS   which of "raw qcow2 iso update" to produce (default raw qcow2 iso; raw is always built)
#      TFSITE_IMAGE_VERSION  the version (default 0.<commit count>)
#      TFSITE_IMAGE_EXTRA    a directory of extra files baked into this build (the update test's version
#                            whose health check fails)
#      TFSITE_UPDATE_KEY     GnuPG home holding the key that signs updates (default: a lab key made once in
#                            .cache/update-key; its public half is baked into the image as the trust root)
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
# The version this image carries (IMAGE_VERSION in os-release, the root slot's label, the UKI's name):
# TFSITE_IMAGE_VERSION, else 0.<commits on this branch>, which only grows.
version=${TFSITE_IMAGE_VERSION:-0.$(git rev-list --count HEAD 2>/dev/null || echo 0)}
[[ $version =~ ^[0-9][0-9A-Za-z.~^-]*$ ]] || die "image version '$version': use digits, letters, . ~ ^ -"
mkdir -p mkosi.conf.d
cat >mkosi.conf.d/20-version.conf <<VER
# Written by hack/image-build.sh.
[Output]
ImageVersion=$version

[Content]
KernelCommandLine=root=PARTLABEL=tfsite_$version
VER

# The trust root of updates: the signing key's public half goes into the image
# (/etc/systemd/import-pubring.gpg); updates are signed with the private half (IMAGE_FORMATS=update).
export GNUPGHOME=${TFSITE_UPDATE_KEY:-$PWD/.cache/update-key}
if [[ -z "${TFSITE_UPDATE_KEY:-}" && ! -d "$GNUPGHOME" ]]; then
	mkdir -m 0700 -p "$GNUPGHOME"
	gpg --batch --quiet --passphrase '' --quick-gen-key "tfsite updates (lab key, $(hostname))" ed25519 sign never
	echo "image: made a lab update-signing key in $GNUPGHOME (set TFSITE_UPDATE_KEY to a real one)"
fi
gpg --batch --quiet --list-secret-keys | grep -q . || die "no secret key in $GNUPGHOME to sign updates with"

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
if [[ -n "${TFSITE_IMAGE_EXTRA:-}" ]]; then
	cp -a "$TFSITE_IMAGE_EXTRA/." "$stage/"
fi
mkdir -p "$stage/usr/lib/tfsite" "$stage/etc/systemd"
gpg --batch --quiet --export >"$stage/etc/systemd/import-pubring.gpg"
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

# The UKI carries the version in its name, tfsite_<version>.efi: systemd-boot orders entries by it and
# systemd-sysupdate finds the installed versions by it (mkosi names it after the kernel). Renamed in
# the ESP with mtools: this host cannot mount vfat.
esp_off=$(( $(sfdisk -d "$out/tfsite.raw" | awk -F'[=,]' '/name="esp"/ {gsub(/ /, "", $2); print $2}') * 512 ))
uki_old=$(mdir -b -i "$out/tfsite.raw@@$esp_off" ::EFI/Linux | grep -E '\.efi$' | head -1)
[[ -n "$uki_old" ]] || die "no UKI under EFI/Linux in the ESP of $out/tfsite.raw"
mren -i "$out/tfsite.raw@@$esp_off" "$uki_old" "::EFI/Linux/tfsite_$version.efi"
echo "image: version $version: root slot tfsite_$version, ESP EFI/Linux/tfsite_$version.efi"

if [[ " $formats " == *" update "* ]]; then
	# What `tfsite update --from DIR` installs: the root slot's filesystem and the UKI, listed with
	# their hashes in SHA256SUMS, signed (SHA256SUMS.gpg).
	t2=$(date +%s)
	upd=$out/update/tfsite_$version
	rm -rf "$upd" && mkdir -p "$upd"
	read -r root_start root_size < <(sfdisk -d "$out/tfsite.raw" |
		awk -F'[=,]' -v l="name=\"tfsite_$version\"" 'index($0, l) {gsub(/ /, "", $2); gsub(/ /, "", $4); print $2, $4}')
	[[ -n "$root_start" ]] || die "no partition tfsite_$version in $out/tfsite.raw"
	# gzip, not zstd: sysupdate 254 wrote a .zst source into the slot still compressed (the slot then
	# did not mount); it unpacks gzip, and gzip -1 is quick to unpack on the appliance.
	dd if="$out/tfsite.raw" bs=512 skip="$root_start" count="$root_size" status=none | n gzip -1 >"$upd/tfsite_$version.root.raw.gz"
	mcopy -i "$out/tfsite.raw@@$esp_off" "::EFI/Linux/tfsite_$version.efi" "$upd/tfsite_$version.efi"
	(cd "$upd" && sha256sum tfsite_* >SHA256SUMS && gpg --batch --quiet --detach-sign --output SHA256SUMS.gpg SHA256SUMS)
	gpgconf --kill gpg-agent 2>/dev/null || true # gpg started one for the key; it has nothing left to do
	echo "image: update $upd: $(du -sh "$upd" | cut -f1) ($(( $(date +%s) - t2 )) s)"
fi

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

#!/usr/bin/env bash
# build-kube.sh — build everything an offline `kubeadm init` needs from the Go module proxy, at ONE pinned
# version each, and cache it by version in ${TFSITE_KUBE_CACHE:-/var/cache/tfsite/kube}/<kube version>/:
#   bin/     kubeadm kubectl kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy
#            (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3), coredns (github.com/coredns/coredns),
#            pause (Kubernetes' build/pause/linux/pause.c, gcc -static)
#   images/  kube-images.tar: those binaries as the images `kubeadm config images list` names (hack/kubeimages,
#            on go-containerregistry), one docker-archive for `ctr -n k8s.io images import`; kube-images.list
#
# Why wrapper modules: k8s.io/kubernetes's go.mod replaces its staging modules (k8s.io/api, client-go, ...)
# with ./staging/... paths, which do not exist in the module zip; hack/kube/kubernetes/go.mod requires
# k8s.io/kubernetes and replaces each staging module with the published v0.Y.Z instead. Same for etcd's
# sibling modules (hack/kube/etcd) and CoreDNS (hack/kube/coredns).
#
# Every output has its own stamp (versions, wrapper go.mod/go.sum, Go version): a change rebuilds only what
# it affects, and a cached build is a no-op (CI caches the directory by version).
# Usage: hack/build-kube.sh              build what is missing or stale; prints the bin dir last
#        hack/build-kube.sh --print-bin  print the bin dir only
#        hack/build-kube.sh --print-images  print the images archive's path only
# Env:   TFSITE_KUBE_CACHE   cache root (default /var/cache/tfsite/kube)
#        TFSITE_KUBE_CMDS    kubernetes commands to build (default: all seven above)
#        TFSITE_KUBE_IMAGES  0 skips the images (binaries only: the tests need no images)
#        NICE                niceness for the compiler (default 10)
set -euo pipefail

KUBE_VERSION=v1.37.2     # k8s.io/kubernetes; staging modules at v0.37.2 (= client-go in the main go.mod)
ETCD_VERSION=v3.7.0      # go.etcd.io/etcd/server/v3: what kubeadm v1.37 deploys (image tag 3.7.0-0)
COREDNS_VERSION=v1.14.6  # github.com/coredns/coredns: kubeadm v1.37's CoreDNS
PAUSE_VERSION=3.10.2     # the sandbox image kubeadm v1.37 names; built from the k8s.io/kubernetes module's source

here=$(cd "$(dirname "$0")" && pwd)
cache=${TFSITE_KUBE_CACHE:-/var/cache/tfsite/kube}
top="$cache/$KUBE_VERSION"
bindir="$top/bin"
imgdir="$top/images"
cmds=${TFSITE_KUBE_CMDS:-kubeadm kubectl kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy}
nice_level=${NICE:-10}

case "${1:-}" in
--print-bin) echo "$bindir"; exit 0 ;;
--print-images) echo "$imgdir/kube-images.tar"; exit 0 ;;
esac

mkdir -p "$bindir" "$imgdir" "$top/stamps"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
goversion=$(go env GOVERSION)

# fresh OUT KEY: true when OUT exists and its stamp says KEY; stamp OUT KEY records it.
fresh() { [[ -e "$1" && -f "$top/stamps/$(basename "$1")" && "$(cat "$top/stamps/$(basename "$1")")" == "$2" ]]; }
stamp() { echo "$2" >"$top/stamps/$(basename "$1").tmp" && mv -f "$top/stamps/$(basename "$1").tmp" "$top/stamps/$(basename "$1")"; }
key() { { echo "$@" "go=$goversion"; } | sha256sum | cut -d' ' -f1; }
wrapper_key() { cat "$here/kube/$1/go.mod" "$here/kube/$1/go.sum" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# build <wrapper> <out> <package> <ldflags>: builds inside a copy of the wrapper so go.mod/go.sum may be
# completed (-mod=mod) without touching the tree; a completed go.sum is copied back when the tree had none.
build() {
	local wrapper=$1 out=$2 pkg=$3 ldflags=$4 t0 k
	k=$(key "$pkg" "$ldflags" "$(wrapper_key "$wrapper")")
	if fresh "$out" "$k"; then return; fi
	mkdir -p "$work/$wrapper"
	cp "$here/kube/$wrapper/go.mod" "$work/$wrapper/"
	[[ -f "$here/kube/$wrapper/go.sum" ]] && cp "$here/kube/$wrapper/go.sum" "$work/$wrapper/"
	t0=$(date +%s)
	echo "build-kube: building $(basename "$out") ($pkg)..." >&2
	(cd "$work/$wrapper" && nice -n "$nice_level" go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
	mv -f "$out.tmp" "$out"
	if [[ ! -f "$here/kube/$wrapper/go.sum" && -w "$here/kube/$wrapper" ]]; then
		cp "$work/$wrapper/go.sum" "$here/kube/$wrapper/go.sum"
		k=$(key "$pkg" "$ldflags" "$(wrapper_key "$wrapper")")
	fi
	stamp "$out" "$k"
	echo "build-kube: $(basename "$out") built in $(($(date +%s) - t0))s" >&2
}

IFS=. read -r kube_major kube_minor _ <<<"${KUBE_VERSION#v}"
vpkg=k8s.io/component-base/version
kube_ldflags="-s -w -X $vpkg.gitVersion=$KUBE_VERSION -X $vpkg.gitMajor=$kube_major -X $vpkg.gitMinor=$kube_minor \
 -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"

# A binary whose version is not the pinned one (a cache filled by an older script) is rebuilt, whatever
# its stamp says: kubeadm 1.37 passes etcd flags that etcd 3.5 refuses.
if [[ -x "$bindir/etcd" ]] && ! "$bindir/etcd" --version 2>/dev/null | grep -qx "etcd Version: ${ETCD_VERSION#v}"; then
	echo "build-kube: cached etcd is not ${ETCD_VERSION}: rebuilding it" >&2
	rm -f "$top/stamps/etcd"
fi
if [[ -x "$bindir/kubeadm" ]] && [[ "$("$bindir/kubeadm" version -o short 2>/dev/null)" != "$KUBE_VERSION" ]]; then
	echo "build-kube: cached kubeadm is not ${KUBE_VERSION}: rebuilding the kube binaries" >&2
	for c in $cmds; do rm -f "$top/stamps/$c"; done
fi

for c in $cmds; do
	build kubernetes "$bindir/$c" "k8s.io/kubernetes/cmd/$c" "$kube_ldflags"
done
build etcd "$bindir/etcd" "go.etcd.io/etcd/server/v3" "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}"
build coredns "$bindir/coredns" "github.com/coredns/coredns" "-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VERSION}"

# pause: C, static, from the k8s.io/kubernetes module the kube binaries came from.
k=$(key pause "$PAUSE_VERSION" "$KUBE_VERSION" "$(gcc --version 2>/dev/null | head -1)")
if ! fresh "$bindir/pause" "$k"; then
	command -v gcc >/dev/null || { echo "build-kube: gcc missing (apt-get install gcc libc6-dev): needed for pause" >&2; exit 1; }
	src=$(cd "$here/kube/kubernetes" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	gcc -Os -static -Wall -Werror -DVERSION="v$PAUSE_VERSION-tfsite" -o "$bindir/pause.tmp" "$src/build/pause/linux/pause.c"
	strip "$bindir/pause.tmp" && mv -f "$bindir/pause.tmp" "$bindir/pause"
	stamp "$bindir/pause" "$k"
	echo "build-kube: pause built" >&2
fi

# The images: names and tags as `kubeadm config images list` prints them for this release.
if [[ "${TFSITE_KUBE_IMAGES:-1}" != 0 ]]; then
	reg=registry.k8s.io
	images=(
		"$reg/kube-apiserver:$KUBE_VERSION=kube-apiserver"
		"$reg/kube-controller-manager:$KUBE_VERSION=kube-controller-manager"
		"$reg/kube-scheduler:$KUBE_VERSION=kube-scheduler"
		"$reg/kube-proxy:$KUBE_VERSION=kube-proxy"
		"$reg/coredns/coredns:$COREDNS_VERSION=coredns"
		"$reg/pause:$PAUSE_VERSION=pause"
		"$reg/etcd:${ETCD_VERSION#v}-0=etcd"
	)
	want=$("$bindir/kubeadm" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null | sort)
	have=$(printf '%s\n' "${images[@]%%=*}" | sort)
	if [[ "$want" != "$have" ]]; then
		echo "build-kube: kubeadm $KUBE_VERSION wants other images than this script builds:" >&2
		diff <(echo "$want") <(echo "$have") >&2 || true
		exit 1
	fi
	# kube-proxy runs in nftables mode: its image carries this host's nft and the libraries it loads.
	nftroot="$top/nft-root"
	nft=$(command -v nft || true)
	[[ -n "$nft" ]] || { echo "build-kube: nft missing (apt-get install nftables): kube-proxy's image needs it" >&2; exit 1; }
	rm -rf "$nftroot" && mkdir -p "$nftroot/usr/sbin"
	cp -L "$nft" "$nftroot/usr/sbin/nft"
	ldd "$nft" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do
		mkdir -p "$nftroot$(dirname "$lib")"
		cp -L "$lib" "$nftroot$lib"
	done
	# The binaries' stamps, not the archive's own (that would make every run rewrite it).
	bins_key=$(find "$top/stamps" -type f ! -name kube-images.tar ! -name '*.tmp' | sort | xargs cat | sha256sum | cut -d' ' -f1)
	k=$(key images "${images[*]}" "$bins_key" "$(cat "$here"/kubeimages/*.go "$here/kubeimages/go.mod" | sha256sum)" \
		"$(find "$nftroot" -type f -exec sha256sum {} + | sort | sha256sum)")
	if ! fresh "$imgdir/kube-images.tar" "$k"; then
		echo "build-kube: writing the images archive..." >&2
		(cd "$here/kubeimages" && nice -n "$nice_level" go run . --bin "$bindir" --out "$imgdir/kube-images.tar" \
			--extra "$nftroot" --extra-for "$reg/kube-proxy" "${images[@]}")
		printf '%s\n' "${images[@]%%=*}" >"$imgdir/kube-images.list"
		stamp "$imgdir/kube-images.tar" "$k"
	fi
fi

"$bindir/kubeadm" version -o short >&2 || true
"$bindir/etcd" --version | head -1 >&2 || true
echo "$bindir"

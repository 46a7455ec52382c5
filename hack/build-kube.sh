#!/usr/bin/env bash
# build-kube.sh — build kubeadm, kubectl, kube-apiserver (and optionally kubelet) plus etcd from the Go module
# proxy at ONE pinned version each, and cache them in ${TFSITE_KUBE_CACHE:-/var/cache/tfsite/kube}/<version>/bin/.
#
# Why a wrapper module: k8s.io/kubernetes's go.mod replaces its staging modules (k8s.io/api, client-go, ...)
# with ./staging/... paths, which do not exist in the module zip; hack/kube/kubernetes/go.mod requires
# k8s.io/kubernetes and replaces each staging module with the published v0.Y.Z instead (the list is the
# replace block of k8s.io/kubernetes's own go.mod). Same for etcd: hack/kube/etcd/go.mod pins server/v3 and its
# sibling modules at one v3.5.x.
#
# No-op when the cache holds a build whose stamp matches (versions, command list, wrapper go.mod/go.sum).
# Usage: hack/build-kube.sh            build (or do nothing if cached); prints the bin dir last
#        hack/build-kube.sh --print-bin  print the bin dir only
# Env:   TFSITE_KUBE_CACHE   cache root (default /var/cache/tfsite/kube)
#        TFSITE_KUBE_CMDS    kubernetes commands to build (default "kubeadm kubectl kubelet kube-apiserver")
#        NICE                niceness for the compiler (default 10)
set -euo pipefail

KUBE_VERSION=v1.37.2     # k8s.io/kubernetes; staging modules at v0.37.2 (= client-go in the main go.mod)
STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.5.35     # go.etcd.io/etcd/server/v3 and siblings

here=$(cd "$(dirname "$0")" && pwd)
cache=${TFSITE_KUBE_CACHE:-/var/cache/tfsite/kube}
bindir="$cache/$KUBE_VERSION/bin"
cmds=${TFSITE_KUBE_CMDS:-kubeadm kubectl kubelet kube-apiserver}
nice_level=${NICE:-10}

if [[ "${1:-}" == "--print-bin" ]]; then echo "$bindir"; exit 0; fi

stamp_of() {
  {
    echo "kube=$KUBE_VERSION staging=$STAGING_VERSION etcd=$ETCD_VERSION cmds=$cmds go=$(go env GOVERSION)"
    cat "$here/kube/kubernetes/go.mod" "$here/kube/etcd/go.mod"
    cat "$here/kube/kubernetes/go.sum" "$here/kube/etcd/go.sum" 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1
}
stamp_want=$(stamp_of)
stamp="$cache/$KUBE_VERSION/stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_want" ]]; then
  ok=1
  for c in $cmds etcd; do [[ -x "$bindir/$c" ]] || ok=0; done
  if [[ $ok == 1 ]]; then echo "build-kube: cached in $bindir" >&2; echo "$bindir"; exit 0; fi
fi

mkdir -p "$bindir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"

# build <wrapper-dir> <out> <package> <ldflags>: builds inside a copy of the wrapper so go.mod/go.sum may be
# completed (-mod=mod) without touching the tree; a completed go.sum is copied back when the tree had none.
build() {
  local wrapper=$1 out=$2 pkg=$3 ldflags=$4 t0 name
  name=$(basename "$wrapper")
  mkdir -p "$work/$name"
  cp "$here/kube/$name/go.mod" "$work/$name/"
  [[ -f "$here/kube/$name/go.sum" ]] && cp "$here/kube/$name/go.sum" "$work/$name/"
  t0=$(date +%s)
  (cd "$work/$name" && nice -n "$nice_level" go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv -f "$out.tmp" "$out"
  echo "build-kube: $(basename "$out") built in $(( $(date +%s) - t0 ))s" >&2
}

IFS=. read -r kube_major kube_minor _ <<<"${KUBE_VERSION#v}"
vpkg=k8s.io/component-base/version
kube_ldflags="-s -w -X $vpkg.gitVersion=$KUBE_VERSION -X $vpkg.gitMajor=$kube_major -X $vpkg.gitMinor=$kube_minor \
 -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"

for c in $cmds; do
  build "$here/kube/kubernetes" "$bindir/$c" "k8s.io/kubernetes/cmd/$c" "$kube_ldflags"
done
build "$here/kube/etcd" "$bindir/etcd" "go.etcd.io/etcd/server/v3" "-s -w"

for n in kubernetes etcd; do
  if [[ ! -f "$here/kube/$n/go.sum" && -w "$here/kube/$n" ]]; then cp "$work/$n/go.sum" "$here/kube/$n/go.sum"; fi
done

"$bindir/kubeadm" version -o short >&2 || true
"$bindir/etcd" --version | head -1 >&2 || true
stamp_want=$(stamp_of) # go.sum may have just been recorded
echo "$stamp_want" > "$stamp.tmp" && mv -f "$stamp.tmp" "$stamp"
echo "$bindir"

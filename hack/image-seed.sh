#!/usr/bin/env bash
# image-seed.sh OUT USER-DATA [META-DATA] — make a NoCloud seed volume (vfat, label CIDATA) holding
# user-data and meta-data, without mounting anything (mkfs.fat -C + mcopy). Attach it to the machine
# as a second disk (hack/boot.sh: TFSITE_SEED=OUT); the agent finds it by label. USER-DATA is YAML
# whose `tfsite:` key is a config document (docs/config.md), e.g.
#     #cloud-config
#     tfsite:
#       site: lab-a
#       voters: [lab-a]
# META-DATA defaults to "instance-id: tfsite-<random>".
set -euo pipefail
if [[ $# -lt 2 ]]; then
	echo "usage: $0 OUT USER-DATA [META-DATA]" >&2
	exit 2
fi
out=$1 ud=$2 md=${3:-}
[[ -f "$ud" ]] || { echo "image-seed: user-data $ud not found" >&2; exit 2; }
for t in mkfs.fat mcopy; do
	command -v "$t" >/dev/null || { echo "image-seed: $t missing; run hack/image-deps.sh" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -z "$md" ]]; then
	md=$tmp/meta-data
	echo "instance-id: tfsite-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')" >"$md"
fi
rm -f "$out.tmp"
mkfs.fat -C -n CIDATA "$out.tmp" 2048 >/dev/null
mcopy -i "$out.tmp" "$ud" ::/user-data
mcopy -i "$out.tmp" "$md" ::/meta-data
mv -f "$out.tmp" "$out"

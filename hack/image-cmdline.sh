#!/usr/bin/env bash
# image-cmdline.sh [UKI] — print the kernel command line baked into the image's UKI (its .cmdline
# section), for direct kernel boot of tfsite.vmlinuz + tfsite.initrd. root=PARTUUID= is printed in
# lower case: the initrd compares it as a string with what blkid reports.
set -euo pipefail
uki=${1:-mkosi.output/tfsite.efi}
uki=${uki%.raw}; uki=${uki%.efi}.efi
[[ -f "$uki" ]] || { echo "image-cmdline: $uki not found; run make image first" >&2; exit 1; }
/usr/bin/python3 - "$uki" <<'PY'
import re, sys
import pefile
pe = pefile.PE(sys.argv[1], fast_load=True)
for s in pe.sections:
    if s.Name.rstrip(b"\0") == b".cmdline":
        c = s.get_data().rstrip(b"\0").decode().strip()
        print(re.sub(r"PARTUUID=([0-9A-Fa-f-]+)", lambda m: "PARTUUID=" + m.group(1).lower(), c))
        break
else:
    sys.exit(f"image-cmdline: {sys.argv[1]} has no .cmdline section")
PY

#!/usr/bin/env bash
# lab.sh DIR — build the lab command (hack/lab: the tests' network labs, internal/lab, for scripts)
# into DIR and print its path. Go's build cache makes a rebuild take about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
CGO_ENABLED=0 "${GO:-go}" build -o "$1/lab" ./hack/lab
echo "$1/lab"

#!/usr/bin/env bash
# Runs every Go fuzz target of the module for $FUZZTIME each (default 10s).
# Usage: FUZZTIME=1m hack/fuzz.sh [package-pattern]
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10s}
pattern=${1:-./...}
n=0
while read -r pkg; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $target ($FUZZTIME)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/fuzz.$$.log 2>&1 || {
      cat /tmp/fuzz.$$.log; rm -f /tmp/fuzz.$$.log; exit 1; }
    n=$((n+1))
  done
done < <(go list "$pattern")
rm -f /tmp/fuzz.$$.log
echo "fuzz: $n targets ran for $FUZZTIME each, no failures"

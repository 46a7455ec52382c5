#!/usr/bin/env bash
# chaos: the long form of the allocation chaos test (agent/e2e TestChaos):
# ROUNDS rounds of partitions (link down or an nftables split), kill -9 and
# restarts, concurrent new sites and heals, with the safety invariants checked
# after every round. Needs root (network namespaces) and nftables.
#
# Usage: ROUNDS=200 hack/chaos.sh      (SEED=n reproduces a run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-200}
export TFSITE_CHAOS_ROUNDS=$ROUNDS
[ -n "${SEED:-}" ] && export TFSITE_CHAOS_SEED=$SEED
# ~15 s per round; allow 30 s per round plus setup.
timeout=$(( ROUNDS * 30 + 300 ))s
exec go test -count=1 -v -timeout "$timeout" -run '^TestChaos$' ./agent/e2e

# Allocation (issue 3): long chaos run and the allocation benchmark.
ROUNDS ?= 200

.PHONY: chaos bench-alloc

chaos: ## long chaos test of allocation: ROUNDS rounds of partitions, kill -9, new sites (root)
	ROUNDS=$(ROUNDS) hack/chaos.sh

bench-alloc: ## time until 10/100/500 agent processes hold a committed allocation, RSS per agent, beside serf (PEER= skips it)
	hack/bench-alloc.sh $(SITES)

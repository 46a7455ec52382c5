# Recovery area (issue 5): guarded network changes, management path.
.PHONY: bench-rollback

bench-rollback: ## median injected lockout -> access restored (netns, root), beside netplan/Talos/JunOS/nmstate defaults; session hang-up and kill -9 of the guard
	RUNS=$${RUNS:-7} hack/bench-rollback.sh

# Bring-up area (issue 4): Kubernetes binaries for kubeadm/apiserver tests, docs/bringup.md.
.PHONY: kube-bins

kube-bins: ## build the pinned control plane (7 kube commands, etcd, CoreDNS, pause) and its images archive from the Go module proxy into /var/cache/tfsite/kube (no-op when cached)
	hack/build-kube.sh

# The kubeadm dry-run and API-server integration tests need these binaries and
# fail in CI without them: build (or find cached) before the tests run.
test-unit: kube-bins-for-tests

.PHONY: kube-bins-for-tests
kube-bins-for-tests: # kube-bins as root or with TFSITE_KUBE_CACHE set; otherwise those tests skip (and say why)
	@if [ "$$(id -u)" = 0 ] || [ -n "$$TFSITE_KUBE_CACHE" ]; then hack/build-kube.sh >/dev/null; \
	else echo "kube-bins: not built (not root and no TFSITE_KUBE_CACHE): kubeadm/kube-apiserver tests will skip"; fi

.PHONY: demo-bgp
demo-bgp: build ## BGP part of the demo: BIRD per site from `tfsite peering`, sessions, routes, pod-to-pod ping (root)
	TFSITE=bin/tfsite hack/demo-bgp.sh $(SITES)

# Underlay discovery (issue 2): see docs/discover.md.
.PHONY: bench-discover

bench-discover: build ## benchmark tfsite discover against dhclient/udhcpc/dhcpcd on the same dnsmasq (root)
	GO=$(GO) hack/bench-discover.sh $(RUNS)

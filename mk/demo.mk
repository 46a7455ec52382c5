# The demo (issue 4, item 5): see docs/demo.md. Runs as root.
.PHONY: demo

demo: deps build kube-bins ## the main job: 3 sites in netns (DHCP underlays, agents, allocation, kubeadm dry-run, BIRD from the agents, pod pings), summary table (root)
	GO=$(GO) TFSITE=bin/tfsite hack/demo.sh

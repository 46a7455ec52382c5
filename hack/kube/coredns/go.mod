// Wrapper module for hack/build-kube.sh: builds CoreDNS (github.com/coredns/coredns, package main) at the
// version kubeadm v1.37 deploys (registry.k8s.io/coredns/coredns:v1.14.6).
module tfsite.local/corednsbuild

go 1.26.8

require github.com/coredns/coredns v1.14.6

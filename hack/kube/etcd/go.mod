// Wrapper module for hack/build-kube.sh: builds etcd from go.etcd.io/etcd/server/v3 (package main) with its
// sibling modules pinned to the same release (their own go.mod uses ../ replaces that do not exist in zips).
// v3.7.0: the version kubeadm v1.37 deploys (its image tag 3.7.0-0); etcd 3.5 exits on the flags it passes.
module tfsite.local/etcdbuild

go 1.26.8

require go.etcd.io/etcd/server/v3 v3.7.0

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.7.0
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 v3.7.0
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 v3.7.0
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 v3.7.0
)

// Wrapper module for hack/build-kube.sh: builds etcd from go.etcd.io/etcd/server/v3 (package main) with its
// sibling modules pinned to the same release (their own go.mod uses ../ replaces that do not exist in zips).
module tfsite.local/etcdbuild

go 1.26.8

require go.etcd.io/etcd/server/v3 v3.5.35

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.5.35
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 v3.5.35
	go.etcd.io/etcd/client/v2 => go.etcd.io/etcd/client/v2 v2.305.35
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 v3.5.35
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 v3.5.35
	go.etcd.io/etcd/raft/v3 => go.etcd.io/etcd/raft/v3 v3.5.35
)

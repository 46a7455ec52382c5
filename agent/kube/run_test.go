package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/internal/testrig"
)

func TestKubeadmErrorsCarryOutput(t *testing.T) {
	k := Kubeadm{Path: testrig.KubeBin(t, KubernetesVersion, "kubeadm")}
	err := k.Validate(context.Background(), writeFile(t, "bad.yaml", []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: Nope\n")))
	if !errors.Is(err, ErrKubeadmFailed) || !strings.Contains(err.Error(), "config validate") {
		t.Fatalf("got %v", err)
	}
	missing := Kubeadm{Path: "/nonexistent/kubeadm"}
	if _, err := missing.Version(context.Background()); !errors.Is(err, ErrKubeadmFailed) {
		t.Fatalf("missing binary: %v", err)
	}
}

func TestTail(t *testing.T) {
	if got := tail("a\nb\nc\n", 2); got != "b\nc" {
		t.Fatalf("%q", got)
	}
	if got := tail("a", 5); got != "a" {
		t.Fatalf("%q", got)
	}
}

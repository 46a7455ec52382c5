package testrig

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestKubeBinHonoursEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kubeadm")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TFSITE_KUBE_BIN", dir)
	if got := KubeBin(t, "v0.0.0", "kubeadm"); got != p {
		t.Fatalf("KubeBin = %s, want %s", got, p)
	}
}

// TestStartKubeAPI checks the rig's API server: token auth on, anonymous
// requests refused, the admin token accepted.
func TestStartKubeAPI(t *testing.T) {
	// The version must match hack/build-kube.sh (agent/kube checks that pin).
	bin := KubeBin(t, "v1.37.2", "kube-apiserver")
	KubeBin(t, "v1.37.2", "etcd")
	api := StartKubeAPI(t, filepath.Dir(bin))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/api/v1/namespaces/kube-system", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(""); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Fatalf("anonymous request got %d", code)
	}
	if code := get("wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong token got %d", code)
	}
	if code := get(api.Token); code != http.StatusOK {
		t.Fatalf("admin token got %d", code)
	}
}

package testrig

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// KubeBinDir returns the directory holding the Kubernetes binaries that
// hack/build-kube.sh built for version: $TFSITE_KUBE_BIN if set, else
// ${TFSITE_KUBE_CACHE:-/var/cache/tfsite/kube}/<version>/bin. When name is
// missing there the test skips, or fails in CI (where `make test` builds them
// first through the kube-bins target).
func KubeBin(t testing.TB, version, name string) string {
	t.Helper()
	dir := os.Getenv("TFSITE_KUBE_BIN")
	if dir == "" {
		cache := os.Getenv("TFSITE_KUBE_CACHE")
		if cache == "" {
			cache = "/var/cache/tfsite/kube"
		}
		dir = filepath.Join(cache, version, "bin")
	}
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
		return p
	}
	if InCI() {
		t.Fatalf("%s not found: CI must run hack/build-kube.sh (make kube-bins) before the tests", p)
	}
	t.Skipf("skipping: %s not built; run hack/build-kube.sh (or make kube-bins), ~10 min once", p)
	return ""
}

// KubeAPI is a real etcd + kube-apiserver pair on loopback, owned by one test.
type KubeAPI struct {
	URL    string
	Token  string // bearer token of a system:masters user
	Config *rest.Config
	Dir    string
}

// freePort asks the kernel for an unused loopback TCP port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs argv with output into logPath and kills it at cleanup. The
// returned channel closes when the process exits.
func startProcess(t testing.TB, logPath string, argv ...string) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", argv[0], err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
			logf.Close()
		})
	})
	return exited
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// StartKubeAPI starts etcd and kube-apiserver (token auth, RBAC, service-account
// keys made here with Go's crypto) from binDir on loopback and waits until
// /readyz answers ok. Everything stops and is removed at cleanup.
func StartKubeAPI(t testing.TB, binDir string) *KubeAPI {
	t.Helper()
	dir := t.TempDir()
	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	etcdExited := startProcess(t, filepath.Join(dir, "etcd.log"), filepath.Join(binDir, "etcd"),
		"--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL, "--unsafe-no-fsync", "--log-level", "warn")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	saKey, saPub := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	writePEM(t, saKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	writePEM(t, saPub, "PUBLIC KEY", pub)
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+`,tfsite-test,uid-1,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	apiLog := filepath.Join(dir, "kube-apiserver.log")
	apiExited := startProcess(t, apiLog, filepath.Join(binDir, "kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort), "--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.0.0.0/24",
		// Loopback cannot be advertised as the kubernetes Service endpoint.
		"--endpoint-reconciler-type", "none",
		"--allow-privileged=true", // as kubeadm runs it; TF needs privileged pods
		"--enable-priority-and-fairness=false", "--profiling=false")

	url := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // self-signed loopback cert made by kube-apiserver
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		fail := ""
		select {
		case <-ctx.Done():
			fail = "not ready within 90s"
		case <-apiExited:
			fail = "kube-apiserver exited"
		case <-etcdExited:
			fail = "etcd exited"
		case <-time.After(250 * time.Millisecond):
		}
		if fail != "" {
			t.Fatalf("%s:\n--- kube-apiserver.log\n%s\n--- etcd.log\n%s", fail, logTail(apiLog), logTail(filepath.Join(dir, "etcd.log")))
		}
	}
	return &KubeAPI{
		URL:   url,
		Token: token,
		Dir:   dir,
		Config: &rest.Config{
			Host:            url,
			BearerToken:     token,
			TLSClientConfig: rest.TLSClientConfig{Insecure: true},
			QPS:             100,
			Burst:           200,
		},
	}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(fmt.Errorf("writing %s: %w", path, err))
	}
}

package bringup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

// startContainerd runs a real containerd (CRI plugin off) on a socket of its
// own and points ctr at it; it stops with the test.
func startContainerd(t *testing.T) {
	t.Helper()
	testrig.RequireRoot(t)
	testrig.RequireCommand(t, "containerd", "containerd")
	testrig.RequireCommand(t, "ctr", "containerd")
	dir := t.TempDir()
	sock := filepath.Join(dir, "c.sock")
	cfg := filepath.Join(dir, "config.toml")
	toml := "version = 2\nroot = \"" + dir + "/root\"\nstate = \"" + dir + "/state\"\n" +
		"disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"" + sock + "\"\n" +
		"[ttrpc]\n  address = \"" + sock + ".ttrpc\"\n"
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "containerd", "--config", cfg)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	t.Setenv("CONTAINERD_ADDRESS", sock)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if exec.Command("ctr", "version").Run() == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer on %s:\n%s", sock, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// imagesArchive builds an archive of tiny images with the project's own
// hack/kubeimages (the tool that builds the appliance's), and its list.
func imagesArchive(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	tool := filepath.Join(dir, "kubeimages")
	build := exec.Command("go", "build", "-o", tool, ".")
	build.Dir = filepath.Join("..", "..", "hack", "kubeimages")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hack/kubeimages: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "tiny"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "kube-images.tar")
	args := []string{"--bin", bin, "--out", archive}
	for _, n := range names {
		args = append(args, n+"=tiny")
	}
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("kubeimages: %v\n%s", err, out)
	}
	if err := os.WriteFile(archive+".list", []byte("# images in kube-images.tar\n"+strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return archive
}

// TestImportImagesIntoRealContainerd: the images step imports the archive
// into a real containerd's k8s.io namespace, finds them there on the next
// pass (a reboot) without importing again, imports again when one was removed,
// and names what is missing when the archive lacks what its list promises.
func TestImportImagesIntoRealContainerd(t *testing.T) {
	startContainerd(t)
	names := []string{"registry.k8s.io/pause:3.10.2", "registry.k8s.io/etcd:3.7.0-0"}
	archive := imagesArchive(t, names...)
	cfg := Default()
	cfg.StateDir = t.TempDir()
	cfg.Images = archive
	b, err := New(cfg, &source{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct{ what, want string }{
		{"first import", "imported 2 control-plane images from " + archive},
		{"after a reboot", "all 2 control-plane images present in containerd"},
	}
	for _, s := range steps {
		did, err := b.importImages(ctx)
		if err != nil || did != s.want {
			t.Fatalf("%s: %q, %v; want %q", s.what, did, err, s.want)
		}
	}
	if out, err := exec.Command("ctr", "-n", "k8s.io", "images", "rm", names[1]).CombinedOutput(); err != nil {
		t.Fatalf("ctr images rm: %v: %s", err, out)
	}
	if did, err := b.importImages(ctx); err != nil || did != "imported 1 control-plane images from "+archive {
		t.Fatalf("one image removed: %q, %v", did, err)
	}

	// The list names an image the archive does not hold.
	if err := os.WriteFile(archive+".list", []byte(strings.Join(append(names, "registry.k8s.io/kube-proxy:v1.37.2"), "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.importImages(ctx); err == nil || !strings.Contains(err.Error(), "containerd still lacks registry.k8s.io/kube-proxy:v1.37.2") {
		t.Fatalf("archive short of its list: %v", err)
	}
}

// TestImagesListLimitsAndComments: the list beside the archive is bounded,
// comments and blank lines are skipped, an empty one is an error.
func TestImagesListLimitsAndComments(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.list")
	if err := os.WriteFile(p, []byte("# header\n\n a:1 \nb:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readImageList(p); err != nil || strings.Join(got, ",") != "a:1,b:2" {
		t.Fatalf("readImageList = %q, %v", got, err)
	}
	if err := os.WriteFile(p, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readImageList(p); err == nil || !strings.Contains(err.Error(), "names no image") {
		t.Fatalf("empty list: %v", err)
	}
	if err := os.WriteFile(p, []byte(strings.Repeat("a", maxImageList+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readImageList(p); err == nil {
		t.Fatal("oversized list accepted")
	}
}

func TestKubeadmErrorSkipsTheStackTraceHint(t *testing.T) {
	out := "[init] Using Kubernetes version: v1.37.2\n" +
		"error: error execution phase wait-control-plane: could not initialize a Kubernetes cluster\n" +
		"To see the stack trace of this error execute with --v=5 or higher\n\n"
	if got := kubeadmError(out); got != "error: error execution phase wait-control-plane: could not initialize a Kubernetes cluster" {
		t.Fatalf("kubeadmError = %q", got)
	}
	if got := kubeadmError("\n"); got != "" {
		t.Fatalf("empty output: %q", got)
	}
}

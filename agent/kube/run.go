package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
)

// ErrKubeadmFailed is returned (wrapped) when kubeadm exits non-zero.
var ErrKubeadmFailed = errors.New("kubeadm failed")

// Kubeadm runs the real kubeadm binary.
type Kubeadm struct {
	// Path is the kubeadm binary; default "kubeadm" from PATH.
	Path string
	// Env, when set, replaces the environment (tests point KUBECONFIG etc. elsewhere).
	Env []string
	Log *slog.Logger
}

func (k Kubeadm) path() string {
	if k.Path == "" {
		return "kubeadm"
	}
	return k.Path
}

// run executes kubeadm with args and returns its combined output.
func (k Kubeadm) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.path(), args...)
	if k.Env != nil {
		cmd.Env = k.Env
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if k.Log != nil {
		k.Log.Info("running kubeadm", "args", strings.Join(args, " "))
	}
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubeadm %s: %w: %w\n%s", strings.Join(args, " "), ErrKubeadmFailed, err, tail(out.String(), 40))
	}
	return out.String(), nil
}

// Version returns kubeadm's version ("v1.37.2").
func (k Kubeadm) Version(ctx context.Context) (string, error) {
	out, err := k.run(ctx, "version", "-o", "short")
	return strings.TrimSpace(out), err
}

// Validate runs `kubeadm config validate --config path`.
func (k Kubeadm) Validate(ctx context.Context, path string) error {
	_, err := k.run(ctx, "config", "validate", "--config", path)
	return err
}

// Init runs `kubeadm init --config path` plus extra flags (e.g. "--dry-run",
// "--ignore-preflight-errors=all", "--upload-certs") and returns kubeadm's output.
func (k Kubeadm) Init(ctx context.Context, path string, extra ...string) (string, error) {
	return k.run(ctx, append([]string{"init", "--config", path}, extra...)...)
}

// Reset runs `kubeadm reset -f`: it undoes what a failed init left (static
// pods, certificates, etcd's data, kubelet's config) so init can run again.
func (k Kubeadm) Reset(ctx context.Context) (string, error) {
	return k.run(ctx, "reset", "-f")
}

// Join runs `kubeadm join --config path` plus extra flags.
func (k Kubeadm) Join(ctx context.Context, path string, extra ...string) (string, error) {
	return k.run(ctx, append([]string{"join", "--config", path}, extra...)...)
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

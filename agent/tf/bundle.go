package tf

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/internal/atomicfile"
)

// Bundle file names written by WriteBundle.
const (
	KubeadmFile  = "kubeadm.yaml"
	ManifestFile = "tf.yaml"
)

// WriteBundle renders the site's kubeadm configuration and TF manifest into dir
// (created if missing), each written atomically. Nothing else on the host changes.
func WriteBundle(dir string, p kube.SiteParams) ([]string, error) {
	kubeadm, err := kube.RenderInit(p)
	if err != nil {
		return nil, err
	}
	manifest, err := Render(p)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}
	var written []string
	for _, f := range []struct {
		name string
		data []byte
	}{{KubeadmFile, kubeadm}, {ManifestFile, manifest}} { // fixed order: callers print the paths
		path := filepath.Join(dir, f.name)
		// kubeadm.yaml may hold the bootstrap token: owner-only.
		if err := atomicfile.Write(path, f.data, 0o600); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

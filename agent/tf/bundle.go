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
// (created if missing) and writes them as a set (atomicfile.WriteSet): a
// failure, a full disk included, leaves both old files as they were, never a
// new kubeadm.yaml next to an old tf.yaml. Nothing else on the host changes.
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
	// Fixed order: callers print the paths. kubeadm.yaml may hold the
	// bootstrap token: owner-only.
	set := []atomicfile.File{
		{Path: filepath.Join(dir, KubeadmFile), Data: kubeadm, Perm: 0o600},
		{Path: filepath.Join(dir, ManifestFile), Data: manifest, Perm: 0o600},
	}
	if err := atomicfile.WriteSet(set...); err != nil {
		return nil, fmt.Errorf("writing %s and %s: %w", KubeadmFile, ManifestFile, err)
	}
	return []string{set[0].Path, set[1].Path}, nil
}

package alloc

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/flynn/noise"

	"github.com/tfsite/tfsite/agent/site"
)

// keyFile (in Config.StateDir) holds this site's static Noise private key
// (Curve25519, base64). Voters bind the public half to the site at its first
// allocation and afterwards accept the site's requests only over a channel
// authenticated by it (docs/allocation.md, "Trust model").
const keyFile = "site.key"

// identity is who this agent is on the allocator channel: its site name and
// static key pair.
type identity struct {
	site string
	key  noise.DHKey
}

// loadOrCreateIdentity reads this site's static key from stateDir, creating
// it (mode 0600, written atomically) on first start.
func loadOrCreateIdentity(stateDir, site string) (identity, error) {
	p := filepath.Join(stateDir, keyFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		k, err := decodeStaticKey(b)
		if err != nil {
			return identity{}, fmt.Errorf("%s: %w (it is this site's identity: restore it from a backup; deleting it makes voters refuse the site until its allocation is released)", p, err)
		}
		return identity{site: site, key: k}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return identity{}, fmt.Errorf("reading site key: %w", err)
	}
	k, err := cipherSuite.GenerateKeypair(rand.Reader)
	if err != nil {
		return identity{}, fmt.Errorf("generating site key: %w", err)
	}
	if err := writeFileAtomic(p, []byte(base64.StdEncoding.EncodeToString(k.Private)+"\n")); err != nil {
		return identity{}, fmt.Errorf("writing site key: %w", err)
	}
	return identity{site: site, key: k}, nil
}

// SiteKey returns this site's static public key from stateDir (the
// allocator's, Config.StateDir), creating the key pair on first start, so
// an agent can publish it in gossip before the allocator starts.
func SiteKey(stateDir string) ([]byte, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state dir: %w", err)
	}
	id, err := loadOrCreateIdentity(stateDir, "")
	return id.key.Public, err
}

// decodeStaticKey parses a key file: one base64 Curve25519 private key.
func decodeStaticKey(b []byte) (noise.DHKey, error) {
	priv, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(priv) != site.KeyLen {
		return noise.DHKey{}, fmt.Errorf("not a base64 Curve25519 private key of %d bytes", site.KeyLen)
	}
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return noise.DHKey{}, fmt.Errorf("not a Curve25519 private key: %w", err)
	}
	return noise.DHKey{Private: priv, Public: k.PublicKey().Bytes()}, nil
}

// sameKey reports whether a and b are the same non-empty public key.
func sameKey(a, b []byte) bool { return len(a) == site.KeyLen && bytes.Equal(a, b) }

// shortKey is a key's first 8 base64 characters, for messages and logs.
func shortKey(k []byte) string {
	if len(k) == 0 {
		return "none"
	}
	s := base64.StdEncoding.EncodeToString(k)
	return s[:min(8, len(s))]
}

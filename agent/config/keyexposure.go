package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
)

// ExampleKeys are the gossip keys printed in the docs (docs/config.md): every
// reader of the docs holds them, so they protect nothing.
var ExampleKeys = []string{"c2VjcmV0c2VjcmV0MTYxNg=="}

// KeyExposure lists, one line each naming the field and the fix, why the
// configured gossip key is not a secret: a key file that group or others
// may open, or a key from the docs. Validate refuses them unless Insecure
// (lab mode); then the agent logs them as warnings at start.
func (c Config) KeyExposure() []string {
	keys, err := c.GossipKeys()
	if err != nil || keys == nil {
		return nil // Validate reports a bad key; no key is warned about apart
	}
	var out []string
	field := "gossip.key"
	if c.Gossip.KeyFile != "" {
		field = "gossip.keyFile"
		if fi, err := os.Stat(c.Gossip.KeyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			out = append(out, fmt.Sprintf("%s: %s is open to group or others (mode %04o): anyone on the host can read the fleet's key; chmod 600 %[2]s",
				field, c.Gossip.KeyFile, fi.Mode().Perm()))
		}
	}
	for i, k := range keys {
		for _, ex := range ExampleKeys {
			if b, _ := base64.StdEncoding.DecodeString(ex); bytes.Equal(k, b) {
				out = append(out, fmt.Sprintf("%s: key %d is the example key of docs/config.md, which everyone holds; generate one with: head -c32 /dev/urandom | base64",
					field, i+1))
			}
		}
	}
	return out
}

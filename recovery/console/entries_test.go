package console

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
)

func TestParseAuthorizedKey(t *testing.T) {
	if _, err := ParseAuthorizedKey(ed25519Key()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "ssh-ed25519", "ssh-dss AAAA", "ssh-ed25519 !!!", "ssh-rsa " + strings.Fields(ed25519Key())[1]} {
		if _, err := ParseAuthorizedKey(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseAuthorizedKey(f *testing.F) {
	f.Add(ed25519Key())
	f.Add("ssh-rsa AAAA")
	f.Fuzz(func(t *testing.T, line string) {
		k, err := ParseAuthorizedKey(line)
		if err == nil && strings.ContainsAny(k, "\n\r") {
			t.Fatalf("accepted a key with a line break: %q", k)
		}
	})
}

func ed25519Key() string {
	var blob []byte
	blob = binary.BigEndian.AppendUint32(blob, 11)
	blob = append(blob, "ssh-ed25519"...)
	blob = binary.BigEndian.AppendUint32(blob, 32)
	blob = append(blob, make([]byte, 32)...)
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " operator@laptop"
}

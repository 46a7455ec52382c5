package console

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
)

func TestPasswordHashRoundTrip(t *testing.T) {
	h, err := HashPassword("correct-horse", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "correct-horse") || !strings.HasPrefix(h, "pbkdf2-sha256$1000$") {
		t.Fatalf("hash %q", h)
	}
	for pw, want := range map[string]bool{"correct-horse": true, "correct-hors": false, "": false} {
		if ok, err := CheckPassword(h, pw); ok != want || err != nil {
			t.Errorf("CheckPassword(%q) = %v %v, want %v", pw, ok, err, want)
		}
	}
	h2, _ := HashPassword("correct-horse", 1000)
	if h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "md5$x", "pbkdf2-sha256$0$AA$AA", "pbkdf2-sha256$1000$!!$AA"} {
		if _, err := CheckPassword(bad, "x"); err == nil {
			t.Errorf("CheckPassword accepted stored %q", bad)
		}
	}
}

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

func FuzzCheckPassword(f *testing.F) {
	h, _ := HashPassword("seed-password", 1000)
	f.Add(h, "seed-password")
	f.Add("pbkdf2-sha256$1$AA$AA", "")
	f.Fuzz(func(t *testing.T, stored, pw string) {
		if strings.Count(stored, "$") == 3 {
			if parts := strings.Split(stored, "$"); len(parts[1]) > 4 {
				return // keep iteration counts small while fuzzing
			}
		}
		_, _ = CheckPassword(stored, pw)
	})
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

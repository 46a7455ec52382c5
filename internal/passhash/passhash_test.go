package passhash

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestNewVerifyRoundTrip(t *testing.T) {
	s, err := New("correct-horse", Recommended)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(s, "correct-horse") {
		t.Fatalf("hash %q", s)
	}
	h, err := Parse(s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if h.String() != s {
		t.Fatalf("re-encoded %q, want %q", h.String(), s)
	}
	for pw, want := range map[string]bool{"correct-horse": true, "correct-hors": false, "correct-horse ": false, "": false} {
		if got := h.Verify(pw); got != want {
			t.Errorf("Verify(%q) = %v, want %v", pw, got, want)
		}
	}
	if h.NeedsUpgrade(Recommended) {
		t.Error("a fresh hash at the recommended parameters needs an upgrade")
	}
	s2, _ := New("correct-horse", Recommended)
	if s2 == s {
		t.Fatal("two hashes of one password are equal: no salt")
	}
}

// TestMatchesReferenceArgon2id checks the PHC string against argon2id itself
// (x/crypto), so the parameters written are the ones used.
func TestMatchesReferenceArgon2id(t *testing.T) {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("pw-12345"), salt, 3, 8*1024*2, 2, 32)
	enc := base64.RawStdEncoding
	s := fmt.Sprintf("$argon2id$v=19$m=16384,t=3,p=2$%s$%s", enc.EncodeToString(salt), enc.EncodeToString(key))
	h, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Verify("pw-12345") || h.Verify("pw-12346") {
		t.Fatal("reference hash not verified")
	}
	if !h.NeedsUpgrade(Params{Memory: 19456, Time: 2, Threads: 1}) {
		t.Error("m=16384 is cheaper than the recommended 19456 but needs no upgrade")
	}
}

func TestLegacyIsReadAndNeedsUpgrade(t *testing.T) {
	s := legacy(t, "old-password", 1000)
	h, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if h.Scheme != Legacy || !h.Verify("old-password") || h.Verify("old-passwore") {
		t.Fatalf("legacy hash %+v not verified", h)
	}
	if !h.NeedsUpgrade(Recommended) {
		t.Fatal("a PBKDF2 hash needs no upgrade")
	}
	if h.String() != s {
		t.Fatalf("re-encoded %q, want %q", h.String(), s)
	}
}

func TestParseRefusesWithOneLine(t *testing.T) {
	enc := base64.RawStdEncoding
	salt, key := enc.EncodeToString(make([]byte, 16)), enc.EncodeToString(make([]byte, 32))
	ok := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	if _, err := Parse(ok("m=19456,t=2,p=1")); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"empty":         "",
		"md5crypt":      "$1$abc$def",
		"argon2i":       "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"version 16":    "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
		"order":         ok("t=2,m=19456,p=1"),
		"missing p":     ok("m=19456,t=2"),
		"memory big":    ok("m=4194304,t=1,p=1"),
		"memory small":  ok("m=4096,t=10,p=1"),
		"weak":          ok("m=7168,t=4,p=1"),
		"time 0":        ok("m=19456,t=0,p=1"),
		"time big":      ok("m=19456,t=11,p=1"),
		"lanes 0":       ok("m=19456,t=2,p=0"),
		"lanes wrap":    ok("m=19456,t=2,p=257"),
		"negative":      ok("m=-1,t=2,p=1"),
		"padded salt":   "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key,
		"short salt":    "$argon2id$v=19$m=19456,t=2,p=1$AAAA$" + key,
		"short key":     "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$AAAA",
		"extra field":   ok("m=19456,t=2,p=1") + "$x",
		"too long":      ok("m=19456,t=2,p=1") + strings.Repeat(" x", 300),
		"legacy 0 iter": "pbkdf2-sha256$0$" + salt + "$" + key,
		"legacy huge":   "pbkdf2-sha256$99999999$" + salt + "$" + key,
		"legacy b64":    "pbkdf2-sha256$1000$!!$" + key,
		"legacy fields": "pbkdf2-sha256$1000$" + salt,
		"newline":       ok("m=19456,t=2,p=1\n"),
	} {
		_, err := Parse(bad)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Parse(%.40q) = %v, want ErrInvalid", name, bad, err)
			continue
		}
		if strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
}

func TestNewRefusesWeakParams(t *testing.T) {
	if _, err := New("pw", Params{Memory: 1024, Time: 1, Threads: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("New with 1 MiB: %v", err)
	}
}

// FuzzParse: any string parses or fails with one line; what parses
// re-encodes to a string that parses to the same hash, and checking a
// password against it never panics.
func FuzzParse(f *testing.F) {
	s, _ := New("seed-password", Recommended)
	f.Add(s, "seed-password")
	f.Add("pbkdf2-sha256$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("$argon2id$v=19$m=7168,t=5,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "x")
	f.Fuzz(func(t *testing.T, stored, pw string) {
		h, err := Parse(stored)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q", err)
			}
			return
		}
		h2, err := Parse(h.String())
		if err != nil || h2.String() != h.String() {
			t.Fatalf("%q re-encoded as %q: %v", stored, h.String(), err)
		}
		// Keep each check cheap while fuzzing.
		if h.Scheme == Legacy && h.Iterations <= 2000 || h.Scheme == Argon2id && h.Params.Memory*h.Params.Time <= 64*1024 {
			_ = h.Verify(pw)
		}
	})
}

// legacy writes a hash the way releases before argon2id did.
func legacy(t testing.TB, pw string, iter int) string {
	salt := []byte("sixteen byte slt")
	key, err := pbkdf2.Key(sha256.New, pw, salt, iter, 32)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", iter, enc.EncodeToString(salt), enc.EncodeToString(key))
}

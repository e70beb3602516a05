package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DevSecretFile is the name of the development secret in the data folder.
const DevSecretFile = "dev-auth-secret"

// DevSecret returns the HS256 secret of development sign-in: 32 random
// bytes, hex-encoded, kept in <dataDir>/dev-auth-secret (mode 0600) so dev
// tokens survive a restart. The file is created when missing; dataDir must
// exist.
func DevSecret(dataDir string) (string, error) {
	path := filepath.Join(dataDir, DevSecretFile)
	secret, err := readDevSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: dev secret: %w", err)
	}
	secret = hex.EncodeToString(b)
	switch err := writeNew(path, []byte(secret+"\n")); {
	case errors.Is(err, fs.ErrExist):
		// Another process created it first; use theirs.
		return readDevSecret(path)
	case err != nil:
		return "", fmt.Errorf("auth: dev secret: %w", err)
	}
	return secret, nil
}

func readDevSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("auth: dev secret: %w", err)
	}
	secret := strings.TrimSpace(string(data))
	if b, err := hex.DecodeString(secret); err != nil || len(b) != 32 {
		return "", fmt.Errorf("auth: dev secret: %s is not 64 hex characters; delete it to get a new one (dev tokens will be invalidated)", path)
	}
	return secret, nil
}

// writeNew writes data to path, which must not exist, so that the file
// appears complete or not at all: a crash never leaves a half-written
// secret behind.
func writeNew(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+DevSecretFile+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link, unlike Rename, refuses to replace a file another process wrote
	// in the meantime.
	return os.Link(tmp.Name(), path)
}

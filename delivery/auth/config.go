package auth

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// MinSecretLen is the shortest HS256 secret accepted, in bytes: HMAC-SHA256
// is only as strong as its key, and RFC 7518 asks for at least 256 bits.
const MinSecretLen = 32

// Config says how tokens are verified. At least one of Secret and
// PublicKeys must be set by the time Open is called; Validate does not
// insist, because in embedded mode the caller may fill Secret from
// DevSecret after the flags are parsed.
type Config struct {
	// Secret is the HS256 shared secret; empty refuses HS256 tokens.
	Secret string
	// PublicKeys are paths to PEM files holding RSA (RS256) or Ed25519
	// (EdDSA) public keys, or certificates carrying them.
	PublicKeys []string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be one of the token's aud.
	Audience string
}

// RegisterFlags registers the settings on fs. -auth.public-keys takes
// comma-separated paths and may be repeated.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Secret, "auth-secret", "", fmt.Sprintf("HS256 secret that signs and verifies tokens (at least %d bytes)", MinSecretLen))
	fs.Func("auth.public-keys", "comma-separated PEM files with RSA (RS256) or Ed25519 (EdDSA) public keys that verify tokens", func(s string) error {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.PublicKeys = append(c.PublicKeys, p)
			}
		}
		return nil
	})
	fs.StringVar(&c.Issuer, "auth.issuer", "", "required iss of tokens (default: not checked)")
	fs.StringVar(&c.Audience, "auth.audience", "", "required aud of tokens (default: not checked)")
}

// Validate reports a configuration that cannot be right. It reads no files:
// Open reports unreadable keys.
func (c Config) Validate() error {
	if c.Secret != "" && len(c.Secret) < MinSecretLen {
		return fmt.Errorf("auth: config: secret must be at least %d bytes", MinSecretLen)
	}
	for _, p := range c.PublicKeys {
		if strings.TrimSpace(p) == "" {
			return errors.New("auth: config: empty public key path")
		}
	}
	if c.Issuer != strings.TrimSpace(c.Issuer) || c.Audience != strings.TrimSpace(c.Audience) {
		return errors.New("auth: config: issuer and audience must not have surrounding spaces")
	}
	return nil
}

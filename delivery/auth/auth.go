// Package auth verifies the bearer tokens of Parley's API: JWTs signed with
// HS256 (a shared secret), RS256 or EdDSA (configured public keys). It
// refuses `alg: none` and algorithm switching, requires `exp`, and issues
// the HS256 tokens of development sign-in.
package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/chat"
)

// Config says how tokens are verified.
type Config struct {
	Secret     string
	PublicKeys []string
	Issuer     string
	Audience   string
}

// RegisterFlags registers auth flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Secret, "auth-secret", "", "HS256 shared secret for tokens (at least 32 bytes)")
	fs.Func("auth.public-keys", "comma-separated PEM files of RSA (RS256) or Ed25519 (EdDSA) public keys", func(s string) error {
		c.PublicKeys = nil
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.PublicKeys = append(c.PublicKeys, p)
			}
		}
		return nil
	})
	fs.StringVar(&c.Issuer, "auth.issuer", "", "required token issuer (iss), if set")
	fs.StringVar(&c.Audience, "auth.audience", "", "required token audience (aud), if set")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Secret != "" && len(c.Secret) < 32 {
		return errors.New("--auth-secret must be at least 32 bytes")
	}
	if c.Secret == "" && len(c.PublicKeys) == 0 {
		return errors.New("no token verification configured: set --auth-secret or --auth.public-keys")
	}
	return nil
}

// Verifier checks tokens.
type Verifier struct {
	cfg    Config
	secret []byte
	rsa    []*rsa.PublicKey
	ed     []ed25519.PublicKey
	leeway time.Duration
}

// Open loads the configured keys.
func Open(cfg Config) (*Verifier, error) {
	v := &Verifier{cfg: cfg, leeway: 30 * time.Second}
	if cfg.Secret != "" {
		v.secret = []byte(cfg.Secret)
	}
	for _, path := range cfg.PublicKeys {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth: read public key: %w", err)
		}
		block, _ := pem.Decode(raw)
		if block == nil {
			return nil, fmt.Errorf("auth: %s holds no PEM block", path)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			if k, err2 := x509.ParsePKCS1PublicKey(block.Bytes); err2 == nil {
				key = k
			} else {
				return nil, fmt.Errorf("auth: parse public key %s: %w", path, err)
			}
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			v.rsa = append(v.rsa, k)
		case ed25519.PublicKey:
			v.ed = append(v.ed, k)
		default:
			return nil, fmt.Errorf("auth: %s: unsupported key type %T (want RSA or Ed25519)", path, key)
		}
	}
	return v, nil
}

type claims struct {
	Name string `json:"name,omitempty"`
	jwt.RegisteredClaims
}

func unauthorized(msg string) error {
	return &chat.Error{Code: chat.CodeUnauthorized, Message: msg}
}

// Verify checks token and returns its user and expiry.
func (v *Verifier) Verify(token string) (chat.User, time.Time, error) {
	var methods []string
	if v.secret != nil {
		methods = append(methods, "HS256")
	}
	if len(v.rsa) > 0 {
		methods = append(methods, "RS256")
	}
	if len(v.ed) > 0 {
		methods = append(methods, "EdDSA")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.leeway),
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	if v.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.cfg.Audience))
	}
	var c claims
	keyFunc := func(t *jwt.Token) (any, error) {
		// The key is chosen by the algorithm the parser already admitted,
		// and only keys of that algorithm's type are offered, so an RSA
		// public key can never serve as an HMAC secret.
		switch t.Method.Alg() {
		case "HS256":
			return v.secret, nil
		case "RS256":
			set := jwt.VerificationKeySet{}
			for _, k := range v.rsa {
				set.Keys = append(set.Keys, k)
			}
			return set, nil
		case "EdDSA":
			set := jwt.VerificationKeySet{}
			for _, k := range v.ed {
				set.Keys = append(set.Keys, crypto.PublicKey(k))
			}
			return set, nil
		}
		return nil, errors.New("algorithm not accepted")
	}
	_, err := jwt.NewParser(opts...).ParseWithClaims(token, &c, keyFunc)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return chat.User{}, time.Time{}, unauthorized("token expired")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return chat.User{}, time.Time{}, unauthorized("token lacks a required claim (exp)")
	case err != nil:
		return chat.User{}, time.Time{}, unauthorized("invalid token")
	}
	if !ValidUserID(c.Subject) {
		return chat.User{}, time.Time{}, unauthorized("token subject is not a valid user id")
	}
	name := c.Name
	if name == "" || len(name) > 128 || !utf8.ValidString(name) {
		name = c.Subject
	}
	return chat.User{ID: c.Subject, Name: name}, c.ExpiresAt.Time, nil
}

// Issue returns an HS256 token for user valid for ttl (dev sign-in).
func (v *Verifier) Issue(user chat.User, ttl time.Duration) (string, error) {
	if v.secret == nil {
		return "", &chat.Error{Code: chat.CodeUnavailable, Message: "no secret to sign tokens with"}
	}
	now := time.Now()
	c := claims{Name: user.Name, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   user.ID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		Issuer:    v.cfg.Issuer,
	}}
	if v.cfg.Audience != "" {
		c.Audience = jwt.ClaimStrings{v.cfg.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(v.secret)
}

// FromRequest returns the bearer token of r: the Authorization header, or,
// when allowQuery (the realtime endpoints), the access_token parameter.
func FromRequest(r *http.Request, allowQuery bool) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return ""
	}
	if allowQuery {
		return r.URL.Query().Get("access_token")
	}
	return ""
}

// ValidUserID reports whether s is 1–64 chars of [A-Za-z0-9._@-].
func ValidUserID(s string) bool { return chat.ValidUserID(s) }

// DevSecret returns the development signing secret kept in dataDir,
// creating it on first use, so dev tokens survive restarts.
func DevSecret(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "dev-auth-secret")
	if b, err := os.ReadFile(path); err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) >= 32 {
			return s, nil
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	s := hex.EncodeToString(raw[:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
		return "", fmt.Errorf("auth: write dev secret: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("auth: write dev secret: %w", err)
	}
	return s, nil
}

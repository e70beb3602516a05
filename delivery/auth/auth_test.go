package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/chat"
)

const secret = "0123456789abcdef0123456789abcdef"

func writePEM(t *testing.T, pub any) (string, []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	raw := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, raw
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaPath, rsaPEM := writePEM(t, &rsaKey.PublicKey)
	edPath, _ := writePEM(t, edPub)
	exp := time.Now().Add(time.Hour).Unix()

	hsOnly, _ := Open(Config{Secret: secret})
	keysOnly, err := Open(Config{PublicKeys: []string{rsaPath, edPath}})
	if err != nil {
		t.Fatal(err)
	}
	strict, _ := Open(Config{Secret: secret, Issuer: "parley-test", Audience: "chat"})

	cases := []struct {
		name string
		v    *Verifier
		tok  string
		ok   bool
	}{
		{"HS256", hsOnly, sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": exp, "name": "Alice"}), true},
		{"expired", hsOnly, sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}), false},
		{"no exp", hsOnly, sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "alice"}), false},
		{"bad signature", hsOnly, sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), jwt.MapClaims{"sub": "alice", "exp": exp}), false},
		{"alg none", hsOnly, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "alice", "exp": exp}), false},
		{"HS256 keyed with the RSA public key", keysOnly, sign(t, jwt.SigningMethodHS256, rsaPEM, jwt.MapClaims{"sub": "alice", "exp": exp}), false},
		{"RS256", keysOnly, sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "alice", "exp": exp}), true},
		{"EdDSA", keysOnly, sign(t, jwt.SigningMethodEdDSA, edPriv, jwt.MapClaims{"sub": "bob", "exp": exp}), true},
		{"RS256 without keys", hsOnly, sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "alice", "exp": exp}), false},
		{"sub too long", hsOnly, sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": strings.Repeat("a", 65), "exp": exp}), false},
		{"sub bad chars", hsOnly, sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "a b", "exp": exp}), false},
		{"sub empty", hsOnly, sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"exp": exp}), false},
		{"issuer mismatch", strict, sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "a", "exp": exp, "iss": "other", "aud": "chat"}), false},
		{"audience mismatch", strict, sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "a", "exp": exp, "iss": "parley-test", "aud": "other"}), false},
		{"issuer and audience", strict, sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "a", "exp": exp, "iss": "parley-test", "aud": "chat"}), true},
		{"garbage", hsOnly, "not.a.token", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, _, err := c.v.Verify(c.tok)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok {
				if err == nil {
					t.Fatalf("accepted as %v", u)
				}
				if chat.ErrorCode(err) != chat.CodeUnauthorized {
					t.Fatalf("code %s, want unauthorized", chat.ErrorCode(err))
				}
				if strings.Contains(err.Error(), c.tok) {
					t.Fatal("the error leaks the token")
				}
			}
		})
	}
}

func TestIssueRoundTrip(t *testing.T) {
	v, _ := Open(Config{Secret: secret})
	tok, err := v.Issue(chat.User{ID: "alice", Name: "Alice"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u, exp, err := v.Verify(tok)
	if err != nil || u.ID != "alice" || u.Name != "Alice" || time.Until(exp) > time.Minute {
		t.Fatalf("%v %v %v", u, exp, err)
	}
	noSecret, _ := Open(Config{})
	if _, err := noSecret.Issue(u, time.Minute); err == nil {
		t.Fatal("issued without a secret")
	}
}

func TestFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/ws?access_token=q", nil)
	if FromRequest(r, false) != "" || FromRequest(r, true) != "q" {
		t.Fatal("query token must only count on realtime endpoints")
	}
	r.Header.Set("Authorization", "bearer h")
	if FromRequest(r, true) != "h" {
		t.Fatal("the header wins, scheme case-insensitive")
	}
	r.Header.Set("Authorization", "Basic xyz")
	if FromRequest(r, true) != "" {
		t.Fatal("non-bearer schemes are not tokens")
	}
}

func TestDevSecretPersists(t *testing.T) {
	dir := t.TempDir()
	a, err := DevSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DevSecret(dir)
	if a != b || len(a) < 32 {
		t.Fatalf("dev secret not stable: %q %q", a, b)
	}
	st, _ := os.Stat(filepath.Join(dir, "dev-auth-secret"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("dev secret mode %v", st.Mode())
	}
}

func TestConfigValidate(t *testing.T) {
	if (&Config{Secret: "short"}).Validate() == nil {
		t.Error("short secret accepted")
	}
	if (&Config{}).Validate() == nil {
		t.Error("no verification accepted")
	}
}

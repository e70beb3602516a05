package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/chat"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

// testKeys are generated once: RSA generation is slow under -race.
type testKeys struct {
	rsa      *rsa.PrivateKey
	rsaPEM   []byte // PKIX "PUBLIC KEY" block of rsa's public half
	rsaPath  string
	ed       ed25519.PrivateKey
	edPath   string
	otherRSA *rsa.PrivateKey // not configured anywhere
	otherEd  ed25519.PrivateKey
	bothPath string // one file holding both public keys
}

func newTestKeys(t *testing.T) *testKeys {
	t.Helper()
	dir := t.TempDir()
	k := &testKeys{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	var edPub ed25519.PublicKey
	if edPub, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.otherEd, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.rsaPEM = pkixPEM(t, &k.rsa.PublicKey)
	edPEM := pkixPEM(t, edPub)
	k.rsaPath = writeFile(t, dir, "rsa.pem", k.rsaPEM)
	k.edPath = writeFile(t, dir, "ed25519.pem", edPEM)
	k.bothPath = writeFile(t, dir, "both.pem", append(slices.Clone(k.rsaPEM), edPEM...))
	return k
}

func pkixPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// valid returns claims that pass, for the test to spoil.
func valid(extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestVerify(t *testing.T) {
	k := newTestKeys(t)
	hsOnly := Config{Secret: testSecret}
	rsaOnly := Config{PublicKeys: []string{k.rsaPath}}
	edOnly := Config{PublicKeys: []string{k.edPath}}
	everything := Config{Secret: testSecret, PublicKeys: []string{k.bothPath}}
	withIss := Config{Secret: testSecret, Issuer: "https://id.example.com", Audience: "parley"}
	past := time.Now().Add(-time.Hour).Unix()
	future := time.Now().Add(time.Hour).Unix()
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), c) }
	none := func(c jwt.MapClaims) string {
		return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, c)
	}

	cases := []struct {
		name     string
		cfg      Config
		token    string
		wantUser chat.User
		wantMsg  string // "" means accepted
	}{
		{"HS256 accepted", hsOnly, hs(valid(nil)), chat.User{ID: "alice", Name: "alice"}, ""},
		{"HS256 with name", hsOnly, hs(valid(jwt.MapClaims{"name": " Alice Liddell "})), chat.User{ID: "alice", Name: "Alice Liddell"}, ""},
		{"name of 128 characters accepted", hsOnly, hs(valid(jwt.MapClaims{"name": strings.Repeat("é", 128)})), chat.User{ID: "alice", Name: strings.Repeat("é", 128)}, ""},
		{"name of 129 characters refused", hsOnly, hs(valid(jwt.MapClaims{"name": strings.Repeat("é", 129)})), chat.User{}, "token name is too long"},
		{"name not a string refused", hsOnly, hs(valid(jwt.MapClaims{"name": 7})), chat.User{}, "invalid token"},
		{"expired refused", hsOnly, hs(valid(jwt.MapClaims{"exp": past})), chat.User{}, "token expired"},
		{"expired within leeway accepted", hsOnly, hs(valid(jwt.MapClaims{"exp": time.Now().Add(-5 * time.Second).Unix()})), chat.User{ID: "alice", Name: "alice"}, ""},
		{"missing exp refused", hsOnly, hs(valid(jwt.MapClaims{"exp": nil})), chat.User{}, "token has no expiry"},
		{"nbf in the future refused", hsOnly, hs(valid(jwt.MapClaims{"nbf": future})), chat.User{}, "token not valid yet"},
		{"iat in the future refused", hsOnly, hs(valid(jwt.MapClaims{"iat": future})), chat.User{}, "token not valid yet"},
		{"bad signature refused", hsOnly, sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-12"), valid(nil)), chat.User{}, "invalid token"},
		{"tampered payload refused", hsOnly, tamper(t, hs(valid(nil))), chat.User{}, "invalid token"},
		{"alg none refused", hsOnly, none(valid(nil)), chat.User{}, "invalid token"},
		{"alg none refused with every key type", everything, none(valid(nil)), chat.User{}, "invalid token"},
		{"HS384 refused", hsOnly, sign(t, jwt.SigningMethodHS384, []byte(testSecret), valid(nil)), chat.User{}, "invalid token"},
		{"HS256 with RSA public key PEM as secret refused (RSA only)", rsaOnly, sign(t, jwt.SigningMethodHS256, k.rsaPEM, valid(nil)), chat.User{}, "invalid token"},
		{"HS256 with RSA public key PEM as secret refused (secret and RSA)", everything, sign(t, jwt.SigningMethodHS256, k.rsaPEM, valid(nil)), chat.User{}, "invalid token"},
		{"HS256 refused when no secret", rsaOnly, hs(valid(nil)), chat.User{}, "invalid token"},
		{"RS256 accepted", rsaOnly, sign(t, jwt.SigningMethodRS256, k.rsa, valid(jwt.MapClaims{"name": "Alice"})), chat.User{ID: "alice", Name: "Alice"}, ""},
		{"RS256 accepted from a file with two keys", everything, sign(t, jwt.SigningMethodRS256, k.rsa, valid(nil)), chat.User{ID: "alice", Name: "alice"}, ""},
		{"RS256 by an unknown key refused", rsaOnly, sign(t, jwt.SigningMethodRS256, k.otherRSA, valid(nil)), chat.User{}, "invalid token"},
		{"RS256 refused when only Ed25519 keys", edOnly, sign(t, jwt.SigningMethodRS256, k.rsa, valid(nil)), chat.User{}, "invalid token"},
		{"PS256 refused", rsaOnly, sign(t, jwt.SigningMethodPS256, k.rsa, valid(nil)), chat.User{}, "invalid token"},
		{"EdDSA accepted", edOnly, sign(t, jwt.SigningMethodEdDSA, k.ed, valid(nil)), chat.User{ID: "alice", Name: "alice"}, ""},
		{"EdDSA accepted from a file with two keys", everything, sign(t, jwt.SigningMethodEdDSA, k.ed, valid(nil)), chat.User{ID: "alice", Name: "alice"}, ""},
		{"EdDSA by an unknown key refused", edOnly, sign(t, jwt.SigningMethodEdDSA, k.otherEd, valid(nil)), chat.User{}, "invalid token"},
		{"EdDSA refused when only RSA keys", rsaOnly, sign(t, jwt.SigningMethodEdDSA, k.ed, valid(nil)), chat.User{}, "invalid token"},
		{"sub of 64 characters accepted", hsOnly, hs(valid(jwt.MapClaims{"sub": strings.Repeat("a", 64)})), chat.User{ID: strings.Repeat("a", 64), Name: strings.Repeat("a", 64)}, ""},
		{"sub with every allowed character accepted", hsOnly, hs(valid(jwt.MapClaims{"sub": "A.z_0@9-x"})), chat.User{ID: "A.z_0@9-x", Name: "A.z_0@9-x"}, ""},
		{"sub too long refused", hsOnly, hs(valid(jwt.MapClaims{"sub": strings.Repeat("a", 65)})), chat.User{}, "token subject is not a valid user id"},
		{"sub with a space refused", hsOnly, hs(valid(jwt.MapClaims{"sub": "alice smith"})), chat.User{}, "token subject is not a valid user id"},
		{"sub with a slash refused", hsOnly, hs(valid(jwt.MapClaims{"sub": "../etc"})), chat.User{}, "token subject is not a valid user id"},
		{"sub with non-ASCII refused", hsOnly, hs(valid(jwt.MapClaims{"sub": "alicé"})), chat.User{}, "token subject is not a valid user id"},
		{"empty sub refused", hsOnly, hs(valid(jwt.MapClaims{"sub": ""})), chat.User{}, "token subject is not a valid user id"},
		{"missing sub refused", hsOnly, hs(valid(jwt.MapClaims{"sub": nil})), chat.User{}, "token subject is not a valid user id"},
		{"issuer and audience match accepted", withIss, hs(valid(jwt.MapClaims{"iss": "https://id.example.com", "aud": []string{"other", "parley"}})), chat.User{ID: "alice", Name: "alice"}, ""},
		{"issuer mismatch refused", withIss, hs(valid(jwt.MapClaims{"iss": "https://evil.example.com", "aud": "parley"})), chat.User{}, "token issuer not accepted"},
		{"issuer missing refused", withIss, hs(valid(jwt.MapClaims{"aud": "parley"})), chat.User{}, "token issuer not accepted"},
		{"audience mismatch refused", withIss, hs(valid(jwt.MapClaims{"iss": "https://id.example.com", "aud": "mail"})), chat.User{}, "token audience not accepted"},
		{"audience missing refused", withIss, hs(valid(jwt.MapClaims{"iss": "https://id.example.com"})), chat.User{}, "token audience not accepted"},
		{"issuer and audience ignored when not configured", hsOnly, hs(valid(jwt.MapClaims{"iss": "anyone", "aud": "anything"})), chat.User{ID: "alice", Name: "alice"}, ""},
		{"empty token refused", hsOnly, "", chat.User{}, "invalid token"},
		{"garbage refused", hsOnly, "not.a.jwt", chat.User{}, "invalid token"},
		{"two segments refused", hsOnly, "eyJhbGciOiJIUzI1NiJ9.e30", chat.User{}, "invalid token"},
		{"oversized token refused", hsOnly, hs(valid(jwt.MapClaims{"pad": strings.Repeat("x", 9000)})), chat.User{}, "invalid token"},
	}
	verifiers := map[string]*Verifier{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := strings.Join(tc.cfg.PublicKeys, ",") + "|" + tc.cfg.Secret + "|" + tc.cfg.Issuer + "|" + tc.cfg.Audience
			v := verifiers[key]
			if v == nil {
				var err error
				if v, err = Open(tc.cfg); err != nil {
					t.Fatal(err)
				}
				verifiers[key] = v
			}
			user, exp, err := v.Verify(tc.token)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if user != tc.wantUser {
					t.Fatalf("user %+v, want %+v", user, tc.wantUser)
				}
				if exp.IsZero() {
					t.Fatal("zero expiry")
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %+v", user)
			}
			var ce *chat.Error
			if !errors.As(err, &ce) || ce.Code != chat.CodeUnauthorized {
				t.Fatalf("error %#v is not an unauthorized *chat.Error", err)
			}
			if ce.Message != tc.wantMsg {
				t.Fatalf("message %q, want %q", ce.Message, tc.wantMsg)
			}
			if tc.token != "" && (strings.Contains(err.Error(), tc.token) || strings.Contains(chat.ErrorMessage(err), tc.token)) {
				t.Fatal("error leaks the token")
			}
			if user != (chat.User{}) {
				t.Fatalf("user %+v returned with an error", user)
			}
		})
	}
}

// tamper swaps the payload of tok for one naming another user.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	forged := sign(t, jwt.SigningMethodHS256, []byte("x"), valid(jwt.MapClaims{"sub": "mallory"}))
	parts[1] = strings.Split(forged, ".")[1]
	return strings.Join(parts, ".")
}

func TestVerifyReturnsTheTokensExpiry(t *testing.T) {
	v := mustOpen(t, Config{Secret: testSecret})
	exp := time.Now().Add(90 * time.Minute).Truncate(time.Second)
	_, got, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(testSecret), valid(jwt.MapClaims{"exp": exp.Unix()})))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(exp) {
		t.Fatalf("exp %v, want %v", got, exp)
	}
}

func TestKeyForMatchesAlgorithmAndKeyType(t *testing.T) {
	k := newTestKeys(t)
	cases := []struct {
		name   string
		cfg    Config
		method jwt.SigningMethod
		want   string // "" no key, else the key's Go type
	}{
		{"HS256 gets the secret", Config{Secret: testSecret}, jwt.SigningMethodHS256, "[]uint8"},
		{"HS256 gets nothing without a secret", Config{PublicKeys: []string{k.bothPath}}, jwt.SigningMethodHS256, ""},
		{"RS256 gets the RSA keys only", Config{Secret: testSecret, PublicKeys: []string{k.bothPath}}, jwt.SigningMethodRS256, "*rsa.PublicKey"},
		{"RS256 gets nothing without RSA keys", Config{Secret: testSecret, PublicKeys: []string{k.edPath}}, jwt.SigningMethodRS256, ""},
		{"EdDSA gets the Ed25519 keys only", Config{Secret: testSecret, PublicKeys: []string{k.bothPath}}, jwt.SigningMethodEdDSA, "ed25519.PublicKey"},
		{"EdDSA gets nothing without Ed25519 keys", Config{PublicKeys: []string{k.rsaPath}}, jwt.SigningMethodEdDSA, ""},
		{"none gets nothing", Config{Secret: testSecret, PublicKeys: []string{k.bothPath}}, jwt.SigningMethodNone, ""},
		{"HS512 gets nothing", Config{Secret: testSecret}, jwt.SigningMethodHS512, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := mustOpen(t, tc.cfg)
			key, err := v.keyFor(&jwt.Token{Method: tc.method, Header: map[string]any{"alg": tc.method.Alg()}})
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got key %T", key)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			switch key := key.(type) {
			case jwt.VerificationKeySet:
				for _, k := range key.Keys {
					types = append(types, typeName(k))
				}
			default:
				types = append(types, typeName(key))
			}
			for _, got := range types {
				if got != tc.want {
					t.Fatalf("key types %v, want only %s", types, tc.want)
				}
			}
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case []byte:
		return "[]uint8"
	case *rsa.PublicKey:
		return "*rsa.PublicKey"
	case ed25519.PublicKey:
		return "ed25519.PublicKey"
	}
	return "other"
}

func mustOpen(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	v, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIssue(t *testing.T) {
	t.Run("round-trips through Verify", func(t *testing.T) {
		v := mustOpen(t, Config{Secret: testSecret})
		tok, err := v.Issue(chat.User{ID: "alice", Name: "Alice"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		user, exp, err := v.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		if user != (chat.User{ID: "alice", Name: "Alice"}) {
			t.Fatalf("user %+v", user)
		}
		if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
			t.Fatalf("expires in %v, want about an hour", d)
		}
	})
	t.Run("carries the configured issuer and audience", func(t *testing.T) {
		v := mustOpen(t, Config{Secret: testSecret, Issuer: "parley-dev", Audience: "parley"})
		tok, err := v.Issue(chat.User{ID: "bob"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		user, _, err := v.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		if user != (chat.User{ID: "bob", Name: "bob"}) {
			t.Fatalf("user %+v", user)
		}
	})
	t.Run("is HS256", func(t *testing.T) {
		v := mustOpen(t, Config{Secret: testSecret})
		tok, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
		parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		if parsed.Method != jwt.SigningMethodHS256 {
			t.Fatalf("alg %s", parsed.Method.Alg())
		}
	})
	k := newTestKeys(t)
	refusals := []struct {
		name string
		cfg  Config
		user chat.User
		ttl  time.Duration
	}{
		{"without a secret", Config{PublicKeys: []string{k.rsaPath}}, chat.User{ID: "alice"}, time.Hour},
		{"an invalid user id", Config{Secret: testSecret}, chat.User{ID: "al ice"}, time.Hour},
		{"an empty user id", Config{Secret: testSecret}, chat.User{}, time.Hour},
		{"a name over 128 characters", Config{Secret: testSecret}, chat.User{ID: "alice", Name: strings.Repeat("n", 129)}, time.Hour},
		{"a non-positive ttl", Config{Secret: testSecret}, chat.User{ID: "alice"}, 0},
	}
	for _, tc := range refusals {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			tok, err := mustOpen(t, tc.cfg).Issue(tc.user, tc.ttl)
			if err == nil {
				t.Fatalf("issued %q", tok)
			}
		})
	}
	t.Run("without a secret returns ErrNoSecret", func(t *testing.T) {
		_, err := mustOpen(t, Config{PublicKeys: []string{k.edPath}}).Issue(chat.User{ID: "alice"}, time.Hour)
		if !errors.Is(err, ErrNoSecret) {
			t.Fatalf("err %v, want ErrNoSecret", err)
		}
	})
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no secret and no key", Config{}},
		{"a short secret", Config{Secret: "too-short"}},
		{"a missing key file", Config{PublicKeys: []string{filepath.Join(dir, "missing.pem")}}},
		{"a file without PEM", Config{PublicKeys: []string{writeFile(t, dir, "plain.txt", []byte("hello"))}}},
		{"a private key", Config{PublicKeys: []string{writeFile(t, dir, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}}},
		{"an RSA key under 2048 bits", Config{PublicKeys: []string{writeFile(t, dir, "small.pem", pkixPEM(t, &small.PublicKey))}}},
		{"a corrupt key", Config{PublicKeys: []string{writeFile(t, dir, "corrupt.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := Open(tc.cfg); err == nil {
				t.Fatalf("opened %+v", v)
			}
		})
	}
}

func TestOpenAcceptsPKCS1RSAKeys(t *testing.T) {
	k := newTestKeys(t)
	path := writeFile(t, t.TempDir(), "rsa1.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}))
	v := mustOpen(t, Config{PublicKeys: []string{path}})
	if _, _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k.rsa, valid(nil))); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	err := fs.Parse([]string{
		"-auth-secret", testSecret,
		"-auth.public-keys", "a.pem, b.pem,",
		"-auth.public-keys", "c.pem",
		"-auth.issuer", "https://id.example.com",
		"-auth.audience", "parley",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Secret: testSecret, PublicKeys: []string{"a.pem", "b.pem", "c.pem"}, Issuer: "https://id.example.com", Audience: "parley"}
	if c.Secret != want.Secret || !slices.Equal(c.PublicKeys, want.PublicKeys) || c.Issuer != want.Issuer || c.Audience != want.Audience {
		t.Fatalf("config %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"empty (secret filled later)", Config{}, true},
		{"32-byte secret", Config{Secret: strings.Repeat("s", 32)}, true},
		{"31-byte secret", Config{Secret: strings.Repeat("s", 31)}, false},
		{"empty key path", Config{PublicKeys: []string{" "}}, false},
		{"issuer with spaces", Config{Issuer: " iss"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestFromRequest(t *testing.T) {
	cases := []struct {
		name       string
		header     string
		query      string
		allowQuery bool
		want       string
	}{
		{"bearer header", "Bearer abc.def.ghi", "", false, "abc.def.ghi"},
		{"scheme is case-insensitive", "bEaReR abc", "", false, "abc"},
		{"extra spaces trimmed", "  Bearer   abc  ", "", false, "abc"},
		{"no header", "", "", false, ""},
		{"other scheme", "Basic YWxpY2U6cHc=", "", false, ""},
		{"scheme without token", "Bearer", "", false, ""},
		{"scheme with only spaces", "Bearer   ", "", false, ""},
		{"scheme glued to token", "Bearerabc", "", false, ""},
		{"query ignored when not allowed", "", "access_token=q", false, ""},
		{"query used when allowed", "", "access_token=q", true, "q"},
		{"header wins over query", "Bearer h", "access_token=q", true, "h"},
		{"query used when header is another scheme", "Basic x", "access_token=q", true, "q"},
		{"other query parameter ignored", "", "token=q", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/ws?"+tc.query, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			if got := FromRequest(r, tc.allowQuery); got != tc.want {
				t.Fatalf("FromRequest = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidUserID(t *testing.T) {
	cases := map[string]bool{
		"alice": true, "a": true, "A.z_0@9-x": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "al ice": false, "a/b": false, "é": false, "a\n": false,
	}
	for s, want := range cases {
		if got := ValidUserID(s); got != want {
			t.Errorf("ValidUserID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestDevSecret(t *testing.T) {
	t.Run("creates a 32-byte hex secret with mode 0600", func(t *testing.T) {
		dir := t.TempDir()
		s, err := DevSecret(dir)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
			t.Fatalf("secret %q is not 32 hex bytes", s)
		}
		fi, err := os.Stat(filepath.Join(dir, "dev-auth-secret"))
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
		}
		if len(s) < MinSecretLen {
			t.Fatal("dev secret shorter than Validate allows")
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("left %d files behind, want 1", len(entries))
		}
	})
	t.Run("survives a restart", func(t *testing.T) {
		dir := t.TempDir()
		first, err := DevSecret(dir)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := mustOpen(t, Config{Secret: first}).Issue(chat.User{ID: "alice"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		second, err := DevSecret(dir)
		if err != nil {
			t.Fatal(err)
		}
		if second != first {
			t.Fatal("secret changed across calls")
		}
		if _, _, err := mustOpen(t, Config{Secret: second}).Verify(tok); err != nil {
			t.Fatalf("token from before the restart refused: %v", err)
		}
	})
	t.Run("differs between data folders", func(t *testing.T) {
		a, _ := DevSecret(t.TempDir())
		b, _ := DevSecret(t.TempDir())
		if a == "" || a == b {
			t.Fatalf("secrets %q and %q", a, b)
		}
	})
	t.Run("refuses a corrupt file", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "dev-auth-secret", []byte("not hex"))
		if s, err := DevSecret(dir); err == nil {
			t.Fatalf("returned %q", s)
		}
	})
	t.Run("fails on a missing folder", func(t *testing.T) {
		if s, err := DevSecret(filepath.Join(t.TempDir(), "missing")); err == nil {
			t.Fatalf("returned %q", s)
		}
	})
	t.Run("concurrent first calls agree", func(t *testing.T) {
		dir := t.TempDir()
		results := make(chan string, 8)
		for range 8 {
			go func() {
				s, err := DevSecret(dir)
				if err != nil {
					t.Error(err)
				}
				results <- s
			}()
		}
		first := <-results
		for range 7 {
			if s := <-results; s != first {
				t.Fatalf("secrets %q and %q", first, s)
			}
		}
	})
}

func TestAnAcceptedTokenIsVerifiedOnce(t *testing.T) {
	v := mustOpen(t, Config{Secret: testSecret})
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), valid(jwt.MapClaims{"name": "Alice"}))
	for range 100 {
		user, _, err := v.Verify(tok)
		if err != nil || user != (chat.User{ID: "alice", Name: "Alice"}) {
			t.Fatalf("Verify = %+v, %v", user, err)
		}
	}
	if n := v.parses.Load(); n != 1 {
		t.Fatalf("%d full verifications of one token, want 1", n)
	}
	// A refused token is never remembered: each attempt is verified.
	bad := tamper(t, tok)
	for range 3 {
		if _, _, err := v.Verify(bad); chat.ErrorCode(err) != chat.CodeUnauthorized {
			t.Fatalf("forged token: %v", err)
		}
	}
	if n := v.parses.Load(); n != 4 {
		t.Fatalf("%d full verifications, want 1 + 3 of the forged token", n)
	}
}

func TestARememberedTokenStillExpires(t *testing.T) {
	v := mustOpen(t, Config{Secret: testSecret})
	now := time.Now()
	v.now = func() time.Time { return now }
	exp := now.Add(time.Minute).Truncate(time.Second)
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), valid(jwt.MapClaims{"exp": exp.Unix()}))
	if _, got, err := v.Verify(tok); err != nil || !got.Equal(exp) {
		t.Fatalf("Verify = %v, %v", got, err)
	}
	now = exp.Add(Leeway - time.Second)
	if _, _, err := v.Verify(tok); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	now = exp.Add(Leeway)
	_, _, err := v.Verify(tok)
	if chat.ErrorCode(err) != chat.CodeUnauthorized || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("after exp and leeway: %v, want token expired", err)
	}
	if n := v.parses.Load(); n != 2 {
		t.Fatalf("%d full verifications, want 2 (the first and the expired one)", n)
	}
}

func TestRememberedTokensAreBounded(t *testing.T) {
	var c verifiedTokens
	now := time.Now()
	for i := range maxVerified * 3 {
		c.put(fmt.Sprintf("token-%d", i), chat.User{ID: "u"}, time.Time{}, now.Add(time.Hour), now)
		if len(c.m) > maxVerified {
			t.Fatalf("%d tokens remembered, bound %d", len(c.m), maxVerified)
		}
	}
	// Expired tokens go first when it fills.
	c = verifiedTokens{}
	for i := range maxVerified {
		c.put(fmt.Sprintf("old-%d", i), chat.User{ID: "u"}, time.Time{}, now.Add(-time.Hour), now.Add(-2*time.Hour))
	}
	c.put("fresh", chat.User{ID: "u"}, time.Time{}, now.Add(time.Hour), now)
	if len(c.m) != 1 {
		t.Fatalf("%d tokens after the expired ones were dropped, want 1", len(c.m))
	}
	if _, _, ok := c.get("fresh", now); !ok {
		t.Fatal("the fresh token was not remembered")
	}
}

// TestARememberedTokenIsRefusedBeforeItsTime: a clock stepped back before
// a remembered token's nbf or iat (less the leeway) gets the answer a
// fresh check gives, not the remembered one.
func TestARememberedTokenIsRefusedBeforeItsTime(t *testing.T) {
	v := mustOpen(t, Config{Secret: testSecret})
	now := time.Now().Truncate(time.Second)
	v.now = func() time.Time { return now }
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), valid(jwt.MapClaims{"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix()}))
	if _, _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	now = now.Add(-Leeway) // iat − leeway: still valid
	if _, _, err := v.Verify(tok); err != nil {
		t.Fatalf("at iat − leeway: %v", err)
	}
	now = now.Add(-time.Second)
	_, _, err := v.Verify(tok)
	if chat.ErrorCode(err) != chat.CodeUnauthorized || !strings.Contains(err.Error(), "not valid yet") {
		t.Fatalf("before iat − leeway: %v, want token not valid yet", err)
	}
	if n := v.parses.Load(); n != 2 {
		t.Fatalf("%d full verifications, want 2", n)
	}
}

// Package auth verifies the bearer tokens of Parley's API: JWTs signed with
// HS256 (shared secret), RS256 (RSA public keys) or EdDSA (Ed25519 public
// keys). It also issues the HS256 tokens of development sign-in.
package auth

import (
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/chat"
)

const (
	// Leeway absorbs clock skew between the token issuer and this server
	// when checking exp, nbf and iat.
	Leeway = 30 * time.Second
	// MaxNameChars bounds the optional name claim.
	MaxNameChars = 128
	// maxTokenLen refuses absurd tokens before any decoding work.
	maxTokenLen = 8 << 10
)

// ErrNoSecret is returned by Issue when no HS256 secret is configured.
var ErrNoSecret = errors.New("auth: no HS256 secret configured to issue tokens")

// claims are the JWT claims Parley reads: the registered ones and name.
type claims struct {
	Name string `json:"name,omitempty"`
	jwt.RegisteredClaims
}

// Verifier checks tokens against the configured keys. Its configuration is
// fixed at Open; it remembers the tokens it accepted (verifiedTokens), and
// is safe for concurrent use.
type Verifier struct {
	secret   []byte
	rsaKeys  []jwt.VerificationKey
	edKeys   []jwt.VerificationKey
	issuer   string
	audience string
	parser   *jwt.Parser
	now      func() time.Time // the parser's clock too
	verified verifiedTokens
	parses   atomic.Int64 // full verifications, for tests
}

// Open reads the public keys of cfg and returns a Verifier. It fails when
// cfg gives no way to verify a token.
func Open(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{issuer: cfg.Issuer, audience: cfg.Audience, now: time.Now}
	var methods []string
	if cfg.Secret != "" {
		v.secret = []byte(cfg.Secret)
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	for _, path := range cfg.PublicKeys {
		keys, err := readPublicKeys(path)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			switch k := k.(type) {
			case *rsa.PublicKey:
				v.rsaKeys = append(v.rsaKeys, k)
			case ed25519.PublicKey:
				v.edKeys = append(v.edKeys, k)
			}
		}
	}
	if len(v.rsaKeys) > 0 {
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	if len(v.edKeys) > 0 {
		methods = append(methods, jwt.SigningMethodEdDSA.Alg())
	}
	if len(methods) == 0 {
		return nil, errors.New("auth: no secret and no public key: nothing can verify a token")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// keyFor picks the verification keys by the token's algorithm and the key
// type, so a key is only ever used with the algorithm made for it: an RSA
// public key is never an HMAC secret, and "none" has no key at all. The
// parser's method list refuses those first; this is the second lock.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	switch t.Method {
	case jwt.SigningMethodHS256:
		if v.secret != nil {
			return v.secret, nil
		}
	case jwt.SigningMethodRS256:
		if len(v.rsaKeys) > 0 {
			return jwt.VerificationKeySet{Keys: v.rsaKeys}, nil
		}
	case jwt.SigningMethodEdDSA:
		if len(v.edKeys) > 0 {
			return jwt.VerificationKeySet{Keys: v.edKeys}, nil
		}
	}
	return nil, errors.New("no key for this algorithm")
}

// Verify checks token and returns its user and expiry. Every failure is a
// *chat.Error with code unauthorized and a short message that never
// contains the token. A token accepted before answers from memory until it
// expires (verifiedTokens).
func (v *Verifier) Verify(token string) (chat.User, time.Time, error) {
	if token == "" || len(token) > maxTokenLen {
		return chat.User{}, time.Time{}, unauthorized("invalid token", jwt.ErrTokenMalformed)
	}
	now := v.now()
	if user, exp, ok := v.verified.get(token, now); ok {
		return user, exp, nil
	}
	user, c, err := v.verify(token)
	if err != nil {
		return chat.User{}, time.Time{}, err
	}
	var notBefore time.Time
	for _, t := range []*jwt.NumericDate{c.NotBefore, c.IssuedAt} {
		if t != nil && t.After(notBefore) {
			notBefore = t.Time
		}
	}
	v.verified.put(token, user, notBefore, c.ExpiresAt.Time, now)
	return user, c.ExpiresAt.Time, nil
}

// verify is Verify without the memory of accepted tokens; it also returns
// the token's claims.
func (v *Verifier) verify(token string) (chat.User, *claims, error) {
	v.parses.Add(1)
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyFor); err != nil {
		return chat.User{}, nil, v.classify(err, &c)
	}
	if !ValidUserID(c.Subject) {
		return chat.User{}, nil, unauthorized("token subject is not a valid user id", jwt.ErrTokenInvalidSubject)
	}
	name := strings.TrimSpace(c.Name)
	if name == "" {
		name = c.Subject
	}
	if utf8.RuneCountInString(name) > MaxNameChars {
		return chat.User{}, nil, unauthorized("token name is too long", jwt.ErrTokenInvalidClaims)
	}
	return chat.User{ID: c.Subject, Name: name}, &c, nil
}

// classify turns a parse error into a public one. Only the jwt sentinel is
// kept as the cause: the library's messages may quote parts of the token.
func (v *Verifier) classify(err error, c *claims) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed),
		errors.Is(err, jwt.ErrTokenUnverifiable),
		errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthorized("invalid token", jwt.ErrTokenSignatureInvalid)
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized("token expired", jwt.ErrTokenExpired)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && c.ExpiresAt == nil:
		return unauthorized("token has no expiry", jwt.ErrTokenRequiredClaimMissing)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return unauthorized("token not valid yet", jwt.ErrTokenNotValidYet)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && v.issuer != "" && c.Issuer == "":
		return unauthorized("token issuer not accepted", jwt.ErrTokenInvalidIssuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return unauthorized("token audience not accepted", jwt.ErrTokenInvalidAudience)
	}
	return unauthorized("invalid token", jwt.ErrTokenInvalidClaims)
}

func unauthorized(msg string, cause error) *chat.Error {
	return &chat.Error{Code: chat.CodeUnauthorized, Op: "auth: verify", Message: msg, Err: cause}
}

// Issue returns an HS256 token for user that expires after ttl, carrying
// the configured issuer and audience so that Verify accepts it. It serves
// development sign-in and fails with ErrNoSecret when no secret is set.
func (v *Verifier) Issue(user chat.User, ttl time.Duration) (string, error) {
	if v.secret == nil {
		return "", ErrNoSecret
	}
	if !ValidUserID(user.ID) {
		return "", chat.Errorf(chat.CodeInvalid, "user id must be 1-64 characters of [A-Za-z0-9._@-]")
	}
	name := strings.TrimSpace(user.Name)
	if name == "" {
		name = user.ID
	}
	if utf8.RuneCountInString(name) > MaxNameChars {
		return "", chat.Errorf(chat.CodeInvalid, "name is longer than %d characters", MaxNameChars)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("auth: issue: ttl %v is not positive", ttl)
	}
	now := time.Now()
	c := claims{
		Name: name,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   user.ID,
			Issuer:    v.issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	if v.audience != "" {
		c.Audience = jwt.ClaimStrings{v.audience}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(v.secret)
	if err != nil {
		return "", fmt.Errorf("auth: issue: %w", err)
	}
	return tok, nil
}

// ValidUserID reports whether s can be a token's sub: 1–64 characters of
// [A-Za-z0-9._@-]. It is chat.ValidUserID, so the rule lives in one place.
func ValidUserID(s string) bool { return chat.ValidUserID(s) }

package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/chat"
)

// TestVerifyAdminNeedsTheAdminClaimTrue: only the JSON value true makes a
// token an operator's; a bad token stays unauthorized.
func TestVerifyAdminNeedsTheAdminClaimTrue(t *testing.T) {
	v, err := Open(Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(extra jwt.MapClaims) string {
		c := jwt.MapClaims{"sub": "ops", "exp": time.Now().Add(time.Hour).Unix()}
		for k, x := range extra {
			c[k] = x
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if u, err := v.VerifyAdmin(sign(jwt.MapClaims{AdminClaim: true})); err != nil || u.ID != "ops" {
		t.Fatalf("admin token: %v %v", u, err)
	}
	for name, tok := range map[string]string{
		"no claim":     sign(nil),
		"false":        sign(jwt.MapClaims{AdminClaim: false}),
		"string true":  sign(jwt.MapClaims{AdminClaim: "true"}),
		"number 1":     sign(jwt.MapClaims{AdminClaim: 1}),
		"issued token": mustIssue(t, v),
	} {
		if _, err := v.VerifyAdmin(tok); chat.ErrorCode(err) != chat.CodeForbidden {
			t.Errorf("%s: %v, want forbidden", name, err)
		}
	}
	expired := jwt.MapClaims{"sub": "ops", "exp": time.Now().Add(-time.Hour).Unix(), AdminClaim: true}
	s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, expired).SignedString([]byte(testSecret))
	if _, err := v.VerifyAdmin(s); chat.ErrorCode(err) != chat.CodeUnauthorized {
		t.Errorf("expired admin token: %v, want unauthorized", err)
	}
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ops", "exp": time.Now().Add(time.Hour).Unix(), AdminClaim: true}).SignedString([]byte("another-secret-0123456789abcdef0123"))
	if _, err := v.VerifyAdmin(forged); chat.ErrorCode(err) != chat.CodeUnauthorized {
		t.Errorf("forged admin token: %v, want unauthorized", err)
	}
}

func mustIssue(t *testing.T, v *Verifier) string {
	t.Helper()
	s, err := v.Issue(chat.User{ID: "ops"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

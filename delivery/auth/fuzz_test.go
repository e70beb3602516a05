package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/chat"
)

// signHS256 makes a token of any header and claims bytes, correctly
// signed, so the fuzzer reaches the claims checks behind the signature.
func signHS256(header, claims []byte) string {
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(m.Sum(nil))
}

// FuzzVerifyClaims: whatever the claims of a validly signed token, Verify
// either refuses it as unauthorized or returns a valid user id, a name
// within the limit and an expiry that has not passed; it never panics.
// The raw token is fuzzed too (third argument), for the parsing before
// the signature.
func FuzzVerifyClaims(f *testing.F) {
	exp := time.Now().Add(24 * 365 * time.Hour).Unix()
	hdr := `{"alg":"HS256","typ":"JWT"}`
	for _, c := range []string{
		`{"sub":"alice","exp":` + itoa(exp) + `}`,
		`{"sub":"alice","exp":` + itoa(exp) + `,"name":"Alice"}`,
		`{"sub":"al ice","exp":` + itoa(exp) + `}`,
		`{"sub":"alice"}`,
		`{"sub":"alice","exp":1}`,
		`{"sub":"alice","exp":"soon"}`,
		`{"sub":["alice"],"exp":` + itoa(exp) + `}`,
		`{"sub":"alice","exp":` + itoa(exp) + `,"nbf":99999999999}`,
		`{"sub":"alice","exp":` + itoa(exp) + `,"name":"\ud800"}`,
		`{"sub":"alice","exp":1e400}`,
		`null`, `[]`, `{`,
	} {
		f.Add([]byte(hdr), []byte(c), "")
	}
	f.Add([]byte(`{"alg":"none"}`), []byte(`{"sub":"alice","exp":`+itoa(exp)+`}`), "")
	f.Add([]byte(hdr), []byte(`{}`), "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
	v, err := Open(Config{Secret: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header, claims []byte, raw string) {
		token := raw
		if token == "" {
			token = signHS256(header, claims)
		}
		u, expires, err := v.Verify(token)
		if err != nil {
			var ce *chat.Error
			if !errors.As(err, &ce) || ce.Code != chat.CodeUnauthorized {
				t.Fatalf("Verify: %v, want an unauthorized chat.Error", err)
			}
			if len(token) > 8 && strings.Contains(err.Error(), token) {
				t.Fatal("the error quotes the token")
			}
			return
		}
		switch {
		case !chat.ValidUserID(u.ID):
			t.Fatalf("accepted user id %q", u.ID)
		case utf8.RuneCountInString(u.Name) > MaxNameChars || u.Name == "":
			t.Fatalf("accepted name %q", u.Name)
		case !expires.After(time.Now().Add(-Leeway)):
			t.Fatalf("accepted a token that expired at %v", expires)
		}
	})
}

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

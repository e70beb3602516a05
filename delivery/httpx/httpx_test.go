package httpx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/parleychat/parley/chat"
)

// TestWriteCodeAnswersTheContractsShapeAndHeaders: every error code gets
// its status, the error body with the request id, and the headers its
// status asks for.
func TestWriteCodeAnswersTheContractsShapeAndHeaders(t *testing.T) {
	for _, tc := range []struct {
		code, header string
		status       int
	}{
		{chat.CodeRateLimited, "Retry-After", 429},
		{chat.CodeUnavailable, "Retry-After", 503},
		{chat.CodeUnauthorized, "WWW-Authenticate", 401},
		{chat.CodeNotFound, "", 404},
		{"no_such_code", "", 500},
	} {
		r := WithRequestID(httptest.NewRequest("GET", "/", nil))
		w := httptest.NewRecorder()
		WriteCode(w, r, tc.code, "why")
		if w.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.code, w.Code, tc.status)
		}
		if tc.header != "" && w.Header().Get(tc.header) == "" {
			t.Errorf("%s: no %s", tc.code, tc.header)
		}
		var body struct{ Error ErrorDetail }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tc.code || body.Error.RequestID != RequestID(r) || !strings.HasPrefix(RequestID(r), "req_") {
			t.Errorf("%s: body %s (request id %q)", tc.code, w.Body, RequestID(r))
		}
	}
}

// TestDecodeJSONClassifiesBadBodies: the wrong media type is 415, a body
// over the limit 413, malformed JSON 400 naming where.
func TestDecodeJSONClassifiesBadBodies(t *testing.T) {
	for _, tc := range []struct {
		ct, body, code string
	}{
		{"text/plain", `{}`, "unsupported_media_type"},
		{"application/json", `{"a":"` + strings.Repeat("x", 100) + `"}`, chat.CodeTooLarge},
		{"application/json", `{"a":`, chat.CodeInvalid},
		{"application/json", `{"a":1}`, chat.CodeInvalid},
		{"application/merge-patch+json", `{"a":"ok"}`, ""},
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
		r.Header.Set("Content-Type", tc.ct)
		var v struct{ A string }
		err := DecodeJSON(httptest.NewRecorder(), r, 64, &v)
		if tc.code == "" {
			if err != nil || v.A != "ok" {
				t.Errorf("%s %s: %v, %+v", tc.ct, tc.body, err, v)
			}
			continue
		}
		if chat.ErrorCode(err) != tc.code {
			t.Errorf("%s %.20s: %v, want %s", tc.ct, tc.body, err, tc.code)
		}
	}
}

func TestIntParamBounds(t *testing.T) {
	q := url.Values{"n": {"7"}, "big": {"99"}, "word": {"x"}}
	if v, err := IntParam(q, "n", 1, 0, 10); err != nil || v != 7 {
		t.Errorf("n: %d, %v", v, err)
	}
	if v, err := IntParam(q, "absent", 3, 0, 10); err != nil || v != 3 {
		t.Errorf("absent: %d, %v", v, err)
	}
	for _, name := range []string{"big", "word"} {
		if _, err := IntParam(q, name, 1, 0, 10); chat.ErrorCode(err) != chat.CodeInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}

func TestUserAndExpiryRideTheRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if User(r).ID != "" || !Expiry(r).IsZero() {
		t.Fatal("an unauthenticated request has a user")
	}
	r = WithUser(r, chat.User{ID: "alice"}, Expiry(r))
	if User(r).ID != "alice" {
		t.Fatal("WithUser lost the user")
	}
	if CloseCode(chat.CodeUnauthorized) != 4401 || CloseCode("other") != 1013 || Status(chat.CodeConflict) != http.StatusConflict {
		t.Fatal("close codes or statuses wrong")
	}
}

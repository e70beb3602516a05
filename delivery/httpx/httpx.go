// Package httpx is the HTTP plumbing the gateway's packages share
// (delivery/gateway, delivery/rest, delivery/realtime): the one table from
// error codes to HTTP statuses and WebSocket close codes, the contract's
// error body, JSON answers and request bodies, query parameters, and the
// identity of an authenticated request.
package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/chat"
)

// The table from error codes to HTTP statuses and WebSocket close codes
// is chat's (chat.DispositionOf); these read it for the gateway.

// Codes returns every error code the API answers, sorted.
func Codes() []string {
	out := chat.Codes()
	sort.Strings(out)
	return out
}

// Status is the HTTP status of an error code; 500 for an unknown one.
func Status(code string) int { return chat.DispositionOf(code).HTTPStatus }

// CloseCode is the WebSocket close code of an error code that ends a
// session; 1013 (try again later) for one that has none of its own.
func CloseCode(code string) websocket.StatusCode {
	if c := chat.DispositionOf(code).CloseCode; c != 0 {
		return websocket.StatusCode(c)
	}
	return websocket.StatusTryAgainLater
}

// CloseCodes returns every close code an error code maps to.
func CloseCodes() []websocket.StatusCode {
	var out []websocket.StatusCode
	for _, code := range chat.Codes() {
		if c := chat.DispositionOf(code).CloseCode; c != 0 {
			out = append(out, websocket.StatusCode(c))
		}
	}
	return out
}

// ErrorDetail is the contract's error object.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// ErrorJSON is the contract's error body {"error":{…}}.
func ErrorJSON(code, msg, requestID string) []byte {
	b, _ := json.Marshal(struct {
		Error ErrorDetail `json:"error"`
	}{ErrorDetail{Code: code, Message: msg, RequestID: requestID}})
	return b
}

// WriteError answers err in the contract's error shape; an internal error
// (a bug or an unclassified failure) is logged to log first.
func WriteError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	code := chat.ErrorCode(err)
	msg := chat.ErrorMessage(err)
	if code == chat.CodeInternal && log != nil {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if s := chat.RetryAfterSeconds(err); s > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(s))
	}
	WriteCode(w, r, code, msg)
}

// WriteCode answers the error code with msg, with its status from chat's
// table and the headers the status asks for: Retry-After for 429 and 503
// (the code's default unless already set), WWW-Authenticate for 401.
func WriteCode(w http.ResponseWriter, r *http.Request, code, msg string) {
	status := Status(code)
	if s := chat.RetryAfterSeconds(&chat.Error{Code: code}); s > 0 && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", strconv.Itoa(s))
	}
	if code == chat.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(ErrorJSON(code, msg, RequestID(r)))
}

// WriteJSON answers v with status, never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, ErrorJSON(chat.CodeInternal, "encoding failed", "")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// RawJSON is already-encoded JSON, written as it is.
type RawJSON []byte

// MarshalJSON returns r itself.
func (r RawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// DecodeJSON reads a JSON body of at most maxBody bytes into v: 415 for
// another media type, 413 for a larger body, 400 for malformed JSON.
func DecodeJSON(w http.ResponseWriter, r *http.Request, maxBody int64, v any) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return &chat.Error{Code: chat.CodeUnsupportedMediaType, Message: "request body must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return chat.Errorf(chat.CodeTooLarge, "request body is larger than %d bytes", maxBody)
		}
		return chat.Errorf(chat.CodeInvalid, "could not read request body")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return chat.Errorf(chat.CodeInvalid, "malformed JSON: %s", jsonErrText(err))
	}
	return nil
}

func jsonErrText(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("field %q has the wrong type", ute.Field)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "invalid body"
}

// IntParam parses an optional integer query parameter within [lo, hi];
// def when it is absent, "invalid" when it is not such an integer.
func IntParam(q url.Values, name string, def, lo, hi int64) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, chat.Errorf(chat.CodeInvalid, "%s must be an integer from %d to %d", name, lo, hi)
	}
	return v, nil
}

// SendRequest is a send: the body of POST …/messages and the fields of a
// WebSocket send frame.
type SendRequest struct {
	ConversationID string   `json:"conversation_id"`
	ClientID       string   `json:"client_id"`
	Text           string   `json:"text"`
	Attachments    []string `json:"attachments"`
	ReplyTo        *string  `json:"reply_to"`
}

type ctxKey struct{}

// info is what a request carries through the gateway: one context value,
// filled in as the request is authenticated, so that a waiting long-poll
// holds one copy of its request rather than one per step.
type info struct {
	requestID string
	user      chat.User
	expiry    time.Time
}

func infoOf(r *http.Request) *info {
	v, _ := r.Context().Value(ctxKey{}).(*info)
	return v
}

// WithRequestID returns r with its request id, which RequestID returns,
// error bodies and the X-Request-Id answer header carry, and every log
// line written with the request's context names (request_id): the
// caller's X-Request-Id when it is a sane id (1 to 64 letters, digits and
// ._:- , as a proxy or a client makes them), a new one otherwise.
func WithRequestID(r *http.Request) *http.Request {
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = "req_" + hex.EncodeToString(b[:])
	}
	return r.WithContext(context.WithValue(r.Context(), ctxKey{}, &info{requestID: id}))
}

// RequestIDFrom is the request id ctx carries ("" for none): what the
// log handler (delivery/observe) adds to a request's log lines.
func RequestIDFrom(ctx context.Context) string {
	if v, _ := ctx.Value(ctxKey{}).(*info); v != nil {
		return v.requestID
	}
	return ""
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// RequestID is the request's id ("" before WithRequestID).
func RequestID(r *http.Request) string { return RequestIDFrom(r.Context()) }

// WithUser returns r authenticated as u, whose token expires at exp (zero
// for never). A request that went through WithRequestID is returned
// itself, its context's value filled in; call it before handing r on.
func WithUser(r *http.Request, u chat.User, exp time.Time) *http.Request {
	v := infoOf(r)
	if v == nil {
		v = &info{}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, v))
	}
	v.user, v.expiry = u, exp
	return r
}

// User is the authenticated caller (zero for a public route).
func User(r *http.Request) chat.User {
	if v := infoOf(r); v != nil {
		return v.user
	}
	return chat.User{}
}

// Expiry is when the caller's token expires (zero for never).
func Expiry(r *http.Request) time.Time {
	if v := infoOf(r); v != nil {
		return v.expiry
	}
	return time.Time{}
}

// Route is one path's handlers by method.
type Route map[string]http.HandlerFunc

// RouteOption says how the gateway guards a route.
type RouteOption int

const (
	// Public routes need no token.
	Public RouteOption = iota + 1
	// Realtime routes also take a token or ticket from the query, and
	// authenticate on a stack of their own (see gateway).
	Realtime
	// NoAccept routes do not check Accept (redirects, WebSocket).
	NoAccept
	// AcceptSSE routes produce text/event-stream instead of JSON.
	AcceptSSE
)

// Mux is what a package registers its routes with: the gateway's mux
// behind method dispatch, Accept checks and authentication.
type Mux func(pattern string, rt Route, opts ...RouteOption)

package chat

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Error codes. Each maps to one HTTP status and one WebSocket close code in
// one table (Disposition); adapters translate driver errors into them at
// their edge.
const (
	CodeInvalid              = "invalid_request"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeNotAcceptable        = "not_acceptable"
	CodeConflict             = "conflict"
	CodeCursorExpired        = "cursor_expired"
	CodeTooLarge             = "too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeRateLimited          = "rate_limited"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
)

// Error is a classified error: Code says what kind, Op where, Err why.
// Message is what a client may read. RetryAfter, when set, is how long the
// client should wait before trying again (rate_limited, unavailable);
// zero leaves it to the code's default (see RetryAfter).
type Error struct {
	Code       string
	Op         string
	Message    string
	Err        error
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Op != "" {
		return fmt.Sprintf("%s: %s: %s", e.Op, e.Code, msg)
	}
	return fmt.Sprintf("%s: %s", e.Code, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted public message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for comparisons with errors.Is-style helpers.
var (
	ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}
	ErrConflict = &Error{Code: CodeConflict, Message: "conflict"}
)

// ErrorCode returns the code of err, CodeInternal when it is unclassified.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the public message of err: the classified message,
// or a generic text for unclassified errors so internals never leak.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Message != "" {
			return e.Message
		}
		return e.Code
	}
	return "internal error"
}

// IsNotFound reports whether err is classified as not_found.
func IsNotFound(err error) bool { return ErrorCode(err) == CodeNotFound }

// IsConflict reports whether err is classified as conflict.
func IsConflict(err error) bool { return ErrorCode(err) == CodeConflict }

// ContextError classifies err, which a done context caused, at an
// adapter's edge: a cancelled or expired context is CodeUnavailable (the
// caller gave up or ran out of time; the engine itself may be fine), so
// that every adapter answers the same code for it. Any other error is
// returned as it is.
func ContextError(op string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeUnavailable, Op: op, Message: "ran out of time", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeUnavailable, Op: op, Message: "canceled", Err: err}
	}
	return err
}

package chat

import (
	"errors"
	"time"
)

// WebSocket close codes the API names (API.md, "Close codes"). The error
// codes' own close codes come from Disposition; these are also used for
// closes that are no error.
const (
	CloseNormal        = 1000
	CloseGoingAway     = 1001
	ClosePolicy        = 1008
	CloseTooBig        = 1009
	CloseTryAgainLater = 1013
	CloseUnauthorized  = 4401
	CloseCursorExpired = 4410
	CloseRateLimited   = 4429
)

// The waits RetryAfter answers when the error names none.
const (
	defaultUnavailable = 2 * time.Second
	defaultRateLimited = time.Second
)

// A Disposition is how an error code reaches a client: the HTTP status of
// a REST answer, and the WebSocket close code when the code ends a
// session (0: the code never closes one; it is answered with an error
// frame, {"type":"error","ref":…,"error":{"code","message"}}, and the
// session goes on). The error body and the error frame carry the same
// code and message (ErrorCode, ErrorMessage).
type Disposition struct {
	HTTPStatus int
	CloseCode  int
}

// dispositions is the one table from error codes to what clients see.
var dispositions = map[string]Disposition{
	CodeInvalid:              {400, 0},
	CodeUnauthorized:         {401, CloseUnauthorized},
	CodeForbidden:            {403, ClosePolicy},
	CodeNotFound:             {404, 0},
	CodeMethodNotAllowed:     {405, 0},
	CodeNotAcceptable:        {406, 0},
	CodeConflict:             {409, 0},
	CodeCursorExpired:        {410, CloseCursorExpired},
	CodeTooLarge:             {413, CloseTooBig},
	CodeUnsupportedMediaType: {415, 0},
	CodeRateLimited:          {429, CloseRateLimited},
	CodeUnavailable:          {503, CloseTryAgainLater},
	CodeInternal:             {500, CloseTryAgainLater},
}

// DispositionOf returns the disposition of code; an unknown code is
// treated as internal.
func DispositionOf(code string) Disposition {
	if d, ok := dispositions[code]; ok {
		return d
	}
	return dispositions[CodeInternal]
}

// Codes lists every error code, for tests that check each has its place.
func Codes() []string {
	out := make([]string, 0, len(dispositions))
	for c := range dispositions {
		out = append(out, c)
	}
	return out
}

// RateLimited returns a rate_limited error whose client should wait at
// least wait before trying again.
func RateLimited(msg string, wait time.Duration) *Error {
	return &Error{Code: CodeRateLimited, Message: msg, RetryAfter: wait}
}

// RetryAfter is how long a client should wait before retrying after err:
// the error's own RetryAfter, else 1 s for rate_limited and 2 s for
// unavailable, else 0 (retrying will not help).
func RetryAfter(err error) time.Duration {
	var e *Error
	if !errors.As(err, &e) {
		return 0
	}
	if e.RetryAfter > 0 {
		return e.RetryAfter
	}
	switch e.Code {
	case CodeRateLimited:
		return defaultRateLimited
	case CodeUnavailable:
		return defaultUnavailable
	}
	return 0
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, as the
// Retry-After header carries it; 0 when there is nothing to wait for.
func RetryAfterSeconds(err error) int {
	d := RetryAfter(err)
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/coder/websocket"
	"github.com/parleychat/parley/chat"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[string]int{
	chat.CodeInvalid:         http.StatusBadRequest,
	chat.CodeUnauthorized:    http.StatusUnauthorized,
	chat.CodeForbidden:       http.StatusForbidden,
	chat.CodeNotFound:        http.StatusNotFound,
	chat.CodeConflict:        http.StatusConflict,
	chat.CodeCursorExpired:   http.StatusGone,
	chat.CodeTooLarge:        http.StatusRequestEntityTooLarge,
	chat.CodeRateLimited:     http.StatusTooManyRequests,
	chat.CodeUnavailable:     http.StatusServiceUnavailable,
	chat.CodeInternal:        http.StatusInternalServerError,
	"method_not_allowed":     http.StatusMethodNotAllowed,
	"not_acceptable":         http.StatusNotAcceptable,
	"unsupported_media_type": http.StatusUnsupportedMediaType,
}

// closeCodeOf maps error codes to WebSocket close codes.
var closeCodeOf = map[string]websocket.StatusCode{
	chat.CodeUnauthorized:  4401,
	chat.CodeCursorExpired: 4410,
	chat.CodeRateLimited:   4429,
	chat.CodeUnavailable:   websocket.StatusTryAgainLater,
	chat.CodeForbidden:     websocket.StatusPolicyViolation,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func errorJSON(code, msg, requestID string) []byte {
	b, _ := json.Marshal(errorBody{Error: errorDetail{Code: code, Message: msg, RequestID: requestID}})
	return b
}

// writeErr answers err in the contract's error shape.
func (g *Gateway) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	code := chat.ErrorCode(err)
	msg := chat.ErrorMessage(err)
	if code == chat.CodeInternal {
		g.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
	}
	g.writeCode(w, r, code, msg)
}

func (g *Gateway) writeCode(w http.ResponseWriter, r *http.Request, code, msg string) {
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	switch status {
	case http.StatusTooManyRequests:
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(2))
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(errorJSON(code, msg, requestID(r)))
}

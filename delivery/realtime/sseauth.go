package realtime

import (
	"encoding/json"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
)

// Token expiry on SSE. An SSE stream cannot be handed a new token, so it
// lives as long as the token it was opened with: its ready carries
// expires_at, and at that time the stream ends with an unauthorized error
// event. The client reconnects with a new token and its cursor
// (Last-Event-ID), and misses nothing. Long-poll requests each carry
// their token, so a new one applies from the next poll.

// sseExpired is the last event of a stream whose token expired.
const sseExpired = "event: error\ndata: {\"type\":\"error\",\"error\":{\"code\":\"unauthorized\",\"message\":\"token expired; reconnect with a new token and your cursor\"}}\n\n"

// closeTokenExpired is the close code a connection gets when its token
// expires (the WebSocket's 4401).
const closeTokenExpired = 4401

// withExpiry returns the ready frame b with "expires_at" added (b itself
// when exp is zero: a token without expiry).
func withExpiry(b []byte, exp time.Time) []byte {
	if exp.IsZero() || len(b) < 2 || b[len(b)-1] != '}' {
		return b
	}
	at, _ := json.Marshal(exp.UTC().Format(time.RFC3339Nano))
	out := append(b[:len(b)-1:len(b)-1], `,"expires_at":`...)
	out = append(out, at...)
	return append(out, '}')
}

// expireStream closes conn with 4401 when exp passes; the returned stop
// cancels that once the stream ended for another reason, so the timer
// does not keep the connection until the token's expiry.
func expireStream(conn *fanout.Conn, exp time.Time) (stop func()) {
	if exp.IsZero() {
		return func() {}
	}
	t := time.AfterFunc(time.Until(exp), func() { conn.CloseWith(closeTokenExpired, "token expired") })
	return func() { t.Stop() }
}

// sseFinal is the last event of a stream closed by the server.
func sseFinal(conn *fanout.Conn) string {
	switch conn.CloseCode() {
	case closeTokenExpired:
		return sseExpired
	case chat.CloseTryAgainLater:
		return sseInterrupted
	}
	return sseClosed
}

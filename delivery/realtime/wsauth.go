package realtime

import (
	"encoding/json"
	"time"

	"github.com/parleychat/parley/chat"
)

// Token refresh on a WebSocket. A session knows when its token expires:
// ready carries expires_at; tokenExpiringLead before it the session queues
// token.expiring; at it, unless an auth frame brought a later expiry, the
// session closes with 4401. An auth frame with a valid token of the same
// user moves the expiry and answers auth.ok; the connection, its cursor
// and its queue are untouched, since the token only gates how long the
// socket may live. Any other token (invalid, expired, another user's)
// gets an error frame and close 4401: a client that sends a wrong token
// mid-stream has a bug or is not the user, and carrying on would let a
// socket outlive what its user may see.
//
// One timer per session (time.AfterFunc, no goroutine while it waits)
// does both the warning and the close, so neither waits for the keepalive
// tick; the keepalive's own expiry check stays as a backstop.

// tokenExpiringLead is how long before its token expires a session is
// told so (API: about 60 s).
const tokenExpiringLead = 60 * time.Second

// readyFrame is the connection's ready frame with the token's expires_at.
func (s *wsSession) readyFrame() []byte {
	s.tokenMu.Lock()
	exp := s.expires
	s.tokenMu.Unlock()
	return withExpiry(s.conn.ReadyFrame(), exp)
}

// armTokenTimer (re)starts the timer for the current expiry: first the
// warning, then the close. tokenMu must be held.
func (s *wsSession) armTokenTimer() {
	if s.tokenTimer != nil {
		s.tokenTimer.Stop()
		s.tokenTimer = nil
	}
	exp := s.expires
	if exp.IsZero() {
		return
	}
	var expire func()
	expire = func() {
		s.tokenMu.Lock()
		defer s.tokenMu.Unlock()
		if !s.expires.Equal(exp) {
			return // refreshed meanwhile
		}
		if d := time.Until(exp); d > 0 {
			s.tokenTimer = time.AfterFunc(d, expire) // fired early
			return
		}
		s.conn.CloseWith(4401, "token expired")
	}
	warn := func() {
		s.tokenMu.Lock()
		defer s.tokenMu.Unlock()
		if !s.expires.Equal(exp) {
			return
		}
		s.control(map[string]string{"type": "token.expiring", "expires_at": exp.UTC().Format(time.RFC3339Nano)})
		s.tokenTimer = time.AfterFunc(time.Until(exp), expire)
	}
	s.tokenTimer = time.AfterFunc(max(time.Until(exp)-tokenExpiringLead, 0), warn)
}

// stopTokenTimer stops the timer as the session ends.
func (s *wsSession) stopTokenTimer() {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	if s.tokenTimer != nil {
		s.tokenTimer.Stop()
		s.tokenTimer = nil
	}
	s.expires = time.Time{}
}

// refreshToken handles an auth frame; it reports whether the frame was
// valid (a refused token closes the connection anyway).
func (s *wsSession) refreshToken(ref json.RawMessage, token string) bool {
	if token == "" {
		s.frameError(ref, chat.CodeInvalid, "auth needs a token")
		return false
	}
	user, exp, err := s.t.verifier.Verify(token)
	if err == nil && user.ID != s.user.ID {
		err = chat.Errorf(chat.CodeUnauthorized, "the token names another user")
	}
	if err != nil {
		s.frameError(ref, chat.CodeUnauthorized, chat.ErrorMessage(err))
		s.conn.CloseWith(4401, "unauthorized")
		return true
	}
	s.tokenMu.Lock()
	s.expires = exp
	s.armTokenTimer()
	s.tokenMu.Unlock()
	ok := map[string]any{"type": "auth.ok", "ref": ref}
	if !exp.IsZero() {
		ok["expires_at"] = exp.UTC().Format(time.RFC3339Nano)
	}
	s.control(ok)
	return true
}

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/chat"
)

// testWS is a test WebSocket client: it splits server frames into
// objects and keeps the close code (the realtime tests share it).
type testWS struct {
	t      *testing.T
	c      *websocket.Conn
	frames chan map[string]any
	closed chan websocket.StatusCode
}

func dialWS(t *testing.T, url, token string) *testWS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/v1/ws?access_token="+token, &websocket.DialOptions{Subprotocols: []string{"parley.v1"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	w := &testWS{t: t, c: c, frames: make(chan map[string]any, 4096), closed: make(chan websocket.StatusCode, 1)}
	go func() {
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				w.closed <- websocket.CloseStatus(err)
				close(w.frames)
				return
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				var m map[string]any
				if json.Unmarshal(line, &m) == nil {
					w.frames <- m
				}
			}
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return w
}

func (w *testWS) write(v any) {
	w.t.Helper()
	b, _ := json.Marshal(v)
	if err := w.c.Write(context.Background(), websocket.MessageText, b); err != nil {
		w.t.Fatal(err)
	}
}

// next returns the next frame of type typ, failing on a close.
func (w *testWS) next(typ string) map[string]any {
	w.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m, ok := <-w.frames:
			if !ok {
				w.t.Fatalf("closed with %v waiting for %s", <-w.closed, typ)
			}
			if m["type"] == typ {
				return m
			}
		case <-timeout:
			w.t.Fatalf("no %s frame", typ)
		}
	}
}

// closeCode drains frames until the socket closes and returns its code
// and the frames seen.
func (w *testWS) closeCode() (websocket.StatusCode, []map[string]any) {
	w.t.Helper()
	var seen []map[string]any
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m, ok := <-w.frames:
			if !ok {
				return <-w.closed, seen
			}
			seen = append(seen, m)
		case <-timeout:
			w.t.Fatalf("the socket did not close; frames %v", seen)
		}
	}
}

func parseExpiry(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("expires_at %v: %v", v, err)
	}
	return at
}

// TestWebSocketLivesPastItsFirstTokensExpiry: ready carries the token's
// expires_at; a token with under 60 s left is warned of at once with
// token.expiring; an auth frame with a fresh token of the same user
// answers auth.ok with the new expiry, and the socket then outlives the
// first token (the keepalive ticks every 100 ms meanwhile) and keeps
// delivering events on the same stream.
func TestWebSocketLivesPastItsFirstTokensExpiry(t *testing.T) {
	srv, v, _ := startGateway(t, Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 4 * time.Second, PingInterval: 100 * time.Millisecond})
	h := &restHarness{t: t, url: srv.URL, v: v}
	var c chat.Conversation
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "t", "members": []string{"bob"}}, &c); st != 201 {
		t.Fatalf("create: %d", st)
	}
	short, _ := v.Issue(chat.User{ID: "alice"}, 2*time.Second)
	w := dialWS(t, srv.URL, short)
	ready := w.next("ready")
	first := parseExpiry(t, ready["expires_at"])
	if d := time.Until(first); d <= 0 || d > 3*time.Second {
		t.Fatalf("ready expires_at %v is not the 2 s token's expiry", first)
	}
	warned := w.next("token.expiring")
	if got := parseExpiry(t, warned["expires_at"]); !got.Equal(first) {
		t.Errorf("token.expiring expires_at %v, want %v", got, first)
	}
	fresh, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	w.write(map[string]string{"type": "auth", "ref": "a1", "token": fresh})
	ok := w.next("auth.ok")
	if ok["ref"] != "a1" {
		t.Errorf("auth.ok ref %v", ok["ref"])
	}
	if got := parseExpiry(t, ok["expires_at"]); time.Until(got) < 59*time.Minute {
		t.Errorf("auth.ok expires_at %v, want about an hour ahead", got)
	}
	// A wait on the clock, as the condition is the clock: the first
	// token's expiry has passed, and the pong below proves the session
	// outlived it.
	time.Sleep(time.Until(first) + 500*time.Millisecond)
	w.write(map[string]string{"type": "ping", "ref": "p1"})
	if pong := w.next("pong"); pong["ref"] != "p1" {
		t.Errorf("pong %v", pong)
	}
	h.send("bob", c.ID, "after the first token expired")
	ev := w.next("message.created")
	if msg, _ := ev["message"].(map[string]any); msg["text"] != "after the first token expired" || ev["cursor"] == nil {
		t.Errorf("event after refresh: %v", ev)
	}
}

// TestWebSocketWithoutRefreshClosesAtExpiry: no auth frame, so the socket
// closes with 4401 once the token expires.
func TestWebSocketWithoutRefreshClosesAtExpiry(t *testing.T) {
	srv, v, _ := startGateway(t, Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 4 * time.Second})
	short, _ := v.Issue(chat.User{ID: "alice"}, time.Second)
	w := dialWS(t, srv.URL, short)
	w.next("ready")
	w.next("token.expiring")
	if code, _ := w.closeCode(); code != 4401 {
		t.Errorf("close code %d, want 4401", code)
	}
}

// TestWebSocketRefreshRefusesWrongTokens: another user's token, an
// expired token and a malformed one each get an error frame (with the
// frame's ref) and close 4401.
func TestWebSocketRefreshRefusesWrongTokens(t *testing.T) {
	srv, v, _ := startGateway(t, Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 4 * time.Second})
	bobs, _ := v.Issue(chat.User{ID: "bob"}, time.Hour)
	// An HS256 token signed with the gateway's secret that expired beyond
	// the verifier's leeway.
	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-5 * time.Minute).Unix()}).
		SignedString([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"another user's": bobs, "an expired": expired, "a malformed": "not.a.jwt"} {
		t.Run(name, func(t *testing.T) {
			own, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
			w := dialWS(t, srv.URL, own)
			w.next("ready")
			w.write(map[string]string{"type": "auth", "ref": "r9", "token": tok})
			code, seen := w.closeCode()
			if code != 4401 {
				t.Errorf("close code %d, want 4401", code)
			}
			var errFrame map[string]any
			for _, m := range seen {
				if m["type"] == "error" {
					errFrame = m
				}
				if m["type"] == "auth.ok" {
					t.Errorf("auth.ok for %s token", name)
				}
			}
			detail, _ := errFrame["error"].(map[string]any)
			if errFrame["ref"] != "r9" || detail["code"] != "unauthorized" {
				t.Errorf("error frame %v, want ref r9 and code unauthorized", errFrame)
			}
		})
	}
}

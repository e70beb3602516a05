package gateway

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/chat"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event string
	data      map[string]any
}

// openSSE opens GET /v1/events with token (and Last-Event-ID when
// lastID is set); it returns the status and, on 200, the stream's events
// (the channel closes when the stream ends).
func openSSE(t *testing.T, base, token, lastID string) (int, <-chan sseEvent) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		res.Body.Close()
		return res.StatusCode, nil
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
			}
		}
	}()
	t.Cleanup(func() { res.Body.Close() })
	return 200, out
}

// nextSSE returns the next event that is not a heartbeat; ok is false
// when the stream ended.
func nextSSE(t *testing.T, events <-chan sseEvent) (sseEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-events:
		return ev, ok
	case <-time.After(15 * time.Second):
		t.Fatal("no SSE event within 15 s")
	}
	return sseEvent{}, false
}

// expiredToken is a token of user signed with the test secret that
// expired beyond the verifier's leeway.
func expiredToken(t *testing.T, user string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": time.Now().Add(-5 * time.Minute).Unix()}).
		SignedString([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSSEStreamLivesAsLongAsItsTokenAndResumesWithANewOne: the SSE ready
// carries the token's expires_at; when the token expires the stream ends
// with an unauthorized error event; a reconnect with an expired token is
// refused 401, and one with a new token and Last-Event-ID gets a ready
// with the new expiry and exactly the event missed meanwhile.
func TestSSEStreamLivesAsLongAsItsTokenAndResumesWithANewOne(t *testing.T) {
	srv, v, _ := startGateway(t, Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 4 * time.Second, SSEHeartbeat: time.Hour})
	h := &restHarness{t: t, url: srv.URL, v: v}
	var c chat.Conversation
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "t", "members": []string{"bob"}}, &c); st != 201 {
		t.Fatalf("create: %d", st)
	}
	short, _ := v.Issue(chat.User{ID: "alice"}, 2*time.Second)
	st, events := openSSE(t, srv.URL, short, "")
	if st != 200 {
		t.Fatalf("open: %d", st)
	}
	ready, _ := nextSSE(t, events)
	if ready.event != "ready" {
		t.Fatalf("first event %q", ready.event)
	}
	first := parseExpiry(t, ready.data["expires_at"])
	if d := time.Until(first); d <= 0 || d > 3*time.Second {
		t.Fatalf("ready expires_at %v is not the 2 s token's expiry", first)
	}
	h.send("bob", c.ID, "one")
	var last string
	for {
		ev, ok := nextSSE(t, events)
		if !ok {
			t.Fatal("stream ended before the first message")
		}
		if ev.event == "message.created" {
			last = ev.id
			break
		}
	}
	var final sseEvent
	for {
		ev, ok := nextSSE(t, events)
		if !ok {
			break
		}
		final = ev
	}
	if errObj, _ := final.data["error"].(map[string]any); final.event != "error" || errObj["code"] != "unauthorized" {
		t.Fatalf("last event %q %v, want an unauthorized error", final.event, final.data)
	}
	if time.Now().Before(first) {
		t.Fatalf("stream ended before the token expired (%v)", first)
	}

	h.send("bob", c.ID, "two") // missed while away
	if st, _ := openSSE(t, srv.URL, expiredToken(t, "alice"), last); st != 401 {
		t.Fatalf("reconnect with an expired token: %d, want 401", st)
	}
	fresh, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	st, events = openSSE(t, srv.URL, fresh, last)
	if st != 200 {
		t.Fatalf("reconnect: %d", st)
	}
	ready, _ = nextSSE(t, events)
	if got := parseExpiry(t, ready.data["expires_at"]); ready.event != "ready" || time.Until(got) < 59*time.Minute {
		t.Fatalf("ready after reconnect: %q expires_at %v", ready.event, got)
	}
	ev, _ := nextSSE(t, events)
	if msg, _ := ev.data["message"].(map[string]any); ev.event != "message.created" || msg["text"] != "two" {
		t.Fatalf("after reconnect got %q %v, want the missed message two (and not one again)", ev.event, ev.data)
	}
}

// TestLongPollUsesTheTokenOfEachRequest: a poll's cursor carries on under
// a new token of the same user, and an expired token's poll is 401.
func TestLongPollUsesTheTokenOfEachRequest(t *testing.T) {
	srv, v, _ := startGateway(t, Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 4 * time.Second})
	h := &restHarness{t: t, url: srv.URL, v: v}
	poll := func(token, cursor string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/poll?wait=0&cursor="+url.QueryEscape(cursor), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	first, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	st, m := poll(first, "")
	if st != 200 {
		t.Fatalf("first poll: %d", st)
	}
	cursor, _ := m["cursor"].(string)
	var c chat.Conversation
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "t", "members": []string{"bob"}}, &c); st != 201 {
		t.Fatalf("create: %d", st)
	}
	h.send("bob", c.ID, "while refreshing")
	if st, _ := poll(expiredToken(t, "alice"), cursor); st != 401 {
		t.Fatalf("poll with an expired token: %d, want 401", st)
	}
	second, _ := v.Issue(chat.User{ID: "alice"}, 2*time.Hour)
	var texts []string
	for len(texts) == 0 {
		st, m = poll(second, cursor)
		if st != 200 {
			t.Fatalf("poll with the new token: %d %v", st, m)
		}
		evs, _ := m["events"].([]any)
		for _, e := range evs {
			if msg, _ := e.(map[string]any)["message"].(map[string]any); msg != nil {
				texts = append(texts, msg["text"].(string))
			}
		}
		cursor, _ = m["cursor"].(string)
	}
	if len(texts) != 1 || texts[0] != "while refreshing" {
		t.Fatalf("messages polled with the new token: %q", texts)
	}
}

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/presence"
)

// call calls gateway gw as the bearer of tok ("" for none) and decodes
// the answer.
func (e *presenceEnv) call(gw int, method, path, tok string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.urls[gw]+path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func (e *presenceEnv) named(id, name string) string {
	tok, err := e.v.Issue(chat.User{ID: id, Name: name}, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func userIDs(m map[string]any) []string {
	var out []string
	for _, u := range m["users"].([]any) {
		out = append(out, u.(map[string]any)["id"].(string))
	}
	return out
}

// TestProfilesNamesDirectoryAndUserUpdated goes through two gateways:
// names come from tokens and dev sign-in until the user sets one, profiles
// are visible only to people who share a conversation, the directory
// searches them by id or name prefix, and a name change reaches the
// connections of those people and the user's own on both gateways.
func TestProfilesNamesDirectoryAndUserUpdated(t *testing.T) {
	e := startPresenceEnv(t, presence.Config{}, 2)
	alice, carol := e.named("alice", "Alice"), e.named("carol", "Carol")
	status, m := e.call(0, "POST", "/v1/auth/dev", "", map[string]any{"user_id": "bob", "name": "Bob Builder"})
	if status != 200 {
		t.Fatalf("dev sign-in: %d %v", status, m)
	}
	bob := m["token"].(string)

	expect := func(what string, gotStatus int, got map[string]any, wantStatus int, want map[string]any) {
		t.Helper()
		if gotStatus != wantStatus {
			t.Errorf("%s: status %d %v, want %d", what, gotStatus, got, wantStatus)
			return
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v (%v)", what, k, got[k], v, got)
			}
		}
	}
	st, m := e.call(0, "GET", "/v1/me", alice, nil)
	expect("me", st, m, 200, map[string]any{"id": "alice", "name": "Alice"})
	st, m = e.call(1, "GET", "/v1/users/bob", alice, nil)
	expect("stranger before sharing", st, m, 404, nil)
	if m["error"].(map[string]any)["code"] != "not_found" {
		t.Errorf("stranger: %v", m)
	}

	cid := e.group("alice", "bob")
	_ = cid
	st, m = e.call(1, "GET", "/v1/users/bob", alice, nil)
	expect("member's profile (dev sign-in name)", st, m, 200, map[string]any{"id": "bob", "name": "Bob Builder"})
	st, m = e.call(0, "GET", "/v1/users/alice", bob, nil)
	expect("member's profile (token name)", st, m, 200, map[string]any{"id": "alice", "name": "Alice"})
	st, m = e.call(0, "GET", "/v1/users/alice", alice, nil)
	expect("own profile", st, m, 200, map[string]any{"id": "alice", "name": "Alice"})
	for _, uid := range []string{"carol", "nobody", "bad%21id"} {
		st, m = e.call(0, "GET", "/v1/users/"+uid, alice, nil)
		expect("no shared conversation: "+uid, st, m, 404, nil)
	}
	st, m = e.call(0, "GET", "/v1/users/alice", carol, nil)
	expect("carol asks for alice", st, m, 404, nil)
	st, m = e.call(0, "GET", "/v1/users/alice", "", nil)
	expect("no token", st, m, 401, nil)

	for _, tc := range []struct {
		q    string
		want string
	}{
		{"?q=b", "bob"}, {"?q=BO", "bob"}, {"?q=bob%20b", "bob"}, {"?q=ALI", "alice"},
		{"", "alice,bob"}, {"?q=", "alice,bob"}, {"?q=ca", ""}, {"?q=&limit=1", "alice"}, {"?limit=50", "alice,bob"},
	} {
		st, m = e.call(1, "GET", "/v1/users"+tc.q, alice, nil)
		if st != 200 || strings.Join(userIDs(m), ",") != tc.want {
			t.Errorf("GET /v1/users%s: %d %v, want %q", tc.q, st, m, tc.want)
		}
	}
	st, m = e.call(0, "GET", "/v1/users?q=ali", carol, nil)
	if st != 200 || len(userIDs(m)) != 0 {
		t.Errorf("carol searches alice: %d %v, want nobody", st, m)
	}
	for _, q := range []string{"?limit=0", "?limit=51", "?limit=x", "?q=" + strings.Repeat("a", 65)} {
		st, m = e.call(0, "GET", "/v1/users"+q, alice, nil)
		expect("GET /v1/users"+q, st, m, 400, nil)
	}

	onBob, onAlice := e.dial("bob", 1), e.dial("alice", 0)
	for _, bad := range []string{`{}`, `{"name":""}`, `{"name":"   "}`, `{"name":7}`, `{"name":"` + strings.Repeat("x", 65) + `"}`, `{`} {
		st, m = e.call(0, "PATCH", "/v1/me", alice, bad)
		expect("PATCH /v1/me "+bad, st, m, 400, nil)
		if st == 400 && m["error"].(map[string]any)["code"] != "invalid_request" {
			t.Errorf("PATCH %s: %v", bad, m)
		}
	}
	st, m = e.call(0, "PATCH", "/v1/me", alice, map[string]any{"name": "  Alice Liddell  "})
	expect("PATCH /v1/me", st, m, 200, map[string]any{"id": "alice", "name": "Alice Liddell"})
	for who, ws := range map[string]*testWS{"bob on the other gateway": onBob, "alice herself": onAlice} {
		ev := ws.next(chat.EventUserUpdated)
		u, _ := ev["user"].(map[string]any)
		if u["id"] != "alice" || u["name"] != "Alice Liddell" || len(ev) != 2 {
			t.Errorf("%s got %v", who, ev)
		}
	}
	// A later token claim does not replace the name the user set.
	again := e.named("alice", "Alice From SSO")
	st, m = e.call(1, "GET", "/v1/me", again, nil)
	expect("me after a new claim", st, m, 200, map[string]any{"id": "alice", "name": "Alice Liddell"})
	st, m = e.call(1, "GET", "/v1/users/alice", bob, nil)
	expect("bob reads the set name", st, m, 200, map[string]any{"name": "Alice Liddell"})
	st, m = e.call(1, "GET", "/v1/users?q=alice%20l", bob, nil)
	if st != 200 || strings.Join(userIDs(m), ",") != "alice" {
		t.Errorf("search by the new name: %d %v", st, m)
	}
	long := strings.Repeat("é", 64)
	st, m = e.call(0, "PATCH", "/v1/me", alice, map[string]any{"name": long})
	expect("64 characters", st, m, 200, map[string]any{"name": long})
	st, m = e.call(0, "PUT", "/v1/me", alice, nil)
	expect("PUT /v1/me", st, m, 405, nil)
}

// TestTicketsOpenEachRealtimeTransportOnce: a ticket from POST /v1/tickets
// opens a WebSocket on another gateway, an SSE stream and a long-poll, each
// once; used, unknown or misplaced tickets are 401.
func TestTicketsOpenEachRealtimeTransportOnce(t *testing.T) {
	e := startPresenceEnv(t, presence.Config{}, 2)
	alice := e.named("alice", "Alice")
	ticket := func() string {
		t.Helper()
		st, m := e.call(0, "POST", "/v1/tickets", alice, nil)
		if st != 201 {
			t.Fatalf("POST /v1/tickets: %d %v", st, m)
		}
		exp, err := time.Parse(time.RFC3339Nano, m["expires_at"].(string))
		if d := time.Until(exp); err != nil || d < 50*time.Second || d > 61*time.Second {
			t.Errorf("expires_at %v (%v), want in 60 s", m["expires_at"], err)
		}
		return m["ticket"].(string)
	}
	if st, _ := e.call(0, "POST", "/v1/tickets", "", nil); st != 401 {
		t.Errorf("POST /v1/tickets without a token: %d", st)
	}

	wsTicket := ticket()
	dial := func(gw int, tk string) (*websocket.Conn, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.urls[gw], "http")+"/v1/ws?ticket="+tk, &websocket.DialOptions{Subprotocols: []string{"parley.v1"}})
		if err != nil {
			if res == nil {
				t.Fatalf("dial: %v", err)
			}
			return nil, res.StatusCode
		}
		return c, 101
	}
	c, st := dial(1, wsTicket)
	if st != 101 {
		t.Fatalf("WebSocket with a ticket from the other gateway: %d", st)
	}
	_, data, err := c.Read(context.Background())
	if err != nil || !strings.Contains(string(data), `"user_id":"alice"`) {
		t.Errorf("first frame %s, %v", data, err)
	}
	c.CloseNow()
	if _, st := dial(1, wsTicket); st != 401 {
		t.Errorf("used ticket on the WebSocket: %d, want 401", st)
	}

	get := func(path string) *http.Response {
		t.Helper()
		res, err := http.Get(e.urls[0] + path)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	sseTicket := ticket()
	res := get("/v1/events?ticket=" + sseTicket)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("SSE with a ticket: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	res.Body.Close()
	if res := get("/v1/events?ticket=" + sseTicket); res.StatusCode != 401 {
		t.Errorf("used ticket on SSE: %d", res.StatusCode)
	} else {
		res.Body.Close()
	}

	pollTicket := ticket()
	res = get("/v1/poll?wait=0&ticket=" + pollTicket)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"events"`) {
		t.Errorf("poll with a ticket: %d %s", res.StatusCode, body)
	}
	for name, path := range map[string]string{
		"used ticket":                  "/v1/poll?wait=0&ticket=" + pollTicket,
		"unknown ticket":               "/v1/poll?wait=0&ticket=pt1.bogus.sig",
		"a token passed as the ticket": "/v1/poll?wait=0&ticket=" + alice,
		"ticket on a REST endpoint":    "/v1/me?ticket=" + ticket(),
	} {
		res := get(path)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 401 || !strings.Contains(string(body), `"unauthorized"`) {
			t.Errorf("%s: %d %s, want 401 unauthorized", name, res.StatusCode, body)
		}
	}
}

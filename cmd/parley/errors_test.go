package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "test-secret-for-e2e-only-0123456789"

func hs256(t *testing.T, secret, sub string, exp time.Time) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub}
	if !exp.IsZero() {
		claims["exp"] = exp.Unix()
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checkError asserts status and the contract's error body.
func checkError(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	if code != "" && e["code"] != code {
		t.Fatalf("code %v, want %s", e["code"], code)
	}
	if e["message"] == "" || e["request_id"] == "" {
		t.Fatalf("error lacks message or request_id: %s", r.body)
	}
}

func TestEveryErrorRowOfTheContract(t *testing.T) {
	s := startServer(t, "--auth-secret", testSecret)
	alice, bob, eve := s.signIn(t, "alice"), s.signIn(t, "bob"), s.signIn(t, "eve")
	cid := s.createGroup(t, alice, "errors", "bob")
	_, msg := s.send(t, alice, cid, "original", "e-1")
	mid := msg["id"].(string)
	msgs := "/v1/conversations/" + cid + "/messages"

	cases := []struct {
		name   string
		do     func() resp
		status int
		code   string
	}{
		{"400 malformed JSON", func() resp { return s.do(t, "POST", msgs, alice, `{"text":`) }, 400, "invalid_request"},
		{"400 JSON not an object", func() resp { return s.do(t, "POST", msgs, alice, `[1,2]`) }, 400, "invalid_request"},
		{"400 empty text", func() resp { return s.do(t, "POST", msgs, alice, map[string]string{"text": "   "}) }, 400, "invalid_request"},
		{"400 text over 4000 chars", func() resp {
			return s.do(t, "POST", msgs, alice, map[string]string{"text": strings.Repeat("é", 4001)})
		}, 400, "invalid_request"},
		{"400 reply_to another conversation's message", func() resp {
			other := s.createGroup(t, alice, "other")
			return s.do(t, "POST", "/v1/conversations/"+other+"/messages", alice, map[string]any{"text": "x", "reply_to": mid})
		}, 400, "invalid_request"},
		{"400 bad limit", func() resp { return s.do(t, "GET", msgs+"?limit=500", alice, nil) }, 400, "invalid_request"},
		{"400 bad kind", func() resp {
			return s.do(t, "POST", "/v1/conversations", alice, map[string]any{"kind": "channel"})
		}, 400, "invalid_request"},
		{"400 direct membership change", func() resp {
			r := s.do(t, "POST", "/v1/conversations", alice, map[string]any{"kind": "direct", "members": []string{"bob"}})
			return s.do(t, "PUT", "/v1/conversations/"+r.json(t)["id"].(string)+"/members/eve", alice, nil)
		}, 400, "invalid_request"},
		{"401 no token", func() resp { return s.do(t, "GET", "/v1/me", "", nil) }, 401, "unauthorized"},
		{"401 bad signature", func() resp {
			return s.do(t, "GET", "/v1/me", hs256(t, "another-secret-another-secret-12", "alice", time.Now().Add(time.Hour)), nil)
		}, 401, "unauthorized"},
		{"401 expired", func() resp {
			return s.do(t, "GET", "/v1/me", hs256(t, testSecret, "alice", time.Now().Add(-time.Hour)), nil)
		}, 401, "unauthorized"},
		{"401 no exp", func() resp { return s.do(t, "GET", "/v1/me", hs256(t, testSecret, "alice", time.Time{}), nil) }, 401, "unauthorized"},
		{"401 alg none", func() resp {
			return s.do(t, "GET", "/v1/me", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0.", nil)
		}, 401, "unauthorized"},
		{"401 token in query outside realtime", func() resp { return s.do(t, "GET", "/v1/me?access_token="+alice, "", nil) }, 401, "unauthorized"},
		{"403 edit someone else's message", func() resp {
			return s.do(t, "PATCH", msgs+"/"+mid, bob, map[string]string{"text": "hijack"})
		}, 403, "forbidden"},
		{"403 remove someone else as non-creator", func() resp {
			return s.do(t, "DELETE", "/v1/conversations/"+cid+"/members/alice", bob, nil)
		}, 403, "forbidden"},
		{"404 unknown conversation", func() resp { return s.do(t, "GET", "/v1/conversations/cnv_nope", alice, nil) }, 404, "not_found"},
		{"404 non-member reads messages", func() resp { return s.do(t, "GET", msgs, eve, nil) }, 404, "not_found"},
		{"404 non-member sends", func() resp { return s.do(t, "POST", msgs, eve, map[string]string{"text": "hi"}) }, 404, "not_found"},
		{"404 unknown message", func() resp {
			return s.do(t, "PATCH", msgs+"/msg_nope", alice, map[string]string{"text": "x"})
		}, 404, "not_found"},
		{"404 unknown endpoint", func() resp { return s.do(t, "GET", "/v1/nothing", alice, nil) }, 404, "not_found"},
		{"405 wrong method", func() resp { return s.do(t, "DELETE", "/v1/conversations", alice, nil) }, 405, ""},
		{"406 Accept excludes JSON", func() resp { return s.do(t, "GET", "/v1/me", alice, nil, "Accept", "text/html") }, 406, ""},
		{"406 Accept excludes event-stream", func() resp {
			return s.do(t, "GET", "/v1/events?access_token="+alice, "", nil, "Accept", "application/json")
		}, 406, ""},
		{"409 If-Match mismatch", func() resp {
			return s.do(t, "PATCH", msgs+"/"+mid, alice, map[string]string{"text": "edited"}, "If-Match", `"7"`)
		}, 409, "conflict"},
		{"410 foreign cursor on SSE", func() resp {
			return s.do(t, "GET", "/v1/events?access_token="+alice+"&cursor=AQAAAAA", "", nil, "Accept", "text/event-stream")
		}, 410, "cursor_expired"},
		{"410 garbage cursor on long-poll", func() resp { return s.do(t, "GET", "/v1/poll?cursor=%21%21", alice, nil) }, 410, "cursor_expired"},
		{"413 body over 64 KiB", func() resp {
			return s.do(t, "POST", msgs, alice, `{"text":"`+strings.Repeat("a", 70<<10)+`"}`)
		}, 413, "too_large"},
		{"415 not JSON", func() resp {
			return s.do(t, "POST", msgs, alice, `text=hi`, "Content-Type", "application/x-www-form-urlencoded")
		}, 415, ""},
		{"400 poll wait out of range", func() resp { return s.do(t, "GET", "/v1/poll?wait=56", alice, nil) }, 400, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.do()
			checkError(t, r, c.status, c.code)
			if c.status == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without Allow header")
			}
		})
	}

	t.Run("200 same client_id and 204s", func(t *testing.T) {
		if status, again := s.send(t, alice, cid, "original", "e-1"); status != 200 || again["id"] != mid {
			t.Fatalf("dedup answered %d %v", status, again["id"])
		}
		r := s.do(t, "POST", msgs, alice, map[string]string{"text": "by header"}, "Idempotency-Key", "hdr-1")
		r2 := s.do(t, "POST", msgs, alice, map[string]string{"text": "by header"}, "Idempotency-Key", "hdr-1")
		if r.status != 201 || r2.status != 200 || r.json(t)["id"] != r2.json(t)["id"] {
			t.Fatalf("Idempotency-Key dedup: %d %d", r.status, r2.status)
		}
	})
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	// A small bucket: 60 sends overrun it even when the race detector
	// slows each request (with the default 20/s and burst 40, 60 sends that
	// take over a second fit in the bucket's refill).
	d := startServer(t, "--send-rate", "1", "--send-burst", "5")
	alice := d.signIn(t, "alice")
	cid := d.createGroup(t, alice, "limits")
	var last resp
	for i := 0; i < 60; i++ {
		last = d.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]string{"text": "spam"})
		if last.status == 429 {
			break
		}
	}
	checkError(t, last, 429, "rate_limited")
	if last.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

func TestWebSocketProtocolErrors(t *testing.T) {
	s := startServer(t)
	alice := s.signIn(t, "alice")
	wsURL := strings.Replace(s.url, "http://", "ws://", 1) + "/v1/ws?access_token=" + alice

	t.Run("401 before upgrade without token", func(t *testing.T) {
		r := s.do(t, "GET", "/v1/ws", "", nil)
		checkError(t, r, 401, "unauthorized")
	})
	t.Run("403 foreign origin", func(t *testing.T) {
		_, res, err := websocket.Dial(context.Background(), wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
		if err == nil || res == nil || res.StatusCode != 403 {
			t.Fatalf("foreign origin: err %v, response %v", err, res)
		}
	})
	t.Run("same origin accepted", func(t *testing.T) {
		c, _, err := websocket.Dial(context.Background(), wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {s.url}}})
		if err != nil {
			t.Fatal(err)
		}
		c.CloseNow()
	})
	t.Run("invalid frames get error frames then 1008", func(t *testing.T) {
		st, _ := s.connect(t, transportWS, alice, "")
		ws := st.(*wsStream)
		nextControl := func() (map[string]any, error) {
			for {
				m, err := ws.next(5 * time.Second)
				if err != nil || (m["type"] != "presence" && m["type"] != "typing") {
					return m, err
				}
			}
		}
		_ = ws.c.Write(context.Background(), websocket.MessageText, []byte("not json"))
		m, err := nextControl()
		if err != nil || m["type"] != "error" {
			t.Fatalf("invalid JSON: %v %v", m, err)
		}
		_ = ws.write(map[string]any{"type": "bogus", "ref": "x"})
		m, err = nextControl()
		if err != nil || m["type"] != "error" || m["ref"] != "x" {
			t.Fatalf("unknown type: %v %v", m, err)
		}
		for i := 0; i < 25; i++ {
			_ = ws.c.Write(context.Background(), websocket.MessageText, []byte("{"))
		}
		for err == nil {
			_, err = ws.next(5 * time.Second)
		}
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("ended with %v, want 1008", err)
		}
	})
	t.Run("frame over 64 KiB closes 1009", func(t *testing.T) {
		st, _ := s.connect(t, transportWS, alice, "")
		ws := st.(*wsStream)
		_ = ws.c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"ping","ref":"`+strings.Repeat("a", 70<<10)+`"}`))
		var err error
		for err == nil {
			_, err = ws.next(5 * time.Second)
		}
		if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("ended with %v, want 1009", err)
		}
	})
	t.Run("expired cursor: error frame then 4410", func(t *testing.T) {
		c, _, err := websocket.Dial(context.Background(), wsURL+"&cursor=AQAAAAA", nil)
		if err != nil {
			t.Fatalf("browsers cannot read a refused handshake's status, so the refusal is a frame: %v", err)
		}
		defer c.CloseNow()
		_, data, err := c.Read(context.Background())
		if err == nil && !strings.Contains(string(data), "cursor_expired") {
			t.Fatalf("first frame %s", data)
		}
		for err == nil {
			_, _, err = c.Read(context.Background())
		}
		if websocket.CloseStatus(err) != 4410 {
			t.Fatalf("ended with %v, want 4410", err)
		}
	})
}

package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/chat"
)

// TestOpeningBeyondMaxOpeningIsShedWith503: with --max-opening 1, while
// one WebSocket is opening (it holds its slot through the moment the
// server waits for an optional hello frame), a WebSocket, an SSE stream
// and a long-poll are refused with 503, Retry-After and the unavailable
// code, before any upgrade; once it is open, the slot is free again and
// a connection opens. A reconnect storm is shed this way instead of
// piling replays onto the store.
func TestOpeningBeyondMaxOpeningIsShedWith503(t *testing.T) {
	srv, v, _ := startGateway(t, Config{MaxConnsPerUser: 50, MaxOpening: 1, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 4 * time.Second})
	tok, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	wsURL := strings.Replace(srv.URL, "http://", "ws://", 1) + "/v1/ws?access_token=" + tok
	probe := func(path, accept string) (int, string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel() // ends an SSE stream that opened
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", accept)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return res.StatusCode, "", "" // an open stream: its body never ends
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return res.StatusCode, res.Header.Get("Retry-After"), string(b)
	}
	// The opening WebSocket holds its slot for the hello wait (500 ms); on
	// a busy machine the probes may come after it, so try a few times and
	// judge only the rounds whose probes all came well inside it.
	judged := false
	for round := 0; round < 10 && !judged; round++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		opened := time.Now()
		holder, _, err := websocket.Dial(ctx, wsURL, nil)
		if err != nil {
			cancel()
			t.Fatalf("the first WebSocket: %v", err)
		}
		type answer struct {
			what, retryAfter, body string
			status                 int
		}
		var answers []answer
		wsAnswer := answer{what: "websocket"}
		if c, res, err := websocket.Dial(ctx, wsURL, nil); err == nil {
			wsAnswer.status = http.StatusSwitchingProtocols
			c.CloseNow()
		} else if res != nil {
			wsAnswer.status, wsAnswer.retryAfter = res.StatusCode, res.Header.Get("Retry-After")
		}
		answers = append(answers, wsAnswer)
		s, ra, b := probe("/v1/events", "text/event-stream")
		answers = append(answers, answer{"sse", ra, b, s})
		s, ra, b = probe("/v1/poll?wait=0", "application/json")
		answers = append(answers, answer{"long-poll", ra, b, s})
		inside := time.Since(opened) < 300*time.Millisecond
		// The holder opens (ready), which frees the slot.
		if _, data, err := holder.Read(ctx); err != nil || !strings.Contains(string(data), `"ready"`) {
			t.Fatalf("the opening WebSocket did not get ready: %q %v", data, err)
		}
		holder.CloseNow()
		cancel()
		if !inside {
			continue
		}
		judged = true
		for _, a := range answers {
			if a.status != http.StatusServiceUnavailable {
				t.Errorf("%s while another connection opens: %d, want 503", a.what, a.status)
			}
			if a.retryAfter == "" || (a.what != "websocket" && !strings.Contains(a.body, `"unavailable"`)) {
				t.Errorf("%s: Retry-After %q, body %s; want a Retry-After and the unavailable code", a.what, a.retryAfter, a.body)
			}
		}
	}
	if !judged {
		t.Fatal("no round probed inside the opening window (machine too busy)")
	}
	// Nothing opening: connections open again (the slot is given back
	// just after ready is written).
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		s, _, b := probe("/v1/poll?wait=0", "application/json")
		if s == 200 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("a long-poll once the slot is free: %d %s", s, b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL+"&cursor=", nil)
	if err != nil {
		t.Fatalf("a WebSocket once the slot is free: %v", err)
	}
	c.CloseNow()
}

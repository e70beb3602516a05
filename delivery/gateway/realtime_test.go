package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/sequencer"
	"github.com/parleychat/parley/internal/testutil"
)

// startGateway runs an embedded gateway and sequencer for a test.
func startGateway(t *testing.T, cfg Config) (*httptest.Server, *auth.Verifier, *Gateway) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lg, st, v, logger := testEngines(t)
	g := New(cfg, Deps{Log: lg, Store: st, Verifier: v, Logger: logger})
	go func() { _ = g.Run(ctx) }()
	go func() { _ = sequencer.New(lg, st, logger).Run(ctx) }()
	<-g.Hub().Ready()
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return srv, v, g
}

// TestSSEHeartbeatComesFromTheSharedTicker: an idle SSE stream gets its
// comment line at the heartbeat interval, without a timer of its own.
func TestSSEHeartbeatComesFromTheSharedTicker(t *testing.T) {
	srv, v, _ := startGateway(t, Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 4 * time.Second, SSEHeartbeat: 50 * time.Millisecond})
	tok, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	req, _ := http.NewRequest("GET", srv.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(10 * time.Second)
	sawReady := false
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			if strings.HasPrefix(l, "event: ready") {
				sawReady = true
			}
			if l == ": ping" {
				if !sawReady {
					t.Fatal("heartbeat before ready")
				}
				return
			}
		case <-timeout:
			t.Fatal("no heartbeat on an idle stream")
		}
	}
}

// TestASendAnsweredUnavailableIsNeverApplied: a send whose result does not
// come in time (no sequencer runs) is answered 503; a sequencer that starts
// right after the 503 must then refuse it, so the message never appears.
// Before, the 503 came at the command's deadline and the sequencer still
// applied the command for 2 s more.
func TestASendAnsweredUnavailableIsNeverApplied(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, st, v, logger := testEngines(t)
	g := New(Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: time.Second}, Deps{Log: lg, Store: st, Verifier: v, Logger: logger})
	go func() { _ = g.Run(ctx) }()
	<-g.Hub().Ready()
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	tok, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	// The conversation is made with a sequencer running; then it stops.
	sctx, stop := context.WithCancel(ctx)
	seqDone := make(chan struct{})
	go func() { defer close(seqDone); _ = sequencer.New(lg, st, logger).Run(sctx) }()
	code, body := call("POST", "/v1/conversations", `{"kind":"group","title":"t"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	cid := body[strings.Index(body, `"id":"`)+6:]
	cid = cid[:strings.IndexByte(cid, '"')]
	stop()
	<-seqDone

	if code, body := call("POST", "/v1/conversations/"+cid+"/messages", `{"text":"hi","client_id":"c1"}`); code != 503 {
		t.Fatalf("send without a sequencer: %d %s", code, body)
	}
	// A sequencer takes over at once: the command is in the log, and it
	// must be refused.
	go func() { _ = sequencer.New(lg, st, logger).Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A later send shows the sequencer has caught up past the first.
		code, body := call("POST", "/v1/conversations/"+cid+"/messages", `{"text":"after","client_id":"c2"}`)
		if code == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new sequencer never answered: %d %s", code, body)
		}
	}
	_, body = call("GET", "/v1/conversations/"+cid+"/messages", "")
	if strings.Contains(body, `"text":"hi"`) {
		t.Fatalf("a send answered 503 was applied: %s", body)
	}
}

// TestSSEStreamEndsWhenTheClientLeaves: a stream served off the handler
// still notices at once that its client left, and is unregistered (the
// user goes offline), without waiting for a heartbeat.
func TestSSEStreamEndsWhenTheClientLeaves(t *testing.T) {
	srv, v, g := startGateway(t, Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 4 * time.Second, SSEHeartbeat: time.Hour})
	tok, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	req, _ := http.NewRequest("GET", srv.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("status %d, headers %v", res.StatusCode, res.Header)
	}
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || line != "retry: 2000\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if n := g.Hub().Connections("alice"); n != 1 {
		t.Fatalf("%d connections while streaming", n)
	}
	res.Body.Close()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := g.Hub().Connections("alice"); n != 0 {
			return fmt.Errorf("the stream outlived its client: %d connections", n)
		}
		return nil
	})
}

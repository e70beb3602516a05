package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestWebSocketSendOverTheRateLimitCloses4429(t *testing.T) {
	s := startServer(t, "--send-rate", "1", "--send-burst", "2")
	alice := s.signIn(t, "alice")
	cid := s.createGroup(t, alice, "ws limits")
	st, _ := s.connect(t, transportWS, alice, "")
	ws := st.(*wsStream)
	for i := 0; i < 5; i++ {
		_ = ws.write(map[string]any{"type": "send", "ref": fmt.Sprint(i), "conversation_id": cid, "text": "spam"})
	}
	sawError := false
	var err error
	for err == nil {
		var m map[string]any
		m, err = ws.next(10 * time.Second)
		if m["type"] == "error" && strings.Contains(fmt.Sprint(m["error"]), "rate_limited") {
			sawError = true
		}
	}
	if !sawError || websocket.CloseStatus(err) != 4429 {
		t.Fatalf("error frame %v, ended with %v; want rate_limited then 4429", sawError, err)
	}
}

func TestSSESendsRetryFirstAndHeartbeats(t *testing.T) {
	s := startServer(t, "--sse.heartbeat", "200ms")
	alice := s.signIn(t, "alice")
	req, _ := http.NewRequest("GET", s.url+"/v1/events?access_token="+alice, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	body, _ := io.ReadAll(res.Body) // until the context ends
	if !strings.HasPrefix(string(body), "retry: 2000\n") {
		t.Fatalf("stream does not start with retry: %q", body)
	}
	if n := strings.Count(string(body), "\n: "); n < 3 {
		t.Fatalf("%d heartbeat comments in ~3s at 200ms", n)
	}
}

// syncBuffer collects the server's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestLogsNeverHoldTokensOrSecrets(t *testing.T) {
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	out := &urlWriter{got: make(chan string, 1)}
	done := make(chan error, 1)
	secret := "super-secret-value-that-must-not-leak-0123"
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log.level", "debug", "--auth-secret", secret}, func(string) string { return "" }, out, logs)
	}()
	s := &server{t: t, url: <-out.got}
	alice := s.signIn(t, "alice")
	cid := s.createGroup(t, alice, "logs")
	s.send(t, alice, cid, "hello", "l1")
	s.do(t, "GET", "/v1/poll?wait=0&access_token="+alice, "", nil)
	s.do(t, "GET", "/v1/me", alice+"x", nil)
	st, _ := s.connect(t, transportWS, alice, "")
	st.close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	text := logs.String()
	if text == "" {
		t.Fatal("no logs at debug level")
	}
	for _, leak := range []string{alice, alice[:40], secret} {
		if strings.Contains(text, leak) {
			t.Fatalf("logs contain a token or the secret")
		}
	}
}

func TestExpiredTokenClosesTheWebSocketWith4401(t *testing.T) {
	s := startServer(t, "--auth-secret", testSecret, "--ws.ping-interval", "300ms")
	tok := hs256(t, testSecret, "alice", time.Now().Add(2*time.Second))
	st, _ := s.connect(t, transportWS, tok, "")
	start := time.Now()
	var err error
	for err == nil {
		_, err = st.next(10 * time.Second)
	}
	if websocket.CloseStatus(err) != 4401 {
		t.Fatalf("ended with %v, want 4401", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

func TestTypingIsEphemeralAndLimited(t *testing.T) {
	s := startServer(t)
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "typing", "bob")
	bs, _ := s.connect(t, transportWS, bob, "")
	if r := s.do(t, "POST", "/v1/conversations/"+cid+"/typing", alice, nil); r.status != 204 {
		t.Fatalf("typing: %d %s", r.status, r.body)
	}
	m := nextOfType(t, bs, "typing")
	if m["user_id"] != "alice" || m["conversation_id"] != cid || m["seq"] != nil || m["cursor"] != nil {
		t.Fatalf("typing event %v", m)
	}
	evs := s.do(t, "GET", "/v1/conversations/"+cid+"/events", bob, nil).json(t)["events"].([]any)
	for _, e := range evs {
		if e.(map[string]any)["type"] == "typing" {
			t.Fatal("a typing event was stored")
		}
	}
	var last resp
	for i := 0; i < 10; i++ {
		last = s.do(t, "POST", "/v1/conversations/"+cid+"/typing", alice, nil)
	}
	checkError(t, last, 429, "rate_limited")
	if r := s.do(t, "POST", "/v1/conversations/"+cid+"/typing", s.signIn(t, "eve"), nil); r.status != 404 {
		t.Fatalf("a non-member's typing: %d", r.status)
	}
}

func TestOnlyTheUploaderPostsAnAttachment(t *testing.T) {
	s := startServer(t)
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "mine", "bob")
	id, status := s.upload(t, alice, "notes.txt", "text/plain", 5, []byte("hello"))
	if status/100 != 2 {
		t.Fatalf("upload %d", status)
	}
	r := s.do(t, "POST", "/v1/conversations/"+cid+"/messages", bob, map[string]any{"text": "stolen", "attachments": []string{id}})
	checkError(t, r, 400, "invalid_request")
	notUploaded := s.do(t, "POST", "/v1/attachments", alice, map[string]any{"name": "later.txt", "content_type": "text/plain", "size": 3}).json(t)["id"].(string)
	r = s.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]any{"text": "too soon", "attachments": []string{notUploaded}})
	checkError(t, r, 400, "invalid_request")
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/internal/testutil"
)

// logBuffer collects a server's log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines are the JSON log records written so far.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// startLoggedServer starts a server whose JSON logs (at debug) are kept.
func startLoggedServer(t *testing.T, extra ...string) (*server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	s := &server{t: t, dataDir: t.TempDir(), extra: append([]string{"--log.level", "debug", "--log.format", "json"}, extra...), logs: logs}
	s.start()
	t.Cleanup(func() { s.stop() })
	return s, logs
}

// TestRequestIDInAnswerAndLogs: a caller's X-Request-Id is echoed in the
// answer and named by the request's log lines; a request without one (or
// with a malformed one) gets a fresh id, also in its error body.
func TestRequestIDInAnswerAndLogs(t *testing.T) {
	s, logs := startLoggedServer(t)
	alice := s.signIn(t, "alice")
	r := s.do(t, "GET", "/v1/me", alice, nil, "X-Request-Id", "trace-me.42")
	if r.status != 200 || r.header.Get("X-Request-Id") != "trace-me.42" {
		t.Fatalf("X-Request-Id not honoured: %d %q", r.status, r.header.Get("X-Request-Id"))
	}
	r = s.do(t, "GET", "/v1/conversations/cnv_nope", alice, nil, "X-Request-Id", "bad id with spaces")
	got := r.header.Get("X-Request-Id")
	if !strings.HasPrefix(got, "req_") {
		t.Fatalf("a malformed X-Request-Id was kept: %q", got)
	}
	if body := r.json(t); body["error"].(map[string]any)["request_id"] != got {
		t.Fatalf("error body names another request id than the header %q: %s", got, r.body)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		found := 0
		for _, l := range logs.lines(t) {
			if l["msg"] == "request" && l["path"] == "/v1/me" && l["request_id"] == "trace-me.42" {
				found++
			}
			if l["path"] == "/v1/conversations/cnv_nope" && l["request_id"] == got {
				found++
			}
		}
		if found < 2 {
			return fmt.Errorf("the requests' log lines lack their request ids:\n%s", logs)
		}
		return nil
	})
}

// TestLogLevelChangesAtRunTime: PUT /debug/loglevel on the debug address
// turns debug lines on and off without a restart.
func TestLogLevelChangesAtRunTime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := ln.Addr().String()
	ln.Close()
	s, logs := startLoggedServer(t, "--log.level", "info", "--debug.addr", debugAddr)
	alice := s.signIn(t, "alice")
	put := func(level string) (int, string) {
		req, _ := http.NewRequest("PUT", "http://"+debugAddr+"/debug/loglevel", strings.NewReader(level))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		return res.StatusCode, strings.TrimSpace(b.String())
	}
	debugLines := func(id string) int {
		n := 0
		for _, l := range logs.lines(t) {
			if l["level"] == "DEBUG" && l["request_id"] == id {
				n++
			}
		}
		return n
	}
	s.do(t, "GET", "/v1/me", alice, nil, "X-Request-Id", "at-info")
	if code, body := put("debug"); code != 200 || body != "debug" {
		t.Fatalf("PUT debug: %d %q", code, body)
	}
	s.do(t, "GET", "/v1/me", alice, nil, "X-Request-Id", "at-debug")
	if code, _ := put("loud"); code != 400 {
		t.Fatalf("PUT of a bad level answered %d", code)
	}
	if code, body := put("warn"); code != 200 || body != "warn" {
		t.Fatalf("PUT warn: %d %q", code, body)
	}
	s.do(t, "GET", "/v1/me", alice, nil, "X-Request-Id", "at-warn")
	s.stop() // every line is written
	if debugLines("at-info") != 0 || debugLines("at-warn") != 0 {
		t.Fatalf("debug lines logged at info or warn:\n%s", logs)
	}
	if debugLines("at-debug") == 0 {
		t.Fatalf("no debug line after PUT debug:\n%s", logs)
	}
}

// TestNoSecretsInLogs: a run at debug level with push keys and a
// webhook configured that signs in, takes a ticket, connects with it,
// uploads through a signed URL, registers a push device and sends leaves
// none of those secrets (the auth secret, the tokens, the ticket, the
// upload signature, the VAPID private key, the webhook secret) in its
// logs.
func TestNoSecretsInLogs(t *testing.T) {
	const authSecret = "s3cr3t-auth-key-that-signs-every-token-0123456789"
	var keys bytes.Buffer
	if err := run(t.Context(), []string{"push-keys"}, func(string) string { return "" }, &keys, io.Discard); err != nil {
		t.Fatal(err)
	}
	push := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(keys.String()), "\n") {
		k, v, _ := strings.Cut(l, "=")
		push[k] = v
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer hook.Close()
	s, logs := startLoggedServer(t, "--auth-secret", authSecret, "--dev-auth", "true",
		"--push.vapid-public-key", push["PARLEY_PUSH_VAPID_PUBLIC_KEY"], "--push.vapid-private-key", push["PARLEY_PUSH_VAPID_PRIVATE_KEY"],
		"--push.webhook-url", hook.URL+"/parley", "--push.webhook-secret", push["PARLEY_PUSH_WEBHOOK_SECRET"])
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "secrets", "bob")
	r := s.do(t, "POST", "/v1/tickets", alice, nil)
	if r.status/100 != 2 {
		t.Fatalf("ticket: %d %s", r.status, r.body)
	}
	ticket := r.json(t)["ticket"].(string)
	c, _, err := websocket.Dial(t.Context(), strings.Replace(s.url, "http", "ws", 1)+"/v1/ws?ticket="+url.QueryEscape(ticket), nil)
	if err != nil {
		t.Fatalf("dial with ticket: %v", err)
	}
	c.CloseNow()
	up := s.do(t, "POST", "/v1/attachments", alice, map[string]any{"name": "a.txt", "content_type": "text/plain", "size": 3})
	if up.status != 201 {
		t.Fatalf("attachment: %d %s", up.status, up.body)
	}
	upload, _ := url.Parse(up.json(t)["upload_url"].(string))
	sig := upload.Query().Get("sig")
	if _, status := s.upload(t, alice, "b.txt", "text/plain", 3, []byte("abc")); status/100 != 2 {
		t.Fatalf("upload: %d", status)
	}
	if r := s.do(t, "PUT", "/v1/devices/phone", bob, map[string]any{"kind": "webhook", "platform": "fcm", "token": "fcm-bob"}); r.status/100 != 2 {
		t.Fatalf("device: %d %s", r.status, r.body)
	}
	s.send(t, alice, cid, "hello", "c-1")
	s.do(t, "GET", "/v1/me", "not-a-token."+alice[:10], nil) // a refused token is logged as refused, not quoted
	s.stop()
	out := logs.String()
	if !strings.Contains(out, `"msg":"request"`) {
		t.Fatalf("the run logged no requests at debug: the check below would prove nothing:\n%s", out)
	}
	for name, secret := range map[string]string{"auth secret": authSecret, "alice's token": alice, "bob's token": bob, "ticket": ticket, "upload signature": sig,
		"VAPID private key": push["PARLEY_PUSH_VAPID_PRIVATE_KEY"], "webhook secret": push["PARLEY_PUSH_WEBHOOK_SECRET"],
		"webhook secret's key": strings.TrimPrefix(push["PARLEY_PUSH_WEBHOOK_SECRET"], "whsec_")} {
		if secret == "" {
			t.Fatalf("%s is empty: the test proves nothing", name)
		}
		if strings.Contains(out, secret) {
			t.Errorf("the logs hold %s", name)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// server is a real `parley serve` started in-process through run().
type server struct {
	t       *testing.T
	url     string
	dataDir string
	cancel  context.CancelFunc
	done    chan error
	extra   []string
	// logs, when set before start, receives the server's log output.
	logs io.Writer
}

// urlWriter captures the URL the server prints once it is ready.
type urlWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	got chan string
}

func (w *urlWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if i := strings.Index(w.buf.String(), "http://"); i >= 0 {
		rest := w.buf.String()[i:]
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			select {
			case w.got <- rest[:j]:
			default:
			}
		}
	}
	return len(p), nil
}

func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s := &server{t: t, dataDir: t.TempDir(), extra: extra}
	s.start()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *server) start() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &urlWriter{got: make(chan string, 1)}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", s.dataDir, "--log.level", "warn", "--send-rate", "100000", "--send-burst", "100000"}, s.extra...)
	if s.url != "" {
		args[2] = strings.TrimPrefix(s.url, "http://") // same port after a restart
	}
	s.cancel, s.done = cancel, make(chan error, 1)
	logs := s.logs
	if logs == nil {
		logs = io.Discard
	}
	go func() { s.done <- run(ctx, args, func(string) string { return "" }, out, logs) }()
	select {
	case u := <-out.got:
		s.url = u
	case err := <-s.done:
		s.t.Fatalf("server exited at start: %v", err)
	case <-time.After(20 * time.Second):
		s.t.Fatal("server did not start in 20s")
	}
}

func (s *server) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("server exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		s.t.Error("server did not stop within 15s")
	}
	s.cancel = nil
}

func (s *server) restart() {
	s.stop()
	s.start()
}

// resp is a decoded HTTP answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %q", r.status, r.body)
	}
	return m
}

// do sends a request; body may be nil, a string (sent raw) or a value (JSON).
func (s *server) do(t *testing.T, method, path, token string, body any, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	checkResponse(t, res.Request, res.StatusCode, res.Header, raw) // after redirects
	return resp{status: res.StatusCode, header: res.Header, body: raw}
}

func (s *server) signIn(t *testing.T, user string) string {
	t.Helper()
	r := s.do(t, "POST", "/v1/auth/dev", "", map[string]string{"user_id": user, "name": strings.ToUpper(user)})
	if r.status != 200 {
		t.Fatalf("sign in %s: %d %s", user, r.status, r.body)
	}
	return r.json(t)["token"].(string)
}

func (s *server) createGroup(t *testing.T, token, title string, members ...string) string {
	t.Helper()
	r := s.do(t, "POST", "/v1/conversations", token, map[string]any{"kind": "group", "title": title, "members": members})
	if r.status != 201 {
		t.Fatalf("create conversation: %d %s", r.status, r.body)
	}
	return r.json(t)["id"].(string)
}

func (s *server) send(t *testing.T, token, cid, text, clientID string) (int, map[string]any) {
	t.Helper()
	r := s.do(t, "POST", "/v1/conversations/"+cid+"/messages", token, map[string]string{"text": text, "client_id": clientID})
	if r.status != 201 && r.status != 200 {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	return r.status, r.json(t)
}

// stream is a realtime client on one transport.
type stream interface {
	// next returns the next server object, or an error after timeout.
	next(timeout time.Duration) (map[string]any, error)
	close()
}

const (
	transportWS   = "websocket"
	transportSSE  = "sse"
	transportPoll = "longpoll"
)

var transports = []string{transportWS, transportSSE, transportPoll}

// connect opens a stream; the first object (ready) is consumed and returned.
func (s *server) connect(t *testing.T, transport, token, cursor string) (stream, map[string]any) {
	t.Helper()
	var st stream
	var err error
	switch transport {
	case transportWS:
		st, err = dialWS(s.url, token, cursor)
	case transportSSE:
		st, err = dialSSE(s.url, token, cursor)
	case transportPoll:
		st, err = dialPoll(s.url, token, cursor)
	}
	if err != nil {
		t.Fatalf("connect %s: %v", transport, err)
	}
	t.Cleanup(st.close)
	check := func(channel string) func(map[string]any) {
		return func(m map[string]any) { checkFrame(t, channel, m) }
	}
	switch st := st.(type) {
	case *wsStream:
		st.check = check("websocket")
	case *sseStream:
		st.check = check("sse")
	case *pollStream:
		st.check = check("poll")
	}
	ready, err := st.next(10 * time.Second)
	if err != nil {
		t.Fatalf("%s: no ready: %v", transport, err)
	}
	if ready["type"] != "ready" {
		t.Fatalf("%s: first object is %v, want ready", transport, ready)
	}
	return st, ready
}

type wsStream struct {
	c       *websocket.Conn
	pending []map[string]any
	ctx     context.Context
	cancel  context.CancelFunc
	check   func(map[string]any) // validates a frame against docs/api; nil: no check
}

func dialWS(base, token, cursor string) (*wsStream, error) {
	u := strings.Replace(base, "http://", "ws://", 1) + "/v1/ws?access_token=" + url.QueryEscape(token)
	if cursor != "" {
		u += "&cursor=" + url.QueryEscape(cursor)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// A small receive buffer, like a phone on a poor network: what the
	// client has not read stays on the server, where limits apply.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		_ = rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10) })
		return serr
	}}
	// No keep-alive: a handshake refused (a 503 when a gateway sheds a
	// reconnect storm) would otherwise leave its connection idle in this
	// client's own pool, never closed, holding a goroutine and a
	// descriptor in the gateway until its 120 s idle timeout (fault 6's
	// gateways held ~1,000 each 60 s after a storm of 2,000). An upgrade
	// is not affected: it takes its connection over.
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{"parley.v1"}, HTTPClient: client})
	if err != nil {
		cancel()
		return nil, err
	}
	c.SetReadLimit(16 << 20)
	return &wsStream{c: c, ctx: ctx, cancel: cancel}, nil
}

func (w *wsStream) next(timeout time.Duration) (map[string]any, error) {
	for len(w.pending) == 0 {
		ctx, cancel := context.WithTimeout(w.ctx, timeout)
		_, data, err := w.c.Read(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				return nil, fmt.Errorf("bad frame line %q: %v", line, err)
			}
			w.pending = append(w.pending, m)
		}
	}
	m := w.pending[0]
	w.pending = w.pending[1:]
	if w.check != nil {
		w.check(m)
	}
	return m, nil
}

func (w *wsStream) write(v any) error {
	b, _ := json.Marshal(v)
	return w.c.Write(w.ctx, websocket.MessageText, b)
}

func (w *wsStream) close() { w.c.CloseNow(); w.cancel() }

type sseStream struct {
	res    *http.Response
	ch     chan map[string]any
	errc   chan error
	cancel context.CancelFunc
	ids    map[string]string // event_id -> SSE id seen
	check  func(map[string]any)
}

func dialSSE(base, token, cursor string) (*sseStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	u := base + "/v1/events?access_token=" + url.QueryEscape(token)
	if cursor != "" {
		u += "&cursor=" + url.QueryEscape(cursor)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		return nil, fmt.Errorf("status %d: %s", res.StatusCode, b)
	}
	s := &sseStream{res: res, ch: make(chan map[string]any, 100000), errc: make(chan error, 1), cancel: cancel}
	go s.read()
	return s, nil
}

func (s *sseStream) read() {
	sc := bufio.NewScanner(s.res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var id, typ, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				var m map[string]any
				if err := json.Unmarshal([]byte(data), &m); err != nil {
					s.errc <- fmt.Errorf("bad data %q", data)
					return
				}
				m["_sse_event"] = typ
				m["_sse_id"] = id
				s.ch <- m
			}
			id, typ, data = "", "", ""
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			data += line[6:]
		}
	}
	s.errc <- io.EOF
}

func (s *sseStream) next(timeout time.Duration) (map[string]any, error) {
	select {
	case m := <-s.ch:
		if s.check != nil {
			s.check(m)
		}
		return m, nil
	case err := <-s.errc:
		return nil, err
	case <-time.After(timeout):
		return nil, errors.New("timeout")
	}
}

func (s *sseStream) close() { s.cancel(); s.res.Body.Close() }

type pollStream struct {
	base, token, cursor string
	pending             []map[string]any
	ready               bool
	ctx                 context.Context
	cancel              context.CancelFunc
	check               func(map[string]any)
}

func dialPoll(base, token, cursor string) (*pollStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	return &pollStream{base: base, token: token, cursor: cursor, ctx: ctx, cancel: cancel}, nil
}

func (p *pollStream) poll(wait int) error {
	u := fmt.Sprintf("%s/v1/poll?wait=%d", p.base, wait)
	if p.cursor != "" {
		u += "&cursor=" + url.QueryEscape(p.cursor)
	}
	req, _ := http.NewRequestWithContext(p.ctx, "GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return fmt.Errorf("poll: %d %s", res.StatusCode, body)
	}
	var out struct {
		Events []map[string]any `json:"events"`
		Cursor string           `json:"cursor"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return err
	}
	p.pending = append(p.pending, out.Events...)
	p.cursor = out.Cursor
	return nil
}

func (p *pollStream) next(timeout time.Duration) (map[string]any, error) {
	if !p.ready {
		// Long-polling has no ready object; synthesize one from a poll
		// that answers at once, so every transport looks alike here.
		if err := p.poll(0); err != nil {
			return nil, err
		}
		p.ready = true
		return map[string]any{"type": "ready", "cursor": p.cursor}, nil
	}
	deadline := time.Now().Add(timeout)
	for len(p.pending) == 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, errors.New("timeout")
		}
		wait := int(left / time.Second)
		if wait > 5 {
			wait = 5
		}
		if err := p.poll(wait); err != nil {
			return nil, err
		}
	}
	m := p.pending[0]
	p.pending = p.pending[1:]
	if p.check != nil {
		p.check(m)
	}
	return m, nil
}

func (p *pollStream) close() { p.cancel() }

// collect reads objects until n durable events of type typ (or any type
// when typ is "") have arrived, skipping ephemeral ones.
func collect(t *testing.T, st stream, n int, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for len(out) < n {
		m, err := st.next(15 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), n, err)
		}
		if _, durable := m["seq"]; !durable {
			continue
		}
		if typ == "" || m["type"] == typ {
			out = append(out, m)
		}
	}
	return out
}

// expectQuiet asserts that no durable event arrives within d.
func expectQuiet(t *testing.T, st stream, d time.Duration) {
	t.Helper()
	for {
		m, err := st.next(d)
		if err != nil {
			return
		}
		if _, durable := m["seq"]; durable {
			t.Fatalf("unexpected extra event %v", m)
		}
	}
}

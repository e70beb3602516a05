package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// sources is how many 127.0.0.x addresses the client sockets are spread
// over (--sources): each source address has its own ~28,000 ephemeral
// ports, so 19,000+ connections to one server port do not run out.
var sources atomic.Int32

var nextSource atomic.Uint32

// dialSpread dials from 127.0.0.1 … 127.0.0.N in turn when the target is an
// IPv4 loopback address, and like a plain dialer otherwise.
func dialSpread(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	host, _, _ := net.SplitHostPort(addr)
	if n := sources.Load(); n > 1 {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && ip.To4() != nil {
			i := nextSource.Add(1) % uint32(n)
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
	}
	return d.DialContext(ctx, network, addr)
}

// restClient is for short requests; streamClient (no overall timeout, the
// context bounds each request) for WebSocket handshakes and SSE; a
// long-poll client has its own connection (keepAlive).
var (
	restClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: dialSpread, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}}
	streamClient = &http.Client{Transport: &http.Transport{
		DialContext: dialSpread, MaxIdleConnsPerHost: 50000, DisableCompression: true, IdleConnTimeout: 90 * time.Second}}
)

// httpError is a REST answer of 300 or more.
type httpError struct {
	Status int
	Body   string
	What   string
}

func (e *httpError) Error() string { return fmt.Sprintf("%s: %d %s", e.What, e.Status, e.Body) }

func call(ctx context.Context, base, method, path, token string, body any, into any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := restClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return &httpError{Status: res.StatusCode, Body: strings.TrimSpace(string(raw)), What: method + " " + path}
	}
	if into != nil {
		return json.Unmarshal(raw, into)
	}
	return nil
}

func signIn(ctx context.Context, base, user string) (string, error) {
	var r struct {
		Token string `json:"token"`
	}
	err := call(ctx, base, "POST", "/v1/auth/dev", "", map[string]string{"user_id": user}, &r)
	return r.Token, err
}

// client is one realtime connection to Parley over one of the three
// transports. Next returns the JSON objects of the next server write (a
// WebSocket frame split on newlines, one SSE event, or one poll answer's
// events), each stamped with the time it was read.
type client struct {
	transport string
	ws        *websocket.Conn
	body      io.ReadCloser
	br        *bufio.Reader
	base      string
	token     string
	cursor    string // the newest cursor seen (ready, SSE id, poll answer)
	wait      int    // long-poll wait in seconds
	pollConn  keepAlive
	pending   [][]byte
}

// connect opens a connection and returns once the server has said ready
// (for long-poll: once the first answer gave a cursor, or at once when
// resuming from one).
func connect(ctx context.Context, transport, base, token, cursor string) (*client, error) {
	c := &client{transport: transport, base: base, token: token, cursor: cursor, wait: 25}
	q := "access_token=" + url.QueryEscape(token)
	if cursor != "" {
		q += "&cursor=" + url.QueryEscape(cursor)
	}
	switch transport {
	case "ws":
		u := strings.Replace(base, "http", "ws", 1) + "/v1/ws?" + q
		ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{"parley.v1"}, HTTPClient: streamClient})
		if err != nil {
			return nil, err
		}
		ws.SetReadLimit(64 << 20)
		c.ws = ws
		if cursor == "" {
			// Without a cursor in the query the server waits a moment for
			// an optional hello that could carry one: say there is none.
			if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"hello"}`)); err != nil {
				ws.CloseNow()
				return nil, err
			}
		}
		_, data, err := ws.Read(ctx)
		if err != nil {
			ws.CloseNow()
			return nil, err
		}
		lines := bytes.Split(data, []byte("\n"))
		if err := c.ready(lines[0]); err != nil {
			ws.CloseNow()
			return nil, err
		}
		c.pending = lines[1:]
	case "wsproto":
		if err := c.connectProto(ctx, strings.Replace(base, "http", "ws", 1)+"/v1/ws?"+q, cursor); err != nil {
			return nil, err
		}
	case "sse":
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events?"+q, nil)
		req.Header.Set("Accept", "text/event-stream")
		res, err := streamClient.Do(req)
		if err != nil {
			return nil, err
		}
		if res.StatusCode != 200 {
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return nil, &httpError{Status: res.StatusCode, Body: string(raw), What: "GET /v1/events"}
		}
		c.body, c.br = res.Body, bufio.NewReaderSize(res.Body, 16<<10)
		first, err := c.Next(ctx)
		if err != nil || len(first) == 0 {
			c.Close()
			return nil, fmt.Errorf("sse: no ready event: %v", err)
		}
		if err := c.ready(first[0]); err != nil {
			c.Close()
			return nil, err
		}
	case "poll":
		if cursor == "" {
			if _, err := c.poll(ctx, 0); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unknown transport %q (ws, sse or poll)", transport)
	}
	return c, nil
}

func (c *client) ready(line []byte) error {
	var r struct {
		Type   string `json:"type"`
		Cursor string `json:"cursor"`
	}
	if err := json.Unmarshal(line, &r); err != nil || r.Type != "ready" {
		return fmt.Errorf("first object is not ready: %.200s", line)
	}
	c.cursor = r.Cursor
	return nil
}

// Next blocks for the next objects the server sends.
func (c *client) Next(ctx context.Context) ([][]byte, error) {
	if len(c.pending) > 0 {
		p := c.pending
		c.pending = nil
		return p, nil
	}
	switch c.transport {
	case "ws":
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		return bytes.Split(data, []byte("\n")), nil
	case "wsproto":
		return c.nextProto(ctx)
	case "sse":
		// The stream's request was made with connect's context: this read
		// ends with this call's context too.
		stop := context.AfterFunc(ctx, func() { c.body.Close() })
		defer stop()
		var out [][]byte
		for {
			line, err := c.br.ReadSlice('\n')
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return nil, err
			}
			if errors.Is(err, bufio.ErrBufferFull) { // a long data line
				rest, err := c.br.ReadBytes('\n')
				if err != nil {
					return nil, err
				}
				line = append(append([]byte{}, line...), rest...)
			}
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case len(line) == 0:
				if len(out) > 0 {
					return out, nil
				}
			case bytes.HasPrefix(line, []byte("data: ")):
				out = append(out, append([]byte{}, line[6:]...))
			case bytes.HasPrefix(line, []byte("id: ")):
				c.cursor = string(line[4:])
			}
		}
	case "poll":
		for {
			ev, err := c.poll(ctx, c.wait)
			if err != nil || len(ev) > 0 {
				return ev, err
			}
		}
	}
	return nil, errors.New("closed")
}

func (c *client) poll(ctx context.Context, wait int) ([][]byte, error) {
	target := fmt.Sprintf("/v1/poll?wait=%d", wait)
	if c.cursor != "" {
		target += "&cursor=" + url.QueryEscape(c.cursor)
	}
	status, raw, err := c.pollConn.get(ctx, c.base, target, c.token)
	if err != nil {
		return nil, err
	}
	if status != 200 {
		return nil, &httpError{Status: status, Body: string(raw), What: "GET /v1/poll"}
	}
	var r struct {
		Events []json.RawMessage `json:"events"`
		Cursor string            `json:"cursor"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	c.cursor = r.Cursor
	out := make([][]byte, len(r.Events))
	for i, e := range r.Events {
		out[i] = e
	}
	return out, nil
}

// keepAlive is one long-poll client's HTTP/1.1 connection, kept open from
// poll to poll as a browser keeps it. It is written by hand rather than
// through http.Transport, whose pool hands each request and response
// between goroutines: at 20,000 polls a second that cost the load tool
// 0.64 of a core, on the same two cores as the server it measures. One
// goroutine polls; Close may come from another.
type keepAlive struct {
	mu     sync.Mutex
	conn   net.Conn // nil between connections
	closed bool
	// The poller's only: the server, from the first poll's base URL.
	addr, host, prefix, serverName string
	br                             *bufio.Reader
	buf                            []byte
}

// target takes the server's address from base, once: http or https, the
// scheme's port unless it names one, and its path as a prefix.
func (k *keepAlive) target(base string) error {
	if k.addr != "" {
		return nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	port := map[string]string{"http": "80", "https": "443"}[u.Scheme]
	if port == "" {
		return fmt.Errorf("long-poll over %q: only http and https", u.Scheme)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	if u.Scheme == "https" {
		k.serverName = u.Hostname()
	}
	k.addr, k.host, k.prefix = net.JoinHostPort(u.Hostname(), port), u.Host, strings.TrimSuffix(u.Path, "/")
	return nil
}

// get sends one GET of path (below base) and returns the answer's status
// and body. A kept connection that the server has closed meanwhile (its
// idle timeout) is redialled once, as http.Transport retries an
// idempotent request.
func (k *keepAlive) get(ctx context.Context, base, path, token string) (int, []byte, error) {
	if err := k.target(base); err != nil {
		return 0, nil, err
	}
	for attempt := 0; ; attempt++ {
		conn, reused, err := k.take(ctx)
		if err != nil {
			return 0, nil, err
		}
		status, body, keep, err := k.roundTrip(ctx, conn, k.prefix+path, token)
		if err == nil {
			if !keep {
				k.drop(conn)
			}
			return status, body, nil
		}
		k.drop(conn)
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		if !reused || attempt > 0 {
			return 0, nil, err
		}
	}
}

// take returns the kept connection, or dials a new one (not under the
// lock, so that a Close meanwhile does not wait for the dial).
func (k *keepAlive) take(ctx context.Context) (conn net.Conn, reused bool, err error) {
	k.mu.Lock()
	closed, kept := k.closed, k.conn
	k.mu.Unlock()
	if closed {
		return nil, false, net.ErrClosed
	}
	if kept != nil {
		return kept, true, nil
	}
	if conn, err = dialSpread(ctx, "tcp", k.addr); err != nil {
		return nil, false, err
	}
	if k.serverName != "" {
		tc := tls.Client(conn, &tls.Config{ServerName: k.serverName})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, false, err
		}
		conn = tc
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		conn.Close()
		return nil, false, net.ErrClosed
	}
	k.conn, k.br = conn, bufio.NewReaderSize(conn, 16<<10)
	return conn, false, nil
}

func (k *keepAlive) roundTrip(ctx context.Context, conn net.Conn, target, token string) (status int, body []byte, keep bool, err error) {
	// A done context interrupts the blocked read by moving the deadline
	// to the past. A connection it reached, even after the answer was
	// read, is not kept: its deadline stays in the past.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer func() {
		if !stop() {
			keep = false
		}
	}()
	k.buf = append(k.buf[:0], "GET "...)
	k.buf = append(k.buf, target...)
	k.buf = append(k.buf, " HTTP/1.1\r\nHost: "...)
	k.buf = append(k.buf, k.host...)
	k.buf = append(k.buf, "\r\nAuthorization: Bearer "...)
	k.buf = append(k.buf, token...)
	k.buf = append(k.buf, "\r\n\r\n"...)
	if _, err := conn.Write(k.buf); err != nil {
		return 0, nil, false, err
	}
	res, err := http.ReadResponse(k.br, nil)
	// An informational answer (1xx) comes before the request's own.
	for err == nil && res.StatusCode >= 100 && res.StatusCode < 200 && res.StatusCode != http.StatusSwitchingProtocols {
		res, err = http.ReadResponse(k.br, nil)
	}
	if err != nil {
		return 0, nil, false, err
	}
	body, err = io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return 0, nil, false, err
	}
	return res.StatusCode, body, !res.Close, nil
}

// drop closes conn and forgets it, if it is still the kept one.
func (k *keepAlive) drop(conn net.Conn) {
	conn.Close()
	k.mu.Lock()
	if k.conn == conn {
		k.conn = nil
	}
	k.mu.Unlock()
}

// close closes the connection, and every poll after it fails.
func (k *keepAlive) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	if k.conn != nil {
		k.conn.Close()
		k.conn = nil
	}
}

// Send writes one client frame (WebSocket only).
func (c *client) Send(ctx context.Context, frame []byte) error {
	if c.ws == nil {
		return errors.New("only a WebSocket connection sends frames")
	}
	return c.ws.Write(ctx, websocket.MessageText, frame)
}

// Close ends the connection at once.
func (c *client) Close() {
	if c.ws != nil {
		c.ws.CloseNow()
	}
	if c.body != nil {
		c.body.Close()
	}
	c.pollConn.close()
}

package realtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/internal/testutil"
	"github.com/parleychat/parley/storage/pebble"
)

// pollRig is a realtime Server with a running hub behind an HTTP/1.1
// test server whose handler authenticates as the user query parameter
// and sets a header of its own (as the gateway's middleware does).
type pollRig struct {
	t     *testing.T
	srv   *Server
	hub   *fanout.Hub
	url   string
	dials atomic.Int64
	cl    *http.Client
	stop  context.CancelFunc
	ran   chan struct{}
	reg   *prometheus.Registry
}

// gauge reads a gauge of the rig's registry (summed over its labels).
func (rig *pollRig) gauge(name string) float64 {
	rig.t.Helper()
	mfs, err := rig.reg.Gather()
	if err != nil {
		rig.t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetGauge().GetValue()
			}
		}
	}
	return v
}

// openLogAndStore opens an embedded log of one partition and an embedded
// store, each in its own temporary directory, closed with the test.
func openLogAndStore(ctx context.Context, t *testing.T) (*memlog.Log, *pebble.Store) {
	t.Helper()
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lg.Close() })
	st, err := pebble.Open(ctx, pebble.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return lg, st
}

func newPollRig(t *testing.T) *pollRig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lg, st := openLogAndStore(ctx, t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := fanout.NewHub(fanout.Config{ID: "gw-test", Log: lg, Store: st, Logger: logger})
	go func() { _ = hub.Run(ctx) }()
	<-hub.Ready()
	rig := &pollRig{t: t, hub: hub, ran: make(chan struct{})}
	rig.reg = prometheus.NewRegistry()
	rig.srv = New(Config{MaxConnsPerUser: 5, QueueSize: 64}, Deps{Hub: hub, Logger: logger, Registerer: rig.reg})
	runCtx, stop := context.WithCancel(ctx)
	rig.stop = stop
	go func() { defer close(rig.ran); rig.srv.Run(runCtx) }()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = httpx.WithUser(r, chat.User{ID: r.URL.Query().Get("user")}, time.Time{})
		w.Header().Set("X-Request-Id", "req_test")
		rig.srv.servePoll(w, r)
	}))
	t.Cleanup(ts.Close)
	rig.url = ts.URL
	// One connection at most, each dial counted: a client that gets every
	// answer over one keep-alive connection dials once.
	tr := &http.Transport{MaxConnsPerHost: 1, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		rig.dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	rig.cl = &http.Client{Transport: tr}
	return rig
}

type pollPage struct {
	Events []struct {
		Type   string `json:"type"`
		UserID string `json:"user_id"`
	} `json:"events"`
	Cursor string `json:"cursor"`
}

// rawConn opens user's registration with a first poll and dials a
// connection of its own to the server, closed at the test's end, for
// requests written byte by byte; it returns the first page.
func (rig *pollRig) rawConn(user string) (pollPage, net.Conn) {
	rig.t.Helper()
	first, _, err := rig.poll(context.Background(), user, "", 0)
	if err != nil {
		rig.t.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(rig.url, "http://"))
	if err != nil {
		rig.t.Fatal(err)
	}
	rig.t.Cleanup(func() { c.Close() })
	return first, c
}

// poll polls as user; it returns the page and the response.
func (rig *pollRig) poll(ctx context.Context, user, cursor string, wait int) (pollPage, *http.Response, error) {
	u := fmt.Sprintf("%s/v1/poll?user=%s&wait=%d", rig.url, user, wait)
	if cursor != "" {
		u += "&cursor=" + url.QueryEscape(cursor)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	res, err := rig.cl.Do(req)
	if err != nil {
		return pollPage{}, nil, err
	}
	defer res.Body.Close()
	var p pollPage
	if res.StatusCode != 200 {
		return p, res, fmt.Errorf("status %d", res.StatusCode)
	}
	return p, res, json.NewDecoder(res.Body).Decode(&p)
}

// waitParked waits until n polls are parked.
func (rig *pollRig) waitParked(n int64) {
	rig.t.Helper()
	testutil.Eventually(rig.t, 10*time.Second, func() error {
		if got := rig.srv.parked.Load(); got != n {
			return fmt.Errorf("%d polls parked, want %d", got, n)
		}
		return nil
	})
}

type pollResult struct {
	p   pollPage
	res *http.Response
	err error
}

// parkOne opens user's registration with a first poll, then starts a
// poll of 30 s from its cursor and returns once that poll is parked; the
// channel gets its result.
func (rig *pollRig) parkOne(ctx context.Context, user string) chan pollResult {
	rig.t.Helper()
	first, _, err := rig.poll(ctx, user, "", 0)
	if err != nil {
		rig.t.Fatal(err)
	}
	ch := rig.pollAsync(ctx, user, first.Cursor, 30)
	rig.waitParked(1)
	return ch
}

func (rig *pollRig) pollAsync(ctx context.Context, user, cursor string, wait int) chan pollResult {
	ch := make(chan pollResult, 1)
	go func() {
		p, res, err := rig.poll(ctx, user, cursor, wait)
		ch <- pollResult{p, res, err}
	}()
	return ch
}

func typing(user string) *fanout.Item {
	return fanout.EphemeralItem(chat.Ephemeral{Type: "typing", ConversationID: "cnv_x", UserID: user})
}

// TestAPollIsParkedWellBeforeASecond: a poll that waits for nothing
// leaves the HTTP server after a quarter of a second, not a whole one; in
// a storm of connecting clients each second's polls held a request's
// goroutine and buffers, and raised the idle RSS per long-poll from 13.5
// to 25 KiB (pollParkAfter).
func TestAPollIsParkedWellBeforeASecond(t *testing.T) {
	rig := newPollRig(t)
	ctx := context.Background()
	first, _, err := rig.poll(ctx, "bob", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ch := rig.pollAsync(ctx, "bob", first.Cursor, 30)
	rig.waitParked(1)
	if d := time.Since(start); d >= time.Second {
		t.Errorf("parked %v after the poll started, want under a second", d.Round(time.Millisecond))
	}
	rig.hub.Each(func(c *fanout.Conn) { c.Enqueue(typing("alice")) })
	if r := <-ch; r.err != nil || len(r.p.Events) != 1 {
		t.Fatalf("the parked poll's answer: %+v %v", r.p, r.err)
	}
}

// TestParkedPollAnswersAndKeepsTheConnection: a poll that waits past
// pollParkAfter leaves the HTTP server (parked); an event queued then is
// answered at once, with the handler's headers, and the next polls (one
// parked until its wait ends, answered empty) use the same keep-alive
// connection, served again by the HTTP server.
func TestParkedPollAnswersAndKeepsTheConnection(t *testing.T) {
	rig := newPollRig(t)
	ctx := context.Background()
	ch := rig.parkOne(ctx, "bob")
	if p, c := rig.gauge("parley_longpolls_parked"), rig.gauge("parley_connections"); p != 1 || c != 1 {
		t.Errorf("gauges: %v parked, %v connections; want 1 and 1", p, c)
	}
	rig.hub.Each(func(c *fanout.Conn) { c.Enqueue(typing("alice")) })
	var r pollResult
	select {
	case r = <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("the parked poll did not answer the event")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.p.Events) != 1 || r.p.Events[0].Type != "typing" || r.p.Events[0].UserID != "alice" {
		t.Fatalf("events %+v, want alice's typing", r.p.Events)
	}
	for k, want := range map[string]string{"X-Request-Id": "req_test", "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"} {
		if got := r.res.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if r.res.Close {
		t.Error("the answer closes the connection")
	}
	// The next poll parks too, and its wait ends with nothing.
	ch = rig.pollAsync(ctx, "bob", r.p.Cursor, 2)
	rig.waitParked(1)
	if r = <-ch; r.err != nil || len(r.p.Events) != 0 || r.p.Cursor == "" {
		t.Fatalf("empty poll: %+v %v", r.p, r.err)
	}
	// And a quick one, answered by the HTTP server itself.
	if _, _, err := rig.poll(ctx, "bob", r.p.Cursor, 0); err != nil {
		t.Fatal(err)
	}
	if n := rig.dials.Load(); n != 1 {
		t.Errorf("%d connections dialled, want 1 kept alive throughout", n)
	}
}

// TestParkedPollClientLeaves: the registration of a parked poll whose
// client goes away is dropped at once (not kept for a next poll).
func TestParkedPollClientLeaves(t *testing.T) {
	rig := newPollRig(t)
	first, _, err := rig.poll(context.Background(), "carol", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The first poll's registration is kept for a poll from its cursor:
	// this one takes it over.
	ctx, cancel := context.WithCancel(context.Background())
	ch := rig.pollAsync(ctx, "carol", first.Cursor, 30)
	rig.waitParked(1)
	cancel()
	<-ch
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := rig.hub.Connections("carol"); n != 0 {
			return fmt.Errorf("%d registrations left", n)
		}
		if k := rig.srv.polls.kept(); k != 0 {
			return fmt.Errorf("%d kept", k)
		}
		return nil
	})
}

// TestParkedPollServerStops: a parked poll is answered as the server
// stops, the connection closed after it, and Run returns.
func TestParkedPollServerStops(t *testing.T) {
	rig := newPollRig(t)
	ctx := context.Background()
	ch := rig.parkOne(ctx, "dave")
	rig.stop()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the parked poll was not answered")
	}
	select {
	case <-rig.ran:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestPrefixConnReadsPrefixFirst: what the client sent early is read
// before the connection.
func TestPrefixConnReadsPrefixFirst(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = b.Write([]byte("rest")); b.Close() }()
	got, err := io.ReadAll(&prefixConn{Conn: a, prefix: []byte("GET ")})
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if string(got) != "GET rest" {
		t.Fatalf("read %q", got)
	}
}

// TestParkedPollWokenByNothingParksAgain: a wake that brings nothing to
// answer (a heartbeat) does not end a parked poll's wait with an empty
// answer: it parks again and answers the event that comes next.
func TestParkedPollWokenByNothingParksAgain(t *testing.T) {
	rig := newPollRig(t)
	ctx := context.Background()
	ch := rig.parkOne(ctx, "erin")
	var conn *fanout.Conn
	rig.hub.Each(func(c *fanout.Conn) { conn = c })
	conn.Beat()
	testutil.Eventually(t, 10*time.Second, func() error {
		if conn.Pending() {
			return errors.New("the heartbeat is not taken yet")
		}
		return nil
	})
	rig.waitParked(1)
	conn.Enqueue(typing("frank"))
	var r pollResult
	select {
	case r = <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("the parked poll did not answer the event")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.p.Events) != 1 || r.p.Events[0].UserID != "frank" {
		t.Fatalf("events %+v, want frank's typing (the heartbeat ended the wait)", r.p.Events)
	}
}

// TestPollWithABodyKeepsTheConnectionUsable: a poll sent with a body
// (which the server discards) is not parked: the next request on the
// connection is read from where the body ends.
func TestPollWithABodyKeepsTheConnectionUsable(t *testing.T) {
	rig := newPollRig(t)
	first, c := rig.rawConn("gina")
	fmt.Fprintf(c, "GET /v1/poll?user=gina&wait=2&cursor=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nno\r\nbody\r\n\r\n", url.QueryEscape(first.Cursor))
	br := bufio.NewReader(c)
	for i := range 2 {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("answer %d: status %d", i, res.StatusCode)
		}
		if i == 0 {
			fmt.Fprintf(c, "GET /v1/poll?user=gina&wait=0 HTTP/1.1\r\nHost: x\r\n\r\n")
		}
	}
}

// TestParkedPollClientHalfCloses: a client that ends its side of the
// connection while its poll is parked still gets the answer (as the HTTP
// server answers a waiting request whose client stopped sending), and the
// registration is not kept.
func TestParkedPollClientHalfCloses(t *testing.T) {
	rig := newPollRig(t)
	first, c := rig.rawConn("hank")
	fmt.Fprintf(c, "GET /v1/poll?user=hank&wait=30&cursor=%s HTTP/1.1\r\nHost: x\r\n\r\n", url.QueryEscape(first.Cursor))
	rig.waitParked(1)
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	var p pollPage
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil || res.StatusCode != 200 || p.Cursor == "" {
		t.Fatalf("answer %d %+v %v", res.StatusCode, p, err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := rig.hub.Connections("hank"); n != 0 {
			return fmt.Errorf("%d registrations left", n)
		}
		return nil
	})
}

// TestHeadPollIsNotParked: a HEAD poll waits like a GET but answers
// without a body (as the HTTP server answers HEAD), so the next request on
// the connection is answered, not taken for the rest of a body.
func TestHeadPollIsNotParked(t *testing.T) {
	rig := newPollRig(t)
	first, c := rig.rawConn("ivan")
	fmt.Fprintf(c, "HEAD /v1/poll?user=ivan&wait=2&cursor=%s HTTP/1.1\r\nHost: x\r\n\r\n", url.QueryEscape(first.Cursor))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("HEAD answer: %v %v", res, err)
	}
	res.Body.Close()
	fmt.Fprintf(c, "GET /v1/poll?user=ivan&wait=0 HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the next request's answer: %v (the HEAD answer carried a body)", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("the next request: status %d", res.StatusCode)
	}
}

// TestHandedBackConnectionIsWrappedOnce: a connection handed back before
// (a prefixConn) gets the bytes read ahead in front of what it has not
// yet read, not a wrapper more per parked poll.
func TestHandedBackConnectionIsWrappedOnce(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	first := withPrefix(a, []byte("G"))
	if _, ok := first.Conn.(*prefixConn); ok {
		t.Fatal("a plain connection was wrapped twice")
	}
	first.prefix = []byte("Z") // handed back with a byte not yet read
	again := withPrefix(first, []byte("XY"))
	if again != first {
		t.Fatal("a handed-back connection got another wrapper")
	}
	go func() { _, _ = b.Write([]byte("!")) }()
	got := make([]byte, 0, 4)
	buf := make([]byte, 4)
	for len(got) < 4 {
		n, err := again.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "XYZ!" {
		t.Fatalf("read %q, want the bytes read ahead, then the unread prefix, then the connection", got)
	}
}

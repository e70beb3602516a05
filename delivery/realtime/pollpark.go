package realtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
)

// pollParkAfter is how long a long-poll waits on its request's goroutine
// before it is parked. A busy client's polls are answered sooner and never
// pay for parking (about 36 µs of CPU a poll); an idle one's wait for long.
// While a storm of clients connects, every poll younger than this holds a
// request's goroutine and buffers, and the collector's heap goal, set at
// that peak, keeps the garbage afterwards: at 19,000 clients connecting in
// a few seconds, the idle RSS per long-poll was 25 KiB at 1 s, 19 KiB at
// 500 ms and 13.5 KiB at 250 ms.
const pollParkAfter = 250 * time.Millisecond

// pollWriteTimeout bounds the write of a parked poll's answer.
const pollWriteTimeout = 10 * time.Second

// canPark reports whether a poll of r can be parked: a plain-text HTTP/1.x
// request of an http.Server (which takes the connection back after the
// answer) whose connection can be taken over. Over TLS it is not: the
// connection handed back is wrapped (prefixConn), and the server would no
// longer see it as TLS. A request with a body is not either: the server
// would discard what the handler left unread before the next request, a
// parked poll cannot. Nor is a HEAD: its answer has no body, which the
// parked poll's own answer would write.
func canPark(w http.ResponseWriter, r *http.Request) bool {
	_, hj := w.(http.Hijacker)
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	return hj && srv != nil && r.Method == http.MethodGet && r.ProtoMajor == 1 && r.TLS == nil && r.Body == http.NoBody
}

// parkedPoll is a long-poll taken over from the HTTP server while it
// waits. A waiting request holds the server's goroutine with its deep
// stack, a second goroutine that watches the connection, 10 KiB of buffers
// and the request; a parked poll holds its socket, a few bytes of answer
// headers and one goroutine waiting in a one-byte read, woken by the
// connection (fanout.Conn.SetWaker moves the read's deadline to the past),
// by its wait's end (the read's deadline), or by the client (it left, or
// sent its next request early). It then answers as the HTTP server would
// and hands the connection back to it (handBack) for the client's next
// request: the client sees one keep-alive connection throughout.
type parkedPoll struct {
	t    *Server
	srv  *http.Server
	nc   net.Conn
	conn *fanout.Conn
	user string
	// head holds the answer's header lines but Content-Length, Date and
	// Connection, as the handler had them.
	head []byte
	end  time.Time // when the wait ends
	// early holds what the client sent past its request (pipelined).
	early []byte
	// closing: the client asked for the connection to close after the
	// answer (or speaks HTTP/1.0).
	closing bool
	// halfClosed: the client ended its side (EOF) while waiting: it is
	// answered at once, as the HTTP server answers a request whose client
	// stopped sending, and the registration is not kept.
	halfClosed bool

	mu      sync.Mutex
	waiting bool // the read waits for the connection (wake moves its deadline)
}

// parkPoll parks the poll of r on conn until end (see parkedPoll). It
// reports false, with w untouched, when the connection cannot be taken
// over; the handler then waits on.
func (t *Server) parkPoll(w http.ResponseWriter, r *http.Request, user string, conn *fanout.Conn, end time.Time) bool {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	var head bytes.Buffer
	if err := h.Write(&head); err != nil {
		return false
	}
	nc, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return false
	}
	p := &parkedPoll{t: t, srv: srv, nc: nc, conn: conn, user: user, head: head.Bytes(), end: end,
		closing: r.Close || r.ProtoMinor == 0}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		p.early = bytes.Clone(b)
	}
	if !t.spawn(p.run) {
		p.answer(true, p.take(true)) // the server stops: answer at once, and close
	}
	return true
}

// aLongTimeAgo is a deadline in the past: it wakes a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// run waits, then answers. A wake that brings nothing to answer (a
// heartbeat, a duplicate of an event the client has) parks the poll again
// until its wait ends, as a waiting request would go on waiting.
func (p *parkedPoll) run() {
	for {
		here := p.wait()
		a := p.take(here)
		if here && len(a.events) == 0 && !a.broken && len(p.early) == 0 && !p.halfClosed &&
			time.Now().Before(p.end) && p.t.sessions.Err() == nil {
			continue
		}
		p.answer(here, a)
		return
	}
}

// take takes what waits on the connection (nothing when the client left).
func (p *parkedPoll) take(here bool) *pollAnswer {
	a := &pollAnswer{events: make([]httpx.RawJSON, 0)}
	if here {
		a.collect(p.conn, false, closedChan, nil)
	}
	return a
}

// wait waits for the connection, the wait's end or the client; it reports
// false when the client left.
func (p *parkedPoll) wait() bool {
	if len(p.early) > 0 {
		return true // the client sent its next request: answer now
	}
	_ = p.nc.SetReadDeadline(p.end)
	p.t.parked.Add(1)
	defer p.t.parked.Add(-1)
	p.mu.Lock()
	p.waiting = true
	p.mu.Unlock()
	p.conn.SetWaker(p.wake)
	here := true
	if !p.conn.Pending() && !p.conn.Broken() {
		var b [1]byte
		n, err := p.nc.Read(b[:])
		switch {
		case n > 0:
			p.early = []byte{b[0]}
		case errors.Is(err, io.EOF):
			p.halfClosed, p.closing = true, true
		case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
			here = false
		}
	}
	p.conn.SetWaker(nil)
	p.mu.Lock()
	p.waiting = false
	p.mu.Unlock()
	_ = p.nc.SetReadDeadline(time.Time{})
	return here
}

// wake ends the read of a waiting poll (the connection's waker).
func (p *parkedPoll) wake() {
	p.mu.Lock()
	if p.waiting {
		_ = p.nc.SetReadDeadline(aLongTimeAgo)
	}
	p.mu.Unlock()
}

// answer answers a (what take took) and hands the connection back; here
// false means the client left: the registration is dropped and the
// socket closed.
func (p *parkedPoll) answer(here bool, a *pollAnswer) {
	t := p.t
	body := t.finishPoll(p.user, p.conn, a, here && !a.broken && !p.halfClosed)
	if !here {
		p.nc.Close()
		return
	}
	closing := p.closing || t.sessions.Err() != nil
	out := make([]byte, 0, 256+len(p.head)+len(body))
	out = append(out, "HTTP/1.1 200 OK\r\n"...)
	out = append(out, p.head...)
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\nDate: "...)
	out = time.Now().UTC().AppendFormat(out, http.TimeFormat)
	if closing {
		out = append(out, "\r\nConnection: close"...)
	}
	out = append(out, "\r\n\r\n"...)
	out = append(out, body...)
	_ = p.nc.SetWriteDeadline(time.Now().Add(pollWriteTimeout))
	_, err := p.nc.Write(out)
	_ = p.nc.SetWriteDeadline(time.Time{})
	if err != nil {
		t.metrics.writeFailed(p.conn)
		p.nc.Close()
		return
	}
	if len(a.events) > 0 {
		t.metrics.wrote("longpoll", a.answered, len(a.events))
	}
	if closing {
		p.nc.Close()
		return
	}
	p.handBack()
}

// handBack waits for the client's next request (as the HTTP server waits
// on a keep-alive connection, up to its IdleTimeout) and gives the
// connection back to the HTTP server, which reads that request from it,
// the bytes read here first. A server that is shutting down takes
// nothing: the connection is closed, as it is when the realtime server
// stops meanwhile.
func (p *parkedPoll) handBack() {
	if len(p.early) == 0 {
		var idle time.Time
		if d := p.srv.IdleTimeout; d > 0 {
			idle = time.Now().Add(d)
		} else if d := p.srv.ReadTimeout; d > 0 {
			idle = time.Now().Add(d)
		}
		_ = p.nc.SetReadDeadline(idle)
		stop := context.AfterFunc(p.t.sessions, func() { _ = p.nc.SetReadDeadline(aLongTimeAgo) })
		var b [1]byte
		n, _ := p.nc.Read(b[:])
		stop()
		if n == 0 || p.t.sessions.Err() != nil {
			p.nc.Close()
			return
		}
		_ = p.nc.SetReadDeadline(time.Time{})
		p.early = []byte{b[0]}
	}
	c := withPrefix(p.nc, p.early)
	l := &handOff{c: c, addr: p.nc.LocalAddr()}
	_ = p.srv.Serve(l) // returns at the second Accept, or at once when shutting down
	if !l.taken {
		c.Close()
	}
}

// closedChan is closed: waiting on it takes only what waits.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// handOff is a listener that accepts one connection, then fails: Serve
// serves that connection (on a goroutine of its own, tracked by the server
// as any other) and returns.
type handOff struct {
	c     net.Conn
	addr  net.Addr
	taken bool
}

func (l *handOff) Accept() (net.Conn, error) {
	if l.c == nil {
		return nil, net.ErrClosed
	}
	c := l.c
	l.c, l.taken = nil, true
	return c, nil
}

func (l *handOff) Close() error   { return nil }
func (l *handOff) Addr() net.Addr { return l.addr }

// withPrefix returns nc reading early first. A connection handed back
// before is already a prefixConn (the HTTP server hijacks what its
// listener accepted): it gets early in front of what it has not yet
// read, rather than another wrapper, so a keep-alive connection that
// parks poll after poll stays one layer deep.
func withPrefix(nc net.Conn, early []byte) *prefixConn {
	if c, ok := nc.(*prefixConn); ok {
		c.prefix = append(slices.Clip(early), c.prefix...)
		return c
	}
	return &prefixConn{Conn: nc, prefix: early}
}

// prefixConn reads prefix before its connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// SetWriteBuffer sets the kernel send buffer of the TCP connection
// underneath: a WebSocket upgraded on a handed-back connection sizes it
// as on any other (ConnContext holds the prefixConn).
func (c *prefixConn) SetWriteBuffer(n int) error {
	if wb, ok := c.Conn.(interface{ SetWriteBuffer(int) error }); ok {
		return wb.SetWriteBuffer(n)
	}
	return nil
}

// CloseWrite half-closes the connection underneath, as the HTTP server
// does to a TCP connection it closes after an error.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

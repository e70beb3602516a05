package realtime

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
)

const sseWriteTimeout = 10 * time.Second

// Final SSE events of a stream the server ends.
const (
	sseTooSlow = "event: error\ndata: {\"type\":\"error\",\"error\":{\"code\":\"too_slow\",\"message\":\"too slow to keep up; resume with your cursor\"}}\n\n"
	sseClosed  = "event: close\ndata: {\"type\":\"close\",\"reason\":\"server going away; resume with your cursor\"}\n\n"
	// sseInterrupted ends a stream whose replay could not be read to its
	// end (the WebSocket's 1013 with fanout.ReplayInterrupted).
	sseInterrupted = "event: close\ndata: {\"type\":\"close\",\"reason\":\"" + fanout.ReplayInterrupted + "\"}\n\n"
)

// serveSSE streams events as Server-Sent Events. Each durable event's id is
// its cursor, so EventSource's Last-Event-ID resumes exactly.
//
// Over HTTP/1.1 the stream leaves the HTTP server (sseStream): an idle
// stream then holds one small goroutine that notices the client leave, and
// a writer runs only while events wait. Over HTTP/2 the handler serves it.
func (t *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cursor := r.URL.Query().Get("cursor")
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		cursor = last
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	conn, ok := t.openHTTPStream(ctx, w, r, u, cursor, "sse")
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")

	var out bytes.Buffer
	out.WriteString("retry: 2000\n\n")
	// The ready object carries the cursor as its id too, so an EventSource
	// that reconnects before any event still resumes where it was.
	exp := httpx.Expiry(r)
	writeSSE(&out, "ready", conn.AppendCursor(nil), withExpiry(conn.ReadyFrame(), exp))
	stopExpiry := expireStream(conn, exp)

	if _, ok := w.(http.Hijacker); ok && r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.Method == http.MethodGet {
		t.detachSSE(w, conn, out.Bytes(), stopExpiry)
		return
	}
	defer stopExpiry()
	defer t.closeHTTPStream(conn, "sse")
	// The client leaving closes the connection, as watch does a detached
	// stream's: a replay page read under way in Next stops.
	defer context.AfterFunc(ctx, func() { conn.CloseWith(chat.CloseNormal, "") })()
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := w.Write(out.Bytes()); err != nil {
			return false
		}
		out.Reset()
		return rc.Flush() == nil
	}
	if !flush() {
		return
	}
	var buf []*fanout.Item
	var scratch sseScratch
	for {
		items, err := conn.Next(ctx, buf)
		switch {
		case errors.Is(err, fanout.ErrTooSlow):
			t.metrics.slowClosed.Inc()
			out.WriteString(sseTooSlow)
			flush()
			return
		case errors.Is(err, fanout.ErrClosed):
			out.WriteString(sseFinal(conn))
			flush()
			return
		case err != nil:
			return
		}
		buf = items
		n := scratch.render(&out, conn, items)
		if out.Len() > 0 {
			if !flush() {
				return
			}
			t.metrics.wrote("sse", items, n)
		}
		clear(items)
		if out.Cap() > 256<<10 {
			out = bytes.Buffer{}
		}
	}
}

// sseScratch is a writer's scratch space for one event.
type sseScratch struct{ one, id []byte }

// render writes items as SSE events to out; it returns how many it wrote.
func (s *sseScratch) render(out *bytes.Buffer, conn *fanout.Conn, items []*fanout.Item) int {
	n := 0
	for _, it := range items {
		if it.Kind == fanout.KindHeartbeat {
			out.WriteString(": ping\n\n")
			continue
		}
		var ok bool
		if s.one, ok = conn.Render(s.one[:0], it); !ok {
			continue
		}
		s.id = s.id[:0]
		if it.Kind == fanout.KindEvent {
			s.id = conn.AppendCursor(s.id)
		}
		writeSSE(out, it.Type, s.id, s.one)
		n++
	}
	return n
}

// sseStream is an SSE stream taken over from the HTTP server: its response
// is written chunked straight to the socket, by a writer that runs only
// while items wait, and a one-byte reader notices the client leave.
type sseStream struct {
	t          *Server
	nc         net.Conn
	conn       *fanout.Conn
	once       sync.Once
	stopExpiry func()
}

// sseBuffers are the buffers of running SSE writers.
var sseBuffers = sync.Pool{New: func() any { return new(sseBuffer) }}

type sseBuffer struct {
	items     []*fanout.Item
	body, out bytes.Buffer
	scratch   sseScratch
}

// detachSSE hijacks the stream's connection and writes its head and first
// events; from then on the stream lives without the handler.
func (t *Server) detachSSE(w http.ResponseWriter, conn *fanout.Conn, first []byte, stopExpiry func()) {
	nc, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		stopExpiry()
		t.closeHTTPStream(conn, "sse")
		return
	}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	w.Header().Set("Transfer-Encoding", "chunked")
	// The socket is closed after the stream's last chunk: a client must
	// not pool it for its next request.
	w.Header().Set("Connection", "close")
	w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
	_ = w.Header().Write(&head)
	head.WriteString("\r\n")
	appendChunk(&head, first)
	_ = brw.Writer.Flush() // nothing should be buffered; never lose it
	_ = nc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	if _, err := nc.Write(head.Bytes()); err != nil {
		nc.Close()
		stopExpiry()
		t.closeHTTPStream(conn, "sse")
		return
	}
	s := &sseStream{t: t, nc: nc, conn: conn, stopExpiry: stopExpiry}
	// The stream ends with the server's sessions, if not before.
	stop := context.AfterFunc(t.sessions, s.end)
	if !t.spawn(func() { defer stop(); s.watch() }) {
		stop()
		s.end()
		return
	}
	conn.StartWriter(func() { t.spawn(s.write) })
}

// appendChunk appends data as one HTTP/1.1 chunk.
func appendChunk(out *bytes.Buffer, data []byte) {
	out.WriteString(strconv.FormatInt(int64(len(data)), 16))
	out.WriteString("\r\n")
	out.Write(data)
	out.WriteString("\r\n")
}

// watch waits for the client to leave (nothing more is read from an SSE
// request), then closes the stream.
func (s *sseStream) watch() {
	var b [1]byte
	for {
		if _, err := s.nc.Read(b[:]); err != nil {
			s.conn.CloseWith(chat.CloseNormal, "")
			s.end()
			return
		}
	}
}

// end releases the stream once: its socket, its registration.
func (s *sseStream) end() {
	s.once.Do(func() {
		s.stopExpiry()
		s.nc.Close()
		s.t.closeHTTPStream(s.conn, "sse")
	})
}

// write writes everything queued, one chunk per take, until nothing waits.
func (s *sseStream) write() {
	b := sseBuffers.Get().(*sseBuffer)
	defer func() {
		clear(b.items)
		b.body.Reset()
		b.out.Reset()
		if b.out.Cap() > 256<<10 {
			b.body, b.out = bytes.Buffer{}, bytes.Buffer{}
		}
		sseBuffers.Put(b)
	}()
	for {
		items, err := s.conn.Take(b.items)
		final := ""
		switch {
		case errors.Is(err, fanout.ErrTooSlow):
			s.t.metrics.slowClosed.Inc()
			final = sseTooSlow
		case errors.Is(err, fanout.ErrClosed):
			final = sseFinal(s.conn)
		case err != nil:
			s.end()
			return
		case len(items) == 0:
			return
		}
		b.items = items
		b.body.Reset()
		n := b.scratch.render(&b.body, s.conn, items)
		b.body.WriteString(final)
		b.out.Reset()
		if b.body.Len() > 0 {
			appendChunk(&b.out, b.body.Bytes())
		}
		if final != "" {
			b.out.WriteString("0\r\n\r\n")
		}
		if b.out.Len() > 0 {
			_ = s.nc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
			if _, err := s.nc.Write(b.out.Bytes()); err != nil {
				s.t.metrics.writeFailed(s.conn)
				s.conn.CloseWith(chat.CloseGoingAway, "")
				s.end()
				return
			}
			s.t.metrics.wrote("sse", items, n)
		}
		if final != "" {
			s.end()
			return
		}
	}
}

// heartbeats asks every SSE stream for its comment line, from one ticker
// for all of them, until ctx is done.
func (t *Server) heartbeats(ctx context.Context) {
	tick := time.NewTicker(t.cfg.SSEHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.hub.Each(func(c *fanout.Conn) {
			if c.Beats {
				c.Beat()
			}
		})
	}
}

func writeSSE(out *bytes.Buffer, typ string, id, data []byte) {
	if len(id) > 0 {
		out.WriteString("id: ")
		out.Write(id)
		out.WriteByte('\n')
	}
	if typ == "control" || typ == "" {
		typ = "message"
	}
	out.WriteString("event: ")
	out.WriteString(typ)
	out.WriteString("\ndata: ")
	out.Write(data) // JSON never holds a raw newline
	out.WriteString("\n\n")
}

// openHTTPStream opens a connection for an SSE or long-poll request,
// answering the error itself when it cannot.
func (t *Server) openHTTPStream(ctx context.Context, w http.ResponseWriter, r *http.Request, u chat.User, cursor, transport string) (*fanout.Conn, bool) {
	conn, _, ok := t.openHTTPStreamLimited(ctx, w, r, u, cursor, transport, 0)
	return conn, ok
}

// openHTTPStreamLimited is openHTTPStream with a replay of at most limit
// events (none when 0); cut says more wait (see fanout.Hub.OpenLimited).
func (t *Server) openHTTPStreamLimited(ctx context.Context, w http.ResponseWriter, r *http.Request, u chat.User, cursor, transport string, limit int) (*fanout.Conn, bool, bool) {
	release, ok := t.admit()
	if !ok {
		t.writeBusy(w, r)
		return nil, false, false
	}
	t.makeRoom(u.ID)
	conn := t.newConn(u.ID, transport)
	conn.Beats = transport == "sse"
	cut, err := t.hub.OpenLimited(ctx, conn, cursor, t.cfg.MaxConnsPerUser, limit)
	release()
	if err != nil {
		t.writeErr(w, r, err)
		return nil, false, false
	}
	t.metrics.connections.WithLabelValues(transport).Inc()
	return conn, cut, true
}

func (t *Server) closeHTTPStream(conn *fanout.Conn, transport string) {
	t.hub.Unregister(conn)
	t.metrics.connections.WithLabelValues(transport).Dec()
}

package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
)

const sseWriteTimeout = 10 * time.Second

// serveSSE streams events as Server-Sent Events. Each durable event's id is
// its cursor, so EventSource's Last-Event-ID resumes exactly.
func (g *Gateway) serveSSE(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	cursor := r.URL.Query().Get("cursor")
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		cursor = last
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	conn, ok := g.openHTTPStream(ctx, w, r, u, cursor, "sse")
	if !ok {
		return
	}
	defer g.closeHTTPStream(conn, "sse")

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var out bytes.Buffer
	var one, id []byte
	out.WriteString("retry: 2000\n\n")
	// The ready object carries the cursor as its id too, so an EventSource
	// that reconnects before any event still resumes where it was.
	writeSSE(&out, "ready", conn.AppendCursor(nil), conn.ReadyFrame())
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
	for {
		items, err := conn.Next(ctx, buf)
		switch {
		case errors.Is(err, fanout.ErrTooSlow):
			g.metrics.slowClosed.Inc()
			out.WriteString("event: error\ndata: {\"type\":\"error\",\"error\":{\"code\":\"too_slow\",\"message\":\"too slow to keep up; resume with your cursor\"}}\n\n")
			flush()
			return
		case errors.Is(err, fanout.ErrClosed):
			out.WriteString("event: close\ndata: {\"type\":\"close\",\"reason\":\"server going away; resume with your cursor\"}\n\n")
			flush()
			return
		case err != nil:
			return
		}
		buf = items
		n := 0
		for _, it := range items {
			if it.Kind == fanout.KindHeartbeat {
				out.WriteString(": ping\n\n")
				continue
			}
			var ok bool
			if one, ok = conn.Render(one[:0], it); !ok {
				continue
			}
			id = id[:0]
			if it.Kind == fanout.KindEvent {
				id = conn.AppendCursor(id)
			}
			writeSSE(&out, it.Type, id, one)
			n++
		}
		if out.Len() > 0 {
			if !flush() {
				return
			}
			g.metrics.wrote("sse", items, n)
		}
		clear(items)
		if out.Cap() > 256<<10 {
			out = bytes.Buffer{}
		}
	}
}

// heartbeats asks every SSE stream for its comment line, from one ticker
// for all of them, until ctx is done.
func (g *Gateway) heartbeats(ctx context.Context) {
	tick := time.NewTicker(g.cfg.SSEHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		g.hub.Each(func(c *fanout.Conn) {
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

// servePoll answers a long-poll: events after the cursor at once, or the
// first to arrive within wait seconds, or none.
func (g *Gateway) servePoll(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	q := r.URL.Query()
	wait, err := intParam(q, "wait", 25, 0, 55)
	if err != nil {
		g.writeErr(w, r, err)
		return
	}
	cursor := q.Get("cursor")
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	conn, ok := g.openHTTPStream(ctx, w, r, u, cursor, "longpoll")
	if !ok {
		return
	}
	defer g.closeHTTPStream(conn, "longpoll")

	const maxEvents = 500
	events := make([]rawJSON, 0)
	if cursor != "" {
		deadline := time.Now().Add(time.Duration(wait) * time.Second)
		var buf []*fanout.Item
		wctx, wcancel := context.WithDeadline(ctx, deadline)
		defer wcancel()
	collect:
		for len(events) < maxEvents {
			if len(events) > 0 && !conn.Pending() {
				break // answer the first events to arrive at once
			}
			items, err := conn.Next(wctx, buf)
			if err != nil {
				break // wait elapsed, closed or too slow: the cursor resumes the rest
			}
			buf = items
			for _, it := range items {
				if len(events) >= maxEvents {
					break collect // the rest comes on the next poll, from the cursor
				}
				if one, ok := conn.Render(nil, it); ok {
					events = append(events, rawJSON(one))
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "cursor": conn.Cursor()})
	if len(events) > 0 {
		g.metrics.wrote("longpoll", nil, len(events))
	}
}

// openHTTPStream opens a connection for an SSE or long-poll request,
// answering the error itself when it cannot.
func (g *Gateway) openHTTPStream(ctx context.Context, w http.ResponseWriter, r *http.Request, u chat.User, cursor, transport string) (*fanout.Conn, bool) {
	conn := g.newConn(u.ID)
	conn.Beats = transport == "sse"
	if err := g.hub.Open(ctx, conn, cursor, g.cfg.MaxConnsPerUser); err != nil {
		g.writeErr(w, r, err)
		return nil, false
	}
	g.metrics.connections.WithLabelValues(transport).Inc()
	return conn, true
}

func (g *Gateway) closeHTTPStream(conn *fanout.Conn, transport string) {
	g.hub.Unregister(conn)
	g.metrics.connections.WithLabelValues(transport).Dec()
}

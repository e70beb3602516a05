package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/parleychat/parley/chat"
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
	out.WriteString("retry: 2000\n\n")
	// The ready object carries the cursor as its id too, so an EventSource
	// that reconnects before any event still resumes where it was.
	writeSSE(&out, "ready", conn.cursor.Encode(), conn.readyFrame())
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
	beat := time.NewTicker(g.cfg.SSEHeartbeat)
	defer beat.Stop()
	var buf []item
	var one []byte
	for {
		nctx, ncancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-beat.C:
				ncancel()
			case <-nctx.Done():
			}
		}()
		items, err := conn.next(nctx, buf)
		ncancel()
		switch {
		case errors.Is(err, errTooSlow):
			g.metrics.slowClosed.Inc()
			out.WriteString("event: error\ndata: {\"type\":\"error\",\"error\":{\"code\":\"too_slow\",\"message\":\"too slow to keep up; resume with your cursor\"}}\n\n")
			flush()
			return
		case errors.Is(err, errClosed):
			out.WriteString("event: close\ndata: {\"type\":\"close\",\"reason\":\"server going away; resume with your cursor\"}\n\n")
			flush()
			return
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			out.WriteString(": ping\n\n")
			if !flush() {
				return
			}
			continue
		}
		buf = items
		for _, it := range items {
			if it.typ == "mark" {
				conn.cursor.Advance(it.partition, it.position)
				continue
			}
			var ok bool
			if one, ok = conn.render(one[:0], it); !ok {
				continue
			}
			id := ""
			if it.durable {
				id = conn.cursor.Encode()
			}
			writeSSE(&out, it.typ, id, one)
		}
		if out.Len() > 0 && !flush() {
			return
		}
	}
}

func writeSSE(out *bytes.Buffer, typ, id string, data []byte) {
	if id != "" {
		out.WriteString("id: ")
		out.WriteString(id)
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
		var buf []item
	collect:
		for len(events) < maxEvents {
			if len(events) > 0 && !conn.pending() {
				break // answer the first events to arrive at once
			}
			wctx, wcancel := context.WithDeadline(ctx, deadline)
			items, err := conn.next(wctx, buf)
			wcancel()
			if err != nil {
				break // wait elapsed, closed or too slow: the cursor resumes the rest
			}
			buf = items
			for _, it := range items {
				if it.typ == "mark" {
					conn.cursor.Advance(it.partition, it.position)
					continue
				}
				if len(events) >= maxEvents {
					break collect // the rest comes on the next poll
				}
				if one, ok := conn.render(nil, it); ok {
					events = append(events, rawJSON(one))
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "cursor": conn.cursor.Encode()})
}

// openHTTPStream opens a connection for an SSE or long-poll request,
// answering the error itself when it cannot.
func (g *Gateway) openHTTPStream(ctx context.Context, w http.ResponseWriter, r *http.Request, u chat.User, cursor, transport string) (*Conn, bool) {
	conn := g.newConn(u.ID)
	if err := g.open(ctx, conn, cursor); err != nil {
		g.writeErr(w, r, err)
		return nil, false
	}
	g.metrics.connections.WithLabelValues(transport).Inc()
	return conn, true
}

func (g *Gateway) closeHTTPStream(conn *Conn, transport string) {
	g.hub.unregister(conn)
	g.metrics.connections.WithLabelValues(transport).Dec()
}

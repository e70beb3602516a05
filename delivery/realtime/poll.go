package realtime

import (
	"net/http"
	"time"

	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
)

// servePoll answers a long-poll: events after the cursor at once, or the
// first to arrive within wait seconds, or none.
func (t *Server) servePoll(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	q := r.URL.Query()
	wait, err := httpx.IntParam(q, "wait", 25, 0, 55)
	if err != nil {
		t.writeErr(w, r, err)
		return
	}
	cursor := q.Get("cursor")
	ctx := r.Context()
	// The opening reads the store on a goroutine of its own: the deep
	// stack it needs is not kept by a poll that then waits for long.
	// The replay is read only up to one answer (maxEvents): a client far
	// behind pages through it, each poll reading what it answers.
	const maxEvents = 500
	var conn *fanout.Conn
	var ok, cut bool
	opened := make(chan struct{})
	go func() {
		defer close(opened)
		conn, cut, ok = t.openHTTPStreamLimited(ctx, w, r, u, cursor, "longpoll", maxEvents)
	}()
	<-opened
	if !ok {
		return
	}
	defer t.closeHTTPStream(conn, "longpoll")

	events := make([]httpx.RawJSON, 0)
	var answered []*fanout.Item // for the events_to_socket hop
	if cursor != "" {
		// A timer, not a context with a deadline: that one would cost a
		// waiting poll a context, its Done channel and a place among the
		// request context's children.
		timer := time.NewTimer(time.Duration(wait) * time.Second)
		defer timer.Stop()
		var buf []*fanout.Item
	collect:
		for len(events) < maxEvents {
			if len(events) > 0 && !conn.Pending() {
				break // answer the first events to arrive at once
			}
			if cut && !conn.Replaying() {
				break // live items would move the cursor past events not yet replayed
			}
			items, err := conn.NextUntil(ctx.Done(), timer.C, buf)
			if err != nil {
				break // wait elapsed, closed or too slow: the cursor resumes the rest
			}
			buf = items
			for _, it := range items {
				if len(events) >= maxEvents {
					break collect // the rest comes on the next poll, from the cursor
				}
				if one, ok := conn.Render(nil, it); ok {
					events = append(events, httpx.RawJSON(one))
					answered = append(answered, it)
				}
			}
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"events": events, "cursor": conn.Cursor()})
	if len(events) > 0 {
		t.metrics.wrote("longpoll", answered, len(events))
	}
}

package realtime

import (
	"net/http"
	"sync"
	"time"

	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
)

// servePoll answers a long-poll: events after the cursor at once, or the
// first to arrive within wait seconds, or none.
//
// A poll's registration outlives its answer for pollKeep (see pollKeeper):
// the client's next poll, with the cursor just answered, takes it over and
// is served from memory, neither reading the store nor registering again;
// events that arrived in between are queued on it.
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
	// The replay is read only up to one answer (maxEvents): a client far
	// behind pages through it, each poll reading what it answers.
	const maxEvents = 500
	var conn *fanout.Conn
	var cut bool
	if cursor != "" {
		conn = t.polls.take(t, u.ID, cursor)
	}
	if conn != nil {
		t.metrics.connections.WithLabelValues("longpoll").Inc()
	} else {
		t.makeRoom(u.ID)
		// The opening reads the store on a goroutine of its own: the deep
		// stack it needs is not kept by a poll that then waits for long.
		var ok bool
		opened := make(chan struct{})
		go func() {
			defer close(opened)
			conn, cut, ok = t.openHTTPStreamLimited(ctx, w, r, u, cursor, "longpoll", maxEvents)
		}()
		<-opened
		if !ok {
			return
		}
	}

	events := make([]httpx.RawJSON, 0)
	var answered []*fanout.Item // for the events_to_socket hop
	var left []*fanout.Item     // taken but not answered: kept for the next poll
	broken := false
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
				broken = err == fanout.ErrClosed || err == fanout.ErrTooSlow
				break // wait elapsed, closed or too slow: the cursor resumes the rest
			}
			buf = items
			for i, it := range items {
				if len(events) >= maxEvents {
					left = items[i:]
					break collect // the rest comes on the next poll
				}
				if one, ok := conn.Render(nil, it); ok {
					events = append(events, httpx.RawJSON(one))
					answered = append(answered, it)
				}
			}
		}
	}
	next := conn.Cursor()
	t.metrics.connections.WithLabelValues("longpoll").Dec()
	// Kept only when the next poll can continue exactly where this answer
	// ends: not after a cut replay (live items queued meanwhile lie beyond
	// events still in the store), not broken, and not when the client left
	// (it never sees this cursor).
	if cut || broken || ctx.Err() != nil || !t.polls.keep(t, u.ID, next, conn, left) {
		t.hub.Unregister(conn)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"events": events, "cursor": next})
	if len(events) > 0 {
		t.metrics.wrote("longpoll", answered, len(events))
	}
}

// pollKeep is how long a long-poll's registration waits for the client's
// next poll; maxKeptPolls bounds those kept per user (several tabs each
// keep one), the oldest dropped first.
const (
	pollKeep     = 5 * time.Second
	maxKeptPolls = 2
)

// pollKeeper holds the registrations of answered long-polls, by user and
// the cursor answered, until the next poll with that cursor takes one over
// or pollKeep passes. A kept connection stays registered with the hub, so
// the events of the gap queue on it (its bounded queue still applies: one
// that overflows is dropped and the next poll reads the store).
type pollKeeper struct {
	mu     sync.Mutex
	byUser map[string][]*keptPoll
}

type keptPoll struct {
	cursor string
	conn   *fanout.Conn
	timer  *time.Timer
}

// keep holds conn for the next poll from cursor; left are items it took
// but did not answer, taken first by that poll. It reports false when the
// server is stopping (the caller unregisters conn).
func (k *pollKeeper) keep(t *Server, user, cursor string, conn *fanout.Conn, left []*fanout.Item) bool {
	if t.sessions.Err() != nil {
		return false
	}
	conn.Unread(left)
	p := &keptPoll{cursor: cursor, conn: conn}
	k.mu.Lock()
	if k.byUser == nil {
		k.byUser = map[string][]*keptPoll{}
	}
	list := k.byUser[user]
	var evicted *keptPoll
	if len(list) >= maxKeptPolls {
		evicted = list[0]
		list = list[1:]
	}
	k.byUser[user] = append(list, p)
	p.timer = time.AfterFunc(pollKeep, func() {
		if k.remove(user, p) {
			t.hub.Unregister(p.conn)
		}
	})
	k.mu.Unlock()
	if evicted != nil {
		evicted.timer.Stop()
		t.hub.Unregister(evicted.conn)
	}
	return true
}

// remove forgets p; it reports false when p was taken or dropped already.
func (k *pollKeeper) remove(user string, p *keptPoll) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	list := k.byUser[user]
	for i, q := range list {
		if q == p {
			list = append(list[:i:i], list[i+1:]...)
			if len(list) == 0 {
				delete(k.byUser, user)
			} else {
				k.byUser[user] = list
			}
			return true
		}
	}
	return false
}

// take returns the registration kept for user's poll from cursor, or nil:
// none, or it broke while kept (then it is unregistered).
func (k *pollKeeper) take(t *Server, user, cursor string) *fanout.Conn {
	k.mu.Lock()
	var found *keptPoll
	for _, p := range k.byUser[user] {
		if p.cursor == cursor {
			found = p
			break
		}
	}
	k.mu.Unlock()
	if found == nil || !k.remove(user, found) {
		return nil
	}
	found.timer.Stop()
	if found.conn.Broken() {
		t.hub.Unregister(found.conn)
		return nil
	}
	return found.conn
}

// dropUser unregisters every registration kept for user.
func (k *pollKeeper) dropUser(t *Server, user string) {
	k.mu.Lock()
	list := k.byUser[user]
	delete(k.byUser, user)
	k.mu.Unlock()
	for _, p := range list {
		p.timer.Stop()
		t.hub.Unregister(p.conn)
	}
}

// kept is the number of registrations kept (tests).
func (k *pollKeeper) kept() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, l := range k.byUser {
		n += len(l)
	}
	return n
}

// makeRoom drops uid's kept long-poll registrations when uid is at its
// connection limit: a registration kept for a poll that may never come
// back never costs the user a connection on any transport.
func (t *Server) makeRoom(uid string) {
	if t.hub.Connections(uid) >= t.cfg.MaxConnsPerUser {
		t.polls.dropUser(t, uid)
	}
}

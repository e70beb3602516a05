package realtime

import (
	"encoding/json"
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
//
// A poll that has waited pollParkAfter for nothing is parked (parkPoll):
// it leaves the HTTP server, and waits in a read of its socket until
// something comes or its wait ends.
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
		// The replay is read only up to one answer (pollMaxEvents): a
		// client far behind pages through it, each poll reading what it
		// answers.
		var ok bool
		opened := make(chan struct{})
		go func() {
			defer close(opened)
			conn, cut, ok = t.openHTTPStreamLimited(ctx, w, r, u, cursor, "longpoll", pollMaxEvents)
		}()
		<-opened
		if !ok {
			return
		}
	}

	a := pollAnswer{events: make([]httpx.RawJSON, 0)}
	if cursor != "" {
		// A timer, not a context with a deadline: that one would cost a
		// waiting poll a context, its Done channel and a place among the
		// request context's children.
		end := time.Now().Add(time.Duration(wait) * time.Second)
		park := !cut && time.Until(end) > pollParkAfter && canPark(w, r)
		first := time.Until(end)
		if park {
			first = pollParkAfter
		}
		timer := time.NewTimer(first)
		a.collect(conn, cut, ctx.Done(), timer.C)
		if park && len(a.events) == 0 && !a.broken && ctx.Err() == nil {
			if t.parkPoll(w, r, u.ID, conn, end) {
				timer.Stop()
				return
			}
			timer.Reset(time.Until(end))
			a.collect(conn, cut, ctx.Done(), timer.C)
		}
		timer.Stop()
	}
	// Kept only when the next poll can continue exactly where this answer
	// ends: not after a cut replay (live items queued meanwhile lie beyond
	// events still in the store), not broken, and not when the client left
	// (it never sees this cursor).
	body := t.finishPoll(u.ID, conn, &a, !cut && !a.broken && ctx.Err() == nil)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	if len(a.events) > 0 {
		t.metrics.wrote("longpoll", a.answered, len(a.events))
	}
}

// pollMaxEvents bounds the events of one answer.
const pollMaxEvents = 500

// pollAnswer is what one poll answers, as collect gathers it.
type pollAnswer struct {
	events   []httpx.RawJSON
	answered []*fanout.Item // for the events_to_socket hop
	left     []*fanout.Item // taken but not answered: kept for the next poll
	broken   bool           // the connection was closed or overflowed
}

// collect takes conn's items into a until it has an answer: the first
// events to arrive (with those that keep arriving at once), pollMaxEvents,
// or done or timeout (nil never fires; closed takes only what waits). cut
// says the replay was cut: live items then wait for the next poll.
func (a *pollAnswer) collect(conn *fanout.Conn, cut bool, done <-chan struct{}, timeout <-chan time.Time) {
	var buf []*fanout.Item
	for len(a.events) < pollMaxEvents {
		if len(a.events) > 0 && !conn.Pending() {
			return // answer the first events to arrive at once
		}
		if cut && !conn.Replaying() {
			return // live items would move the cursor past events not yet replayed
		}
		items, err := conn.NextUntil(done, timeout, buf)
		if err != nil {
			a.broken = err == fanout.ErrClosed || err == fanout.ErrTooSlow
			return // wait elapsed, closed or too slow: the cursor resumes the rest
		}
		buf = items
		for i, it := range items {
			if len(a.events) >= pollMaxEvents {
				a.left = items[i:]
				return // the rest comes on the next poll
			}
			if one, ok := conn.Render(nil, it); ok {
				a.events = append(a.events, httpx.RawJSON(one))
				a.answered = append(a.answered, it)
			}
		}
	}
}

// finishPoll ends a poll's use of conn, keeping it for the next poll
// when keep and the server is not stopping, and returns the answer's JSON
// (its status is always 200).
func (t *Server) finishPoll(user string, conn *fanout.Conn, a *pollAnswer, keep bool) []byte {
	next := conn.Cursor()
	t.metrics.connections.WithLabelValues("longpoll").Dec()
	if !keep || !t.polls.keep(t, user, next, conn, a.left) {
		t.hub.Unregister(conn)
	}
	return pollBody(next, a.events)
}

// pollBody is an answer's JSON, {"cursor":…,"events":[…]}, put together
// from its parts: the events are rendered JSON already, and encoding/json
// would check and copy every byte of them again.
func pollBody(next string, events []httpx.RawJSON) []byte {
	cursor, _ := json.Marshal(next) // a string always encodes
	n := len(`{"cursor":,"events":[]}`) + len(cursor) + len(events)
	for _, e := range events {
		n += len(e)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"cursor":`...)
	b = append(b, cursor...)
	b = append(b, `,"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, "]}"...)
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

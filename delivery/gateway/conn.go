package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/chat"
)

// errTooSlow means a connection's queue overflowed: it is closed (1013)
// and the client resumes by cursor.
var errTooSlow = errors.New("connection too slow to keep up")

// errClosed means the connection was closed by the server.
var errClosed = errors.New("connection closed")

// Conn is one realtime connection of one user, on any transport. The hub
// enqueues items without blocking; the transport's writer drains them.
type Conn struct {
	user    string
	session string
	max     int

	mu       sync.Mutex
	queue    []item
	overflow bool
	closed   bool
	notify   chan struct{}
	done     chan struct{}
	code     int
	reason   string

	// keepalive, if set, pings the client (WebSocket); the gateway's
	// keepalive ticker calls it.
	keepalive func()
	// onOverflow, if set, is called once when the queue overflows.
	onOverflow func()

	// Owned by the writer goroutine.
	cursor chat.Cursor
	replay []item
}

func newConn(user string, maxQueue int) *Conn {
	return &Conn{user: user, session: chat.NewID("ses"), max: maxQueue, notify: make(chan struct{}, 1), done: make(chan struct{})}
}

// newConn returns a connection whose overflows are counted.
func (g *Gateway) newConn(user string) *Conn {
	c := newConn(user, g.cfg.QueueSize)
	c.onOverflow = g.metrics.overflows.Inc
	return c
}

func (c *Conn) enqueue(it item) {
	c.mu.Lock()
	if c.closed || c.overflow {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.max {
		c.overflow = true
		c.queue = nil
		if c.onOverflow != nil {
			go c.onOverflow()
		}
	} else {
		c.queue = append(c.queue, it)
	}
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// close stops the connection as the server goes away (1001); next
// returns errClosed.
func (c *Conn) close() { c.closeWith(1001, "server going away; resume with your cursor") }

// closeWith stops the connection with a WebSocket close code and reason.
func (c *Conn) closeWith(code int, reason string) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.code, c.reason = code, reason
		close(c.done)
	}
	c.mu.Unlock()
}

func (c *Conn) closeCode() websocket.StatusCode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return websocket.StatusCode(c.code)
}

func (c *Conn) closeReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// next waits for queued items and returns them all (the writer coalesces
// them into one write). Replayed items come first.
func (c *Conn) next(ctx context.Context, buf []item) ([]item, error) {
	if len(c.replay) > 0 {
		n := min(len(c.replay), 512)
		buf = append(buf[:0], c.replay[:n]...)
		c.replay = c.replay[n:]
		return buf, nil
	}
	for {
		c.mu.Lock()
		switch {
		case c.overflow:
			c.mu.Unlock()
			return nil, errTooSlow
		case len(c.queue) > 0: // drained even when closed: a last error frame goes out
			buf = append(buf[:0], c.queue...)
			c.queue = c.queue[:0]
			if cap(c.queue) > 1024 {
				c.queue = nil // do not keep a burst's memory on an idle connection
			}
			c.mu.Unlock()
			return buf, nil
		case c.closed:
			c.mu.Unlock()
			return nil, errClosed
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
		case <-c.notify:
		}
	}
}

// pending reports whether items wait.
func (c *Conn) pending() bool {
	if len(c.replay) > 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) > 0 || c.overflow
}

// render appends the client bytes of it to dst, advancing the cursor; it
// returns dst unchanged for a durable event the client already has.
func (c *Conn) render(dst []byte, it item) ([]byte, bool) {
	if !it.durable {
		return append(dst, it.data...), true
	}
	if !c.cursor.Advance(it.partition, it.position) {
		return dst, false
	}
	dst = append(dst, it.data...)
	dst = append(dst, `,"cursor":"`...)
	dst = append(dst, c.cursor.Encode()...)
	dst = append(dst, `"}`...)
	return dst, true
}

// readyFrame is the first thing a connection sends.
func (c *Conn) readyFrame() []byte {
	b, _ := json.Marshal(map[string]string{"type": "ready", "user_id": c.user, "cursor": c.cursor.Encode(), "session_id": c.session})
	return b
}

// maxReplay bounds the events one resume replays at once; a cursor further
// behind is refused as expired and the client reloads over REST.
const maxReplay = 100_000

// open registers c with the hub and prepares its replay: every durable
// event after the cursor up to the frontier snapshot, per partition in
// position order; everything after the snapshot arrives live. Without a
// cursor, the connection starts at the frontier.
func (g *Gateway) open(ctx context.Context, c *Conn, cursor string) error {
	var from chat.Cursor
	if cursor != "" {
		var err error
		from, err = chat.DecodeCursor(cursor, g.deployment, g.partitions)
		if err != nil {
			return err
		}
	}
	select {
	case <-g.hub.Ready():
	case <-ctx.Done():
		return ctx.Err()
	}
	front, ok := g.hub.register(c, g.cfg.MaxConnsPerUser)
	if !ok {
		return chat.Errorf(chat.CodeRateLimited, "too many connections for this user")
	}
	ms, err := g.store.Memberships(ctx, c.user)
	if err != nil {
		g.hub.unregister(c)
		return err
	}
	c.cursor = chat.NewCursor(g.deployment)
	if cursor == "" {
		for _, m := range ms {
			p := chat.PartitionOf(m.ConversationID, g.partitions)
			c.cursor.Advance(p, front[p])
		}
		return nil
	}
	for p, v := range from.Positions {
		c.cursor.Positions[p] = v
	}
	var evs []chat.Event
	for _, m := range ms {
		p := chat.PartitionOf(m.ConversationID, g.partitions)
		lo := max(from.Positions[p], m.JoinedPosition-1)
		hi := front[p]
		if !m.Active {
			hi = min(hi, m.LeftPosition)
		}
		if lo >= hi {
			continue
		}
		got, err := g.store.EventsAfter(ctx, m.ConversationID, lo, hi, maxReplay+1)
		if err != nil {
			g.hub.unregister(c)
			return err
		}
		evs = append(evs, got...)
		if len(evs) > maxReplay {
			g.hub.unregister(c)
			return chat.Errorf(chat.CodeCursorExpired, "cursor is too far behind; reload over REST")
		}
	}
	slices.SortFunc(evs, func(a, b chat.Event) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		switch {
		case a.Position < b.Position:
			return -1
		case a.Position > b.Position:
			return 1
		}
		return 0
	})
	c.replay = make([]item, 0, len(evs)+1)
	for _, ev := range evs {
		c.replay = append(c.replay, item{data: wireEvent(ev), partition: ev.Partition, position: ev.Position, durable: true, typ: ev.Type})
	}
	// Partitions the user has conversations in are now known up to the
	// snapshot: record that, so the client's next cursor is current even
	// when nothing was replayed there.
	for _, m := range ms {
		p := chat.PartitionOf(m.ConversationID, g.partitions)
		if front[p] > from.Positions[p] {
			c.replay = append(c.replay, item{partition: p, position: front[p], durable: true, typ: "mark"})
		}
	}
	return nil
}

// renderBatch renders items into one newline-separated buffer. Marks move
// the cursor without output.
func (c *Conn) renderBatch(dst []byte, items []item) []byte {
	for _, it := range items {
		if it.typ == "mark" {
			c.cursor.Advance(it.partition, it.position)
			continue
		}
		n := len(dst)
		if n > 0 {
			dst = append(dst, '\n')
		}
		var ok bool
		if dst, ok = c.render(dst, it); !ok {
			dst = dst[:n]
		}
	}
	return dst
}

package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/chat"
)

// ErrTooSlow means a connection's queue overflowed: the transport closes it
// (WebSocket 1013) and the client resumes by cursor.
var ErrTooSlow = errors.New("connection too slow to keep up")

// ErrClosed means the connection was closed by the server or its reader;
// everything queued before has been taken.
var ErrClosed = errors.New("connection closed")

// Conn is one realtime connection of one user, on any transport. The hub
// queues items on it without blocking; the transport drains them, either
// from a goroutine of its own (Next) or from a writer started only while
// something waits (StartWriter), so an idle connection needs none.
//
// A connection holds two lanes: control items (acks, pongs, errors) and
// everything else. Control items are always taken first, so an answer to
// the client never waits behind queued events. Each lane is bounded by the
// queue size; a connection whose queue overflows is dropped (ErrTooSlow),
// never waited for.
type Conn struct {
	user    string
	session string
	max     int

	// OnOverflow, if set before the connection is registered, is called
	// once (on its own goroutine) when the queue overflows.
	OnOverflow func()
	// Keepalive, if set, pings the client (WebSocket); the gateway's
	// keepalive ticker calls it.
	Keepalive func()
	// Beats says the transport wants heartbeat items (SSE).
	Beats bool
	// Transport, set before the connection is registered, labels its
	// queue in the hub's QueueCollector.
	Transport string

	mu       sync.Mutex
	queue    []*Item
	control  []*Item
	beat     bool // a heartbeat waits in control
	overflow bool
	closed   bool
	code     int
	reason   string
	start    func() // on-demand writer; nil when the transport waits in Next
	writing  bool   // the on-demand writer runs (or is starting)
	// notify wakes a transport waiting in NextUntil; done is Done's. Both
	// are made on first use (an on-demand writer's connection needs
	// neither), notify through notifyChan.
	notify atomic.Pointer[chan struct{}]
	done   chan struct{}
	// waker, when set (SetWaker), is called wherever a transport waiting
	// in NextUntil is woken.
	waker atomic.Pointer[func()]

	// stopPages ends the reads of the replay's later pages (pager.ctx).
	stopPages context.CancelFunc

	mark uint64 // the hub's dispatch generation that last touched c (hub lock)

	// Owned by the writer.
	cursor chat.Cursor
	replay []*Item
	pages  *pager // the replay's pages not yet read; nil once every one is
}

// NewConn returns a connection of user whose queue holds maxQueue items.
func NewConn(user string, maxQueue int) *Conn {
	return &Conn{user: user, session: chat.NewID("ses"), max: maxQueue}
}

// User is the connection's user.
func (c *Conn) User() string { return c.user }

// Session is the connection's session id (sent in ready).
func (c *Conn) Session() string { return c.session }

// wakeup is what a push asks of its caller once it holds no lock.
type wakeup uint8

const (
	wakeNone   wakeup = iota // the writer runs, or the item was dropped
	wakeNotify               // wake a transport waiting in Next
	wakeStart                // start the on-demand writer
)

// push queues it and says how to wake the transport, deciding under the
// same lock (an on-demand writer is marked running at once, so one read
// starts it once).
func (c *Conn) push(it *Item) wakeup {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.overflow {
		return wakeNone
	}
	lane := &c.queue
	if it.Kind == KindControl || it.Kind == KindHeartbeat {
		lane = &c.control
	}
	if len(*lane) >= c.max {
		c.overflow = true
		c.queue, c.control = nil, nil
		c.endPages()
		if c.OnOverflow != nil {
			go c.OnOverflow()
		}
	} else {
		*lane = append(*lane, it)
	}
	return c.claimWake()
}

// claimWake (c.mu held) says how to wake the transport.
func (c *Conn) claimWake() wakeup {
	switch {
	case c.start == nil:
		return wakeNotify
	case c.writing:
		return wakeNone
	}
	c.writing = true
	return wakeStart
}

// kick wakes the transport as push or claimWake said, holding no lock.
func (c *Conn) kick(w wakeup) {
	switch w {
	case wakeStart:
		c.start() // set before the claim that said so, and never again
	case wakeNotify:
		if n := c.notify.Load(); n != nil {
			select {
			case *n <- struct{}{}:
			default:
			}
		}
		if f := c.waker.Load(); f != nil {
			(*f)()
		}
	}
}

// SetWaker makes f be called, holding no lock, whenever something would
// wake a transport waiting in NextUntil: an item queued, the connection
// closed or its queue overflowed. A transport that waits without a
// goroutine of its own in NextUntil (a parked long-poll waits in a read
// of its socket) sets it before it checks Pending and Broken, so nothing
// that comes after that check goes unnoticed; nil removes it. f may still
// be running, or be called once more, just after SetWaker(nil) returns.
func (c *Conn) SetWaker(f func()) {
	if f == nil {
		c.waker.Store(nil)
		return
	}
	c.waker.Store(&f)
}

// wake wakes the transport unless its writer runs.
func (c *Conn) wake() {
	c.mu.Lock()
	w := c.claimWake()
	c.mu.Unlock()
	c.kick(w)
}

// Enqueue queues it and wakes the transport.
func (c *Conn) Enqueue(it *Item) { c.kick(c.push(it)) }

// Control queues an answer to the client (complete JSON) ahead of every
// queued event.
func (c *Conn) Control(data []byte) { c.Enqueue(ControlItem(data)) }

// Beat queues a heartbeat unless one waits already.
func (c *Conn) Beat() {
	c.mu.Lock()
	if c.beat {
		c.mu.Unlock()
		return
	}
	c.beat = true
	c.mu.Unlock()
	c.Enqueue(heartbeat)
}

// Close stops the connection as the server goes away (1001).
func (c *Conn) Close() {
	c.CloseWith(chat.CloseGoingAway, "server going away; resume with your cursor")
}

// CloseWith stops the connection with a WebSocket close code and reason.
// Items queued before are still taken (but not live events queued behind
// a replay not yet read to its end: see readPage); then Next and Take
// return ErrClosed.
func (c *Conn) CloseWith(code int, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.code, c.reason = code, reason
	if c.done != nil {
		close(c.done)
	}
	c.endPages()
	c.mu.Unlock()
	c.wake()
}

// endPages (c.mu held) stops the reads of the replay's later pages, one
// under way included: c ended (closed, overflowed or unregistered) and
// delivers no more of its replay.
func (c *Conn) endPages() {
	if c.stopPages != nil {
		c.stopPages()
	}
}

// Done is closed once the connection is closed.
func (c *Conn) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.closed {
			close(c.done)
		}
	}
	return c.done
}

// notifyChan returns the channel that wakes NextUntil, made on first use.
// A push before it exists wakes nobody: NextUntil makes it before it
// takes, so it sees such an item in its take.
func (c *Conn) notifyChan() chan struct{} {
	if n := c.notify.Load(); n != nil {
		return *n
	}
	n := make(chan struct{}, 1)
	if c.notify.CompareAndSwap(nil, &n) {
		return n
	}
	return *c.notify.Load()
}

// CloseCode is the code CloseWith was given.
func (c *Conn) CloseCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

// CloseReason is the reason CloseWith was given.
func (c *Conn) CloseReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// maxReplayBatch bounds the replayed items one take returns.
const maxReplayBatch = 512

// keepQueue is the queue capacity an idle connection keeps; a burst's
// bigger queue is released once drained.
const keepQueue = 16

// take moves everything queued into buf: control items first, then
// events. Replayed items come before anything else, the replay's next page
// read once the last is taken. It returns no items and no error when
// nothing waits; the caller holds no lock.
func (c *Conn) take(buf []*Item, idle func()) ([]*Item, error) {
	buf = buf[:0]
	if len(c.replay) == 0 && c.pages != nil {
		c.readPage()
	}
	if len(c.replay) > 0 {
		n := min(len(c.replay), maxReplayBatch)
		buf = append(buf, c.replay[:n]...)
		clear(c.replay[:n]) // the page's array holds no item once taken
		c.replay = c.replay[n:]
		if len(c.replay) == 0 {
			c.replay = nil
		}
		return buf, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.overflow:
		return nil, ErrTooSlow
	case len(c.control) > 0 || len(c.queue) > 0: // drained even when closed: a last error frame goes out
		buf = append(buf, c.control...)
		buf = append(buf, c.queue...)
		clear(c.control)
		clear(c.queue)
		c.control, c.queue = c.control[:0], c.queue[:0]
		c.beat = false
		return buf, nil
	case c.closed:
		return nil, ErrClosed
	}
	if cap(c.queue) > keepQueue {
		c.queue = nil
	}
	if cap(c.control) > keepQueue {
		c.control = nil
	}
	if idle != nil {
		idle()
	}
	return nil, nil
}

// readPage reads the replay's next page into c.replay. A connection
// closed or overflowed reads no more: it has nothing more to deliver, and
// what it queued live must not go out either, since that comes after
// events never replayed and its cursor would skip them. A read that fails
// closes the connection with 1013 for the same reason: the client's
// cursor is after the last event written, and resuming from it misses
// nothing.
func (c *Conn) readPage() {
	pg := c.pages
	if !c.Broken() {
		items, err := pg.next(pg.ctx)
		if err == nil {
			c.replay = items
			if pg.done() {
				c.pages = nil
				pg.stop()
			}
			return
		}
		c.CloseWith(chat.CloseTryAgainLater, ReplayInterrupted)
	}
	c.pages = nil
	pg.stop()
	c.mu.Lock()
	clear(c.queue)
	c.queue = nil
	c.mu.Unlock()
}

// Next waits for queued items and returns them all, for a transport that
// writes them at once (SSE, long-poll). It returns ctx's error when ctx
// ends first.
func (c *Conn) Next(ctx context.Context, buf []*Item) ([]*Item, error) {
	items, err := c.NextUntil(ctx.Done(), nil, buf)
	if err == errStopped {
		err = ctx.Err()
	}
	return items, err
}

// errStopped is NextUntil's answer when done or timeout fired first.
var errStopped = errors.New("stopped waiting")

// NextUntil is Next that stops waiting when done is closed or timeout
// fires (either may be nil), with an error that is neither ErrClosed nor
// ErrTooSlow.
func (c *Conn) NextUntil(done <-chan struct{}, timeout <-chan time.Time, buf []*Item) ([]*Item, error) {
	notify := c.notifyChan()
	for {
		items, err := c.take(buf, nil)
		if err != nil || len(items) > 0 {
			return items, err
		}
		select {
		case <-done:
			return nil, errStopped
		case <-timeout:
			return nil, errStopped
		case <-notify: // also on close and overflow (claimWake)
		}
	}
}

// StartWriter makes c start a writer, by calling start, whenever items
// wait and none runs; the writer drains with Take until it returns
// nothing, and then ends. StartWriter, called once, starts one at once if
// anything waits (replay included).
func (c *Conn) StartWriter(start func()) {
	c.mu.Lock()
	c.start = start
	w := wakeNone
	if len(c.replay) > 0 || c.pages != nil || len(c.queue) > 0 || len(c.control) > 0 || c.closed || c.overflow {
		w = c.claimWake()
	}
	c.mu.Unlock()
	c.kick(w)
}

// Take returns everything queued, for the on-demand writer. When nothing
// waits it returns no items and no error, and the writer must end: the
// next item starts a new one.
func (c *Conn) Take(buf []*Item) ([]*Item, error) {
	return c.take(buf, func() { c.writing = false })
}

// Pending reports whether items wait (replay pages not yet read
// included).
func (c *Conn) Pending() bool {
	if len(c.replay) > 0 || c.pages != nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) > 0 || len(c.control) > 0 || c.overflow
}

// Overflowed reports whether c's queue overflowed: its reader was too
// slow. A transport whose write then fails (a reader that does not read
// fills its socket, so even the close frame cannot be written) counts it
// as a slow close, not as a failed write.
func (c *Conn) Overflowed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.overflow
}

// Broken reports whether c can deliver nothing more: closed, or its queue
// overflowed. A connection kept between long-polls is dropped when broken.
func (c *Conn) Broken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed || c.overflow
}

// Unread puts items taken but not written back in front of everything
// else, in the same order, for the next take: a long-poll that answers
// only part of what it took keeps the rest for the next poll. Only the
// writer calls it.
func (c *Conn) Unread(items []*Item) {
	if len(items) == 0 {
		return
	}
	c.replay = append(slices.Clone(items), c.replay...)
}

// Render appends the client bytes of it to dst, advancing the cursor. It
// reports false, with dst unchanged, for what renders nothing: a durable
// event the client already has, a mark, a heartbeat.
func (c *Conn) Render(dst []byte, it *Item) ([]byte, bool) {
	switch it.Kind {
	case KindEvent:
		b := it.JSON()
		if b == nil || !c.cursor.Advance(it.Partition, it.Position) {
			return dst, false
		}
		dst = append(dst, b...)
		dst = append(dst, `,"cursor":"`...)
		dst = c.cursor.AppendEncode(dst)
		return append(dst, `"}`...), true
	case KindMark:
		c.cursor.Advance(it.Partition, it.Position)
		return dst, false
	case KindHeartbeat:
		return dst, false
	}
	b := it.JSON()
	if b == nil {
		return dst, false
	}
	return append(dst, b...), true
}

// RenderBatch renders items into one buffer, objects separated by '\n'
// (a WebSocket frame of several events).
func (c *Conn) RenderBatch(dst []byte, items []*Item) []byte {
	for _, it := range items {
		n := len(dst)
		if n > 0 {
			dst = append(dst, '\n')
		}
		var ok bool
		if dst, ok = c.Render(dst, it); !ok {
			dst = dst[:n]
		}
	}
	return dst
}

// AppendCursor appends the connection's cursor as the writer last moved it.
func (c *Conn) AppendCursor(dst []byte) []byte { return c.cursor.AppendEncode(dst) }

// Cursor returns the connection's cursor as the writer last moved it.
func (c *Conn) Cursor() string { return c.cursor.Encode() }

// ReadyFrame is the first thing a connection sends.
func (c *Conn) ReadyFrame() []byte {
	b, _ := json.Marshal(map[string]string{"type": "ready", "user_id": c.user, "cursor": c.cursor.Encode(), "session_id": c.session})
	return b
}

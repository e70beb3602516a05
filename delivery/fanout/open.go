package fanout

import (
	"cmp"
	"context"
	"slices"

	"github.com/parleychat/parley/chat"
)

// MaxReplay bounds the events one resume replays; a cursor further behind
// is refused as expired and the client reloads over REST.
const MaxReplay = 100_000

// Open registers c and prepares its replay: every durable event after the
// cursor up to the frontier snapshot, per partition in position order;
// everything after the snapshot arrives live. c holds one page of the
// replay at a time (replayPage events): its writer reads the next once it
// took the last, and takes nothing live before the replay's end. A page
// that cannot be read closes c with 1013 (ReplayInterrupted). Without a
// cursor, the connection starts at the frontier. It fails with
// CodeCursorExpired for a foreign, broken or too old cursor (one more
// than MaxReplay events behind) and CodeRateLimited beyond maxPerUser
// connections; on failure c is not registered.
func (h *Hub) Open(ctx context.Context, c *Conn, cursor string, maxPerUser int) error {
	_, err := h.OpenLimited(ctx, c, cursor, maxPerUser, 0)
	return err
}

// OpenLimited is Open with a replay of at most limit events (none when
// limit is 0), for a transport that answers a bounded page and then ends
// (long-poll): each conversation's events are read only up to what the
// page can hold. When more events wait, cut is true and the replay is the
// exact prefix of the full one, in the same order, ending with a mark at
// its last event; the caller must then stop once the replay is drained,
// since a live item taken after it would move the cursor past events not
// replayed. The next open from the cursor continues where this one ended.
// A limited replay never refuses a cursor as too far behind: it pages.
func (h *Hub) OpenLimited(ctx context.Context, c *Conn, cursor string, maxPerUser, limit int) (cut bool, err error) {
	partitions := len(h.front)
	var from chat.Cursor
	if cursor != "" {
		from, err = chat.DecodeCursor(cursor, h.deployment, partitions)
		if err != nil {
			return false, err
		}
	}
	// Once the hub is ready ctx is not waited on: asking a cancelable
	// context for its Done channel makes one, kept as long as the context
	// (a WebSocket's session context lives as long as the connection).
	select {
	case <-h.Ready():
	default:
		select {
		case <-h.Ready():
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	front, ok := h.Register(c, maxPerUser)
	if !ok {
		return false, chat.Errorf(chat.CodeRateLimited, "too many connections for this user")
	}
	cut, err = h.prepare(ctx, c, cursor != "", from, front, limit)
	if err != nil {
		h.Unregister(c)
		return false, err
	}
	return cut, nil
}

// prepare sets c's cursor and replay; limit > 0 bounds the replay (see
// OpenLimited) and cut says it was bounded.
func (h *Hub) prepare(ctx context.Context, c *Conn, resume bool, from chat.Cursor, front []int64, limit int) (cut bool, err error) {
	partitions := len(front)
	ms, err := h.store.Memberships(ctx, c.user)
	if err != nil {
		return false, err
	}
	c.cursor = chat.NewCursor(h.deployment)
	if !resume {
		for _, m := range ms {
			p := chat.PartitionOf(m.ConversationID, partitions)
			c.cursor.Advance(p, front[p])
		}
		return false, nil
	}
	for p, v := range from.Positions {
		c.cursor.Positions[p] = v
	}
	if limit == 0 {
		return false, h.preparePages(ctx, c, ms, from, front)
	}
	// Each conversation's events after lo come in position order, so with
	// a limit the first limit events of the union of every conversation's
	// first limit+1 are exactly the first limit of the full replay.
	perConv := limit + 1
	var evs []chat.Event
	for _, m := range ms {
		lo, hi := window(m, from, front)
		if lo >= hi {
			continue
		}
		got, err := h.store.EventsAfter(ctx, m.ConversationID, lo, hi, perConv)
		if err != nil {
			return false, err
		}
		evs = append(evs, got...)
	}
	slices.SortFunc(evs, func(a, b chat.Event) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return cmp.Compare(a.Position, b.Position)
	})
	if len(evs) > limit {
		evs = evs[:limit]
		cut = true
	}
	c.replay = make([]*Item, 0, len(evs)+1)
	for _, ev := range evs {
		c.replay = append(c.replay, EventItem(ev, timeZero))
	}
	if cut {
		// Everything up to the last event is replayed (some events render
		// nothing): the mark moves the cursor there, so the next page
		// starts after it even when nothing here rendered.
		last := evs[len(evs)-1]
		c.replay = append(c.replay, &Item{Partition: last.Partition, Position: last.Position, Kind: KindMark})
		return true, nil
	}
	c.replay = append(c.replay, replayMarks(ms, from, front)...)
	if len(c.replay) == 0 {
		c.replay = nil
	}
	return false, nil
}

// preparePages sets c's whole replay, of which c holds one page: the
// writer reads the next (Conn.take) once c.replay is drained. The first
// page is read here, so a store that fails at once fails the open.
func (h *Hub) preparePages(ctx context.Context, c *Conn, ms []chat.Membership, from chat.Cursor, front []int64) error {
	pg := &pager{store: h.store, marks: replayMarks(ms, from, front)}
	var all []*source
	for _, m := range ms {
		if lo, hi := window(m, from, front); lo < hi {
			all = append(all, &source{conv: m.ConversationID, lo: lo, hi: hi})
		}
	}
	if err := pg.start(ctx, all); err != nil {
		return err
	}
	items, err := pg.next(ctx)
	if err != nil {
		return err
	}
	if len(items) > 0 {
		c.replay = items
	}
	if !pg.done() {
		// The later pages are read by the writer, as long as c is open:
		// its end (CloseWith, an overflow, Unregister) stops a read under
		// way, and a close or overflow that came while c opened stops
		// them at once.
		pg.ctx, pg.stop = context.WithCancel(context.Background())
		c.mu.Lock()
		c.stopPages = pg.stop
		if c.closed || c.overflow {
			pg.stop()
		}
		c.mu.Unlock()
		c.pages = pg
	}
	return nil
}

// window is the positions of m's conversation a resume from from
// replays: (lo, hi], empty when lo >= hi. It starts at the cursor or the
// user's latest join and ends at the frontier snapshot or where the user
// left.
func window(m chat.Membership, from chat.Cursor, front []int64) (lo, hi int64) {
	p := chat.PartitionOf(m.ConversationID, len(front))
	lo = max(from.Positions[p], m.JoinedPosition-1)
	hi = front[p]
	if !m.Active {
		hi = min(hi, m.LeftPosition)
	}
	return lo, hi
}

// replayMarks ends a whole replay. Partitions the user has conversations
// in are now known up to the snapshot: the marks record that, so the
// client's next cursor is current even when nothing was replayed there.
func replayMarks(ms []chat.Membership, from chat.Cursor, front []int64) []*Item {
	var marks []*Item
	for _, m := range ms {
		p := chat.PartitionOf(m.ConversationID, len(front))
		if front[p] > from.Positions[p] {
			marks = append(marks, &Item{Partition: p, Position: front[p], Kind: KindMark})
		}
	}
	return marks
}

// Replaying reports whether replayed items are still to be taken, pages
// not yet read included; the writer calls it (after a cut OpenLimited, it
// stops once this is false).
func (c *Conn) Replaying() bool { return len(c.replay) > 0 || c.pages != nil }

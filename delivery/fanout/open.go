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
// everything after the snapshot arrives live. Without a cursor, the
// connection starts at the frontier. It fails with CodeCursorExpired for a
// foreign, broken or too old cursor and CodeRateLimited beyond maxPerUser
// connections; on failure c is not registered.
func (h *Hub) Open(ctx context.Context, c *Conn, cursor string, maxPerUser int) error {
	partitions := len(h.front)
	var from chat.Cursor
	if cursor != "" {
		var err error
		from, err = chat.DecodeCursor(cursor, h.deployment, partitions)
		if err != nil {
			return err
		}
	}
	select {
	case <-h.Ready():
	case <-ctx.Done():
		return ctx.Err()
	}
	front, ok := h.Register(c, maxPerUser)
	if !ok {
		return chat.Errorf(chat.CodeRateLimited, "too many connections for this user")
	}
	if err := h.prepare(ctx, c, cursor != "", from, front); err != nil {
		h.Unregister(c)
		return err
	}
	return nil
}

func (h *Hub) prepare(ctx context.Context, c *Conn, resume bool, from chat.Cursor, front []int64) error {
	partitions := len(front)
	ms, err := h.store.Memberships(ctx, c.user)
	if err != nil {
		return err
	}
	c.cursor = chat.NewCursor(h.deployment)
	if !resume {
		for _, m := range ms {
			p := chat.PartitionOf(m.ConversationID, partitions)
			c.cursor.Advance(p, front[p])
		}
		return nil
	}
	for p, v := range from.Positions {
		c.cursor.Positions[p] = v
	}
	var evs []chat.Event
	for _, m := range ms {
		p := chat.PartitionOf(m.ConversationID, partitions)
		lo := max(from.Positions[p], m.JoinedPosition-1)
		hi := front[p]
		if !m.Active {
			hi = min(hi, m.LeftPosition)
		}
		if lo >= hi {
			continue
		}
		got, err := h.store.EventsAfter(ctx, m.ConversationID, lo, hi, MaxReplay+1)
		if err != nil {
			return err
		}
		evs = append(evs, got...)
		if len(evs) > MaxReplay {
			return chat.Errorf(chat.CodeCursorExpired, "cursor is too far behind; reload over REST")
		}
	}
	slices.SortFunc(evs, func(a, b chat.Event) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return cmp.Compare(a.Position, b.Position)
	})
	c.replay = make([]*Item, 0, len(evs)+len(ms))
	for _, ev := range evs {
		if it := EventItem(ev, timeZero); it.Data != nil {
			c.replay = append(c.replay, it)
		}
	}
	// Partitions the user has conversations in are now known up to the
	// snapshot: record that, so the client's next cursor is current even
	// when nothing was replayed there.
	for _, m := range ms {
		p := chat.PartitionOf(m.ConversationID, partitions)
		if front[p] > from.Positions[p] {
			c.replay = append(c.replay, &Item{Partition: p, Position: front[p], Kind: KindMark})
		}
	}
	if len(c.replay) == 0 {
		c.replay = nil
	}
	return nil
}

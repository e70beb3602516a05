package fanout

import (
	"cmp"
	"container/heap"
	"context"
	"slices"

	"github.com/parleychat/parley/chat"
)

// replayPage is how many replayed events an unlimited open (WebSocket,
// SSE) holds at a time: the writer reads the next page only once the
// previous one is taken, so a client resuming far behind costs one page
// of memory, not its whole backlog.
const replayPage = 1024

// replayPageBytes bounds a page by the approximate size of its events as
// well (eventBytes): 1,024 events of 2,000 characters held 2 MB a page,
// and as much again read ahead, so 50 slow clients resuming in one busy
// conversation held 200 MB between them. A page and each conversation's
// read ahead hold about this much at most, and at least one event.
const replayPageBytes = 256 << 10

// minReplayRead is the fewest events one read of a conversation asks for:
// a user in many conversations would otherwise read a few events a call.
// Each conversation keeps one read ahead of the merge, so a user in more
// than replayPage/minReplayRead conversations holds up to minReplayRead
// events of each, more than a page.
const minReplayRead = 16

// ReplayInterrupted is the close reason of a connection whose replay
// could not be read to its end (close code 1013). The client's cursor is
// right after the last event written, so resuming with it continues
// exactly there.
const ReplayInterrupted = "replay interrupted; resume with your cursor"

// pager reads a replay a page at a time, from the frontier snapshot and
// the memberships read at open, so its pages put together are exactly the
// whole replay: every conversation's events merged in partition and
// position order, then the marks. Each conversation keeps the events read
// from it but not yet paged (at most one read's worth), so every event is
// read from the store once, and the merge needs no more than each
// conversation's next event to pick the next in order. A conversation's
// first read finds its first event by position (EventsAfter); every later
// one reads on by seq (Events), one scan of the store where EventsAfter
// costs more (on Cassandra, a lookup per bucket first).
type pager struct {
	store   chat.Store
	sources sources // those with events read and not yet paged, by next event
	marks   []*Item // the end of the replay
	read    int     // events one read of a conversation asks for

	// ctx bounds the reads of later pages (the open's context bounds the
	// first); stop ends it, as the connection ends (Conn.endPages).
	ctx  context.Context
	stop context.CancelFunc
}

// source is one conversation's events in (lo, hi] not yet paged: buf,
// read already, then those after lo still in the store (none once lo is
// hi). seq is the seq of the last event read into buf, 0 before the
// first read: since a conversation's seqs have no gaps and its positions
// grow with them, the events after lo are those after seq.
type source struct {
	conv   string
	lo, hi int64
	seq    int64
	buf    []chat.Event
}

// fill reads s's next events once buf is empty: the first read those
// after lo up to hi (EventsAfter), each later one those after seq
// (Events), of which it drops any beyond hi. Fewer than asked, or one
// beyond hi, means none are left. It keeps no more than replayPageBytes
// of them (the rest are read again later, after the last kept) and then
// asks for fewer events a read, so a conversation of big messages holds
// about a page's bytes read ahead.
func (pg *pager) fill(ctx context.Context, s *source) error {
	if len(s.buf) > 0 || s.lo >= s.hi {
		return nil
	}
	var evs []chat.Event
	var err error
	if s.seq == 0 {
		evs, err = pg.store.EventsAfter(ctx, s.conv, s.lo, s.hi, pg.read)
	} else {
		evs, err = pg.store.Events(ctx, s.conv, s.seq, pg.read)
	}
	if err != nil {
		return err
	}
	end := len(evs) < pg.read
	if i := slices.IndexFunc(evs, func(ev chat.Event) bool { return ev.Position > s.hi }); i >= 0 {
		clear(evs[i:]) // not replayed: buf's array does not hold them
		evs, end = evs[:i], true
	}
	keep, size := 0, 0
	for keep < len(evs) && (keep == 0 || size < replayPageBytes) {
		size += eventBytes(&evs[keep])
		keep++
	}
	if keep < len(evs) {
		// A copy, so the events not kept are not held by buf's array.
		evs, end = slices.Clone(evs[:keep]), false
		pg.read = max(keep, minReplayRead)
	}
	s.buf = evs
	if end || len(evs) == 0 {
		s.lo = s.hi
		return nil
	}
	last := &evs[len(evs)-1]
	s.lo, s.seq = last.Position, last.Seq
	return nil
}

// eventBytes is about how much memory ev holds: its strings, and the
// fixed part of its structs, guessed.
func eventBytes(ev *chat.Event) int {
	n := 256 + len(ev.ConversationID) + len(ev.EventID) + len(ev.Actor) + len(ev.MessageID) + len(ev.Emoji) + len(ev.UserID)
	if m := ev.Message; m != nil {
		n += 256 + len(m.ID) + len(m.ClientID) + len(m.SenderID) + len(m.Text) + 256*len(m.Attachments)
		for emoji, users := range m.Reactions {
			n += len(emoji) + 32*len(users)
		}
	}
	if c := ev.Conversation; c != nil {
		n += 256 + len(c.Title) + 32*len(c.Members)
	}
	return n
}

// start reads each conversation's first events, and refuses a replay of
// more than MaxReplay events with CodeCursorExpired, without reading them.
func (pg *pager) start(ctx context.Context, all []*source) error {
	pg.read = max(replayPage/max(len(all), 1), minReplayRead)
	total := 0
	for _, s := range all {
		if err := pg.fill(ctx, s); err != nil {
			return err
		}
		n := len(s.buf)
		if s.lo < s.hi {
			var err error
			if n, err = pg.count(ctx, s, MaxReplay-total+1); err != nil {
				return err
			}
		}
		if total += n; total > MaxReplay {
			return chat.Errorf(chat.CodeCursorExpired, "cursor is too far behind; reload over REST")
		}
		if len(s.buf) > 0 {
			pg.sources = append(pg.sources, s)
		}
	}
	heap.Init(&pg.sources)
	return nil
}

// count returns how many events s's window holds, or limit when it holds
// more. A conversation's seqs have no gaps and its positions grow with
// them, so the window's events are one run of seqs from its first: a
// search over seqs, one event read a step, finds its end. The search
// gallops up from what buf holds (doubling), so a window of n events
// costs about 2·log2(n) reads, not log2(limit): a reconnect a few minutes
// behind in many conversations pays a few reads each. (Counting by
// reading would read the whole replay twice, once at open.)
func (pg *pager) count(ctx context.Context, s *source, limit int) (int, error) {
	if limit <= len(s.buf) {
		return limit, nil
	}
	first := s.buf[0].Seq
	// in reports whether the window holds at least n events.
	in := func(n int) (bool, error) {
		evs, err := pg.store.Events(ctx, s.conv, first+int64(n)-2, 1)
		return len(evs) == 1 && evs[0].Position <= s.hi, err
	}
	lo, hi := len(s.buf), 0 // the window holds lo events, not hi
	for n := 2 * lo; hi == 0; n *= 2 {
		n = min(n, limit)
		ok, err := in(n)
		switch {
		case err != nil:
			return 0, err
		case !ok:
			hi = n
		case n == limit:
			return limit, nil
		default:
			lo = n
		}
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := in(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// next returns the replay's next page: up to replayPage events or about
// replayPageBytes of them, then, after the last, the marks.
func (pg *pager) next(ctx context.Context) ([]*Item, error) {
	items := make([]*Item, 0, min(replayPage, pg.buffered())+len(pg.marks))
	for size := 0; len(items) < replayPage && size < replayPageBytes && len(pg.sources) > 0; {
		s := pg.sources[0]
		size += eventBytes(&s.buf[0])
		items = append(items, EventItem(s.buf[0], timeZero))
		s.buf[0] = chat.Event{} // the item has its own copy
		s.buf = s.buf[1:]
		if err := pg.fill(ctx, s); err != nil {
			return nil, err
		}
		if len(s.buf) == 0 {
			heap.Pop(&pg.sources)
		} else {
			heap.Fix(&pg.sources, 0)
		}
	}
	if len(pg.sources) == 0 {
		items = append(items, pg.marks...)
		pg.marks = nil
	}
	return items, nil
}

// done reports whether every page has been read.
func (pg *pager) done() bool { return len(pg.sources) == 0 && pg.marks == nil }

// buffered is how many events are read and not yet paged.
func (pg *pager) buffered() int {
	n := 0
	for _, s := range pg.sources {
		n += len(s.buf)
	}
	return n
}

// sources is a heap of conversations by their next event, in replay order.
type sources []*source

func (h sources) Len() int { return len(h) }
func (h sources) Less(i, j int) bool {
	a, b := h[i].buf[0], h[j].buf[0]
	if a.Partition != b.Partition {
		return a.Partition < b.Partition
	}
	return cmp.Less(a.Position, b.Position)
}
func (h sources) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sources) Push(x any)   { *h = append(*h, x.(*source)) }
func (h *sources) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}

package fanout

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// fullReplay is bob's whole replay from cursor as one open read it before
// replays were paged: a limited open whose limit is never reached.
func fullReplay(t *testing.T, h *Hub, cursor string) []*Item {
	t.Helper()
	c := NewConn("bob", 64)
	cut, err := h.OpenLimited(context.Background(), c, cursor, 0, MaxReplay)
	if err != nil || cut {
		t.Fatalf("OpenLimited: cut %v, err %v", cut, err)
	}
	defer h.Unregister(c)
	items, err := drain(t, c)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

type replayed struct {
	kind      Kind
	partition int
	position  int64
}

func replayedOf(items []*Item) []replayed {
	out := make([]replayed, len(items))
	for i, it := range items {
		out[i] = replayed{it.Kind, it.Partition, it.Position}
	}
	return out
}

// TestResumeHoldsOnePageOfReplay: a connection resuming 5,000 events
// behind holds one page of them once open (and each conversation at most
// one read ahead), not all 5,000.
func TestResumeHoldsOnePageOfReplay(t *testing.T) {
	w := newReplayWorld(t, 1)
	var cids []string
	for range 5 {
		cids = append(cids, w.conversation(0))
	}
	for i := range 5000 - 5 { // and bob's five member.added
		w.send(cids[i%len(cids)])
	}
	h := w.hub(nil)
	c := NewConn("bob", 64)
	if err := h.Open(context.Background(), c, fromStart, 0); err != nil {
		t.Fatal(err)
	}
	if len(c.replay) > replayPage {
		t.Fatalf("holds %d replayed items once open, want at most one page (%d)", len(c.replay), replayPage)
	}
	if c.pages == nil {
		t.Fatal("no pages left to read after the first")
	}
	if n := c.pages.buffered(); n > replayPage {
		t.Fatalf("holds %d events read ahead, want at most %d", n, replayPage)
	}
	items, err := drain(t, c)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, it := range items {
		if it.Kind == KindEvent {
			n++
		}
	}
	if n != 5000 {
		t.Fatalf("replayed %d events, want 5000", n)
	}
}

// TestReplayOfBigMessagesHoldsAPageOfBytes: a resume through messages of
// 3,000 characters holds about replayPageBytes of them at a time, in its
// page and read ahead, not 1,024 events (3 MB) of each, and still
// replays every event in order.
func TestReplayOfBigMessagesHoldsAPageOfBytes(t *testing.T) {
	w := newReplayWorld(t, 1)
	w.text = strings.Repeat("x", 3000)
	cid := w.conversation(0)
	for range 2000 - 2 { // and the two member.added
		w.send(cid)
	}
	h := w.hub(nil)
	c := NewConn("bob", 64)
	if err := h.Open(context.Background(), c, fromStart, 0); err != nil {
		t.Fatal(err)
	}
	defer h.Unregister(c)
	// One event over the bound at most: a page stops once it reaches it.
	limit := replayPageBytes + 4096
	bytesOf := func(evs []chat.Event) int {
		n := 0
		for i := range evs {
			n += eventBytes(&evs[i])
		}
		return n
	}
	held := func() (page, ahead int) {
		for _, it := range c.replay {
			page += eventBytes(it.event)
		}
		if c.pages != nil {
			for _, s := range c.pages.sources {
				ahead += bytesOf(s.buf)
			}
		}
		return page, ahead
	}
	if page, ahead := held(); page > limit || ahead > limit {
		t.Fatalf("holds %d bytes of page and %d read ahead once open, want at most %d each", page, ahead, limit)
	}
	var seqs []int64
	for {
		items, err := c.Take(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			if it.Kind == KindEvent {
				seqs = append(seqs, it.event.Seq)
			}
		}
		if page, ahead := held(); page > limit || ahead > limit {
			t.Fatalf("after %d events: holds %d bytes of page and %d read ahead, want at most %d each", len(seqs), page, ahead, limit)
		}
	}
	// Bob's replay begins at his member.added, seq 2.
	for i, seq := range seqs {
		if seq != int64(i)+2 {
			t.Fatalf("event %d of the replay has seq %d, want %d (%d replayed)", i, seq, i+2, len(seqs))
		}
	}
	if len(seqs) != 1999 {
		t.Fatalf("replayed %d events, want seqs 2..2000", len(seqs))
	}
}

// TestPagedReplayIsTheWholeReplayInOrder: the pages of a resume put
// together are exactly the whole replay, in the same order (by partition,
// then position, conversations of one partition interleaved), across page
// boundaries, ending with the same marks; what arrives live comes after.
func TestPagedReplayIsTheWholeReplayInOrder(t *testing.T) {
	w := newReplayWorld(t, 4)
	var cids []string
	for _, p := range []int{0, 0, 0, 2, 2, 3} {
		cids = append(cids, w.conversation(p))
	}
	w.flush()
	mid := chat.NewCursor(7)
	for i := range 3000 {
		if i == 700 {
			w.flush()
			heads, err := w.st.Heads(context.Background(), 4)
			if err != nil {
				t.Fatal(err)
			}
			mid.Positions[0] = heads[0]
		}
		// Uneven: the first conversation gets most, and a run of one
		// conversation now and then.
		switch {
		case i%7 == 0 || i%13 == 0:
			w.send(cids[0])
		case i > 1500 && i < 1800:
			w.send(cids[4])
		default:
			w.send(cids[i%len(cids)])
		}
	}
	h := w.hub(nil)
	for _, cursor := range []string{fromStart, mid.Encode()} {
		want := fullReplay(t, h, cursor)
		c := NewConn("bob", 64)
		if err := h.Open(context.Background(), c, cursor, 0); err != nil {
			t.Fatal(err)
		}
		if len(c.replay) > replayPage+4 {
			t.Fatalf("holds %d replayed items once open", len(c.replay))
		}
		live := EventItem(chat.Event{Type: chat.EventMessageCreated, Partition: 1, Position: 1 << 40}, time.Now())
		c.Enqueue(live)
		got, err := drain(t, c)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || got[len(got)-1] != live {
			t.Fatalf("the live item is not last of %d", len(got))
		}
		got = got[:len(got)-1]
		if len(got) != len(want) {
			t.Fatalf("paged replay of %d items, want %d", len(got), len(want))
		}
		if g, w := replayedOf(got), replayedOf(want); !slices.Equal(g, w) {
			i := 0
			for g[i] == w[i] {
				i++
			}
			t.Fatalf("paged replay differs at item %d: %+v, want %+v", i, g[i], w[i])
		}
		h.Unregister(c)
	}
}

// countingStore counts reads of events (EventsAfter and Events, the
// count's one-event probes included: calls), and the events they
// returned (read); it fails every read after the first failAfter (never
// when 0). A test that sets failAfter after an open counts from the
// reads the open made.
type countingStore struct {
	chat.Store
	failAfter int64
	calls     atomic.Int64
	read      atomic.Int64
	after     atomic.Int64 // the EventsAfter calls among calls
}

var errStoreDown = chat.Errorf(chat.CodeUnavailable, "store: connection refused")

// counted counts one call, and fails it after the first failAfter.
func (s *countingStore) counted(read func() ([]chat.Event, error)) ([]chat.Event, error) {
	if n := s.calls.Add(1); s.failAfter > 0 && n > s.failAfter {
		return nil, errStoreDown
	}
	evs, err := read()
	s.read.Add(int64(len(evs)))
	return evs, err
}

func (s *countingStore) EventsAfter(ctx context.Context, cid string, after, upTo int64, limit int) ([]chat.Event, error) {
	s.after.Add(1)
	return s.counted(func() ([]chat.Event, error) { return s.Store.EventsAfter(ctx, cid, after, upTo, limit) })
}

func (s *countingStore) Events(ctx context.Context, cid string, after int64, limit int) ([]chat.Event, error) {
	return s.counted(func() ([]chat.Event, error) { return s.Store.Events(ctx, cid, after, limit) })
}

// TestReplayReadsOnBySeq: a conversation's replay finds its first event
// by position (EventsAfter, which on Cassandra costs a lookup per bucket)
// and reads every later one by seq (Events, one scan): 3,000 events read
// 16 at a time make one EventsAfter call. The replay is every event of
// the window in order, and stops at the frontier: events sequenced after
// it (after the open) are not replayed.
func TestReplayReadsOnBySeq(t *testing.T) {
	w := newReplayWorld(t, 1)
	a := w.conversation(0)
	for range 3000 {
		w.send(a)
	}
	w.flush()
	ctx := t.Context()
	heads, err := w.st.Heads(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 500 { // after the frontier
		w.send(a)
	}
	w.flush()
	for _, tc := range []struct {
		name   string
		lo, hi int64
		first  int64 // seq
		last   int64
	}{
		{"to the frontier", 0, heads[0], 1, 3002},
		{"from a cursor", chat.Position(1000, 0), heads[0], 1003, 3002},
		{"to a leave", 0, chat.Position(2000, 0), 1, 2002},
	} {
		st := &countingStore{Store: w.st}
		pg := &pager{store: st, read: minReplayRead}
		s := &source{conv: a, lo: tc.lo, hi: tc.hi}
		if err := pg.fill(ctx, s); err != nil {
			t.Fatal(err)
		}
		pg.sources = append(pg.sources, s)
		var seqs []int64
		for !pg.done() {
			items, err := pg.next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				seqs = append(seqs, it.event.Seq)
			}
		}
		if n := st.after.Load(); n != 1 {
			t.Errorf("%s: %d EventsAfter calls, want 1 (the first read)", tc.name, n)
		}
		if n, want := st.calls.Load(), (tc.last-tc.first+1)/minReplayRead+1; n > want {
			t.Errorf("%s: %d reads of %d events, want at most %d", tc.name, n, len(seqs), want)
		}
		for i, seq := range seqs {
			if seq != tc.first+int64(i) {
				t.Fatalf("%s: event %d of the replay has seq %d, want %d", tc.name, i, seq, tc.first+int64(i))
			}
		}
		if n := int64(len(seqs)); n != tc.last-tc.first+1 {
			t.Fatalf("%s: replayed %d events, want seqs %d..%d", tc.name, n, tc.first, tc.last)
		}
	}
}

// TestReplayInterruptedClosesWithNoGap: a store that fails while a later
// page is read closes the connection with 1013 (ReplayInterrupted); what
// it delivered before is a prefix of the replay, nothing live follows
// it, and resuming from its cursor delivers exactly the rest.
func TestReplayInterruptedClosesWithNoGap(t *testing.T) {
	w := newReplayWorld(t, 1)
	a, b := w.conversation(0), w.conversation(0)
	for i := range 4000 {
		w.send([]string{a, b}[i%3%2])
	}
	st := &countingStore{Store: w.st}
	h := w.hub(st)
	want := fullReplay(t, h, fromStart)

	c := NewConn("bob", 64)
	if err := h.Open(context.Background(), c, fromStart, 0); err != nil {
		t.Fatal(err)
	}
	st.failAfter = st.calls.Load() + 1 // the second read of a later page fails
	c.Enqueue(EventItem(chat.Event{Type: chat.EventMessageCreated, Partition: 0, Position: 1 << 40}, time.Now()))
	c.Control([]byte(`{"type":"pong"}`))
	var got []*Item
	for {
		items, err := c.Take(nil)
		for _, it := range items {
			if it.Kind != KindControl {
				got = append(got, it)
				c.Render(nil, it)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("Take: %v, want ErrClosed", err)
			}
			break
		}
		if len(items) == 0 {
			t.Fatal("the replay ended as if complete")
		}
	}
	if c.CloseCode() != chat.CloseTryAgainLater || c.CloseReason() != ReplayInterrupted {
		t.Fatalf("closed with %d %q, want 1013 %q", c.CloseCode(), c.CloseReason(), ReplayInterrupted)
	}
	if len(got) == 0 || len(got) >= len(want) {
		t.Fatalf("delivered %d of %d items before the failure", len(got), len(want))
	}
	if g, w := replayedOf(got), replayedOf(want[:len(got)]); !slices.Equal(g, w) {
		t.Fatal("what was delivered is not a prefix of the replay")
	}
	h.Unregister(c)

	st.failAfter = 0
	rest := fullReplay(t, h, c.Cursor())
	all := append(got, rest...)
	if g, w := replayedOf(all), replayedOf(want); !slices.Equal(g, w) {
		t.Fatalf("delivered then resumed %d items, want the %d of the whole replay", len(all), len(want))
	}
}

// TestClosedConnReadsNoMorePages: a connection closed or overflowed while
// it replays reads no further page from the store, and delivers nothing
// queued live.
func TestClosedConnReadsNoMorePages(t *testing.T) {
	w := newReplayWorld(t, 1)
	a, b := w.conversation(0), w.conversation(0)
	for i := range 5000 {
		w.send([]string{a, b}[i%2])
	}
	st := &countingStore{Store: w.st}
	h := w.hub(st)
	for _, tc := range []struct {
		name string
		end  func(*Conn)
		err  error
	}{
		{"closed", func(c *Conn) { c.Close() }, ErrClosed},
		{"overflowed", func(c *Conn) {
			for range 3 {
				c.Enqueue(EventItem(chat.Event{Type: chat.EventMessageCreated, Partition: 0, Position: 1 << 40}, time.Now()))
			}
		}, ErrTooSlow},
	} {
		c := NewConn("bob", 2)
		if err := h.Open(context.Background(), c, fromStart, 0); err != nil {
			t.Fatal(err)
		}
		first, err := c.Take(nil)
		if err != nil || len(first) == 0 {
			t.Fatalf("%s: first take: %d items, %v", tc.name, len(first), err)
		}
		if tc.name == "closed" {
			c.Enqueue(EventItem(chat.Event{Type: chat.EventMessageCreated, Partition: 0, Position: 1 << 40}, time.Now()))
		}
		tc.end(c)
		reads := st.calls.Load()
		items, err := drain(t, c)
		if !errors.Is(err, tc.err) {
			t.Fatalf("%s: drained with %v, want %v", tc.name, err, tc.err)
		}
		if n := len(first) + len(items); n > replayPage {
			t.Fatalf("%s: %d items taken, more than the page read at open", tc.name, n)
		}
		for _, it := range items {
			if it.Received != timeZero {
				t.Fatalf("%s: a live item was taken after an unfinished replay", tc.name)
			}
		}
		if n := st.calls.Load() - reads; n != 0 {
			t.Fatalf("%s: %d store reads after the connection ended", tc.name, n)
		}
		if c.Replaying() {
			t.Fatalf("%s: still replaying once ended", tc.name)
		}
		h.Unregister(c)
	}
}

// TestReplayCountsWithoutReading: the count that refuses a replay beyond
// MaxReplay is exact for any window of a conversation (cut by the cursor,
// a join, a leave or the frontier, between positions of another
// conversation of the partition) and stops at its limit.
func TestReplayCountsWithoutReading(t *testing.T) {
	w := newReplayWorld(t, 1)
	a, b := w.conversation(0), w.conversation(0)
	for i := range 600 {
		w.send([]string{a, b}[i%3%2])
	}
	w.flush()
	ctx := context.Background()
	all, err := w.st.EventsAfter(ctx, a, 0, 1<<62, 1000)
	if err != nil {
		t.Fatal(err)
	}
	pos := func(i int) int64 { return all[i].Position }
	for _, tc := range []struct {
		lo, hi int64
		limit  int
	}{
		{0, 1 << 62, 1000},
		{0, 1 << 62, 401},
		{0, 1 << 62, 402},
		{0, 1 << 62, 100},
		{pos(10), pos(300), 1000},
		{pos(10) + 1, pos(300) - 1, 1000},
		{pos(10), pos(11), 1000},
		{pos(0), pos(399), 390},
		{pos(20), pos(399), 390},
	} {
		want, err := w.st.EventsAfter(ctx, a, tc.lo, tc.hi, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, read := range []int{1, 16, 50} {
			pg := &pager{store: w.st, read: read}
			s := &source{conv: a, lo: tc.lo, hi: tc.hi}
			if err := pg.fill(ctx, s); err != nil {
				t.Fatal(err)
			}
			n := len(s.buf)
			if s.lo < s.hi {
				if n, err = pg.count(ctx, s, tc.limit); err != nil {
					t.Fatal(err)
				}
			}
			if w := min(len(want), tc.limit); n != w {
				t.Errorf("window (%d, %d] read %d at a time, limit %d: counted %d, want %d", tc.lo, tc.hi, read, tc.limit, n, w)
			}
		}
	}
}

// TestResumeBeyondMaxReplayIsRefused: a resume of more than MaxReplay
// events (over several conversations) is refused at open as an expired
// cursor, reading no more than a page of events; one of exactly
// MaxReplay is not.
func TestResumeBeyondMaxReplayIsRefused(t *testing.T) {
	const convs = 7
	per := MaxReplay/convs + 1 // 7 × 14,286 = 100,002
	st := &countingStore{Store: madeUpStore{convs: convs, events: per}}
	h := runHub(t, 1, st)
	c := NewConn("bob", 64)
	if err := h.Open(context.Background(), c, fromStart, 0); chat.ErrorCode(err) != chat.CodeCursorExpired {
		t.Fatalf("Open of %d events behind: %v, want cursor_expired", convs*per, err)
	}
	if n := st.read.Load(); n > 2048 { // a page of 1,024 at most, read ahead
		t.Errorf("refusing read %d events", n)
	}
	if h.Connections("bob") != 0 {
		t.Error("a refused connection stays registered")
	}
	// Two events less: exactly MaxReplay.
	from := chat.NewCursor(7)
	from.Positions[0] = madeUpStore{convs: convs, events: per}.position(1, 1)
	if err := h.Open(context.Background(), c, from.Encode(), 0); err != nil {
		t.Fatalf("Open of %d events behind: %v", MaxReplay, err)
	}
	if n := st.read.Load(); n > 4096 {
		t.Errorf("opening read %d events", n)
	}
	h.Unregister(c)
}

// TestReplayCountOfASmallWindowIsCheap: counting a window of 40 events
// against the whole MaxReplay costs a few probes (galloping up from what
// was read), not a binary search over 100,000.
func TestReplayCountOfASmallWindowIsCheap(t *testing.T) {
	w := newReplayWorld(t, 1)
	a := w.conversation(0)
	for range 40 {
		w.send(a)
	}
	w.flush()
	st := &countingStore{Store: w.st}
	pg := &pager{store: st, read: 16}
	s := &source{conv: a, lo: 0, hi: 1 << 62}
	if err := pg.fill(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	n, err := pg.count(t.Context(), s, MaxReplay+1)
	if err != nil {
		t.Fatal(err)
	}
	all, err := w.st.EventsAfter(t.Context(), a, 0, 1<<62, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(all) {
		t.Fatalf("counted %d, want %d", n, len(all))
	}
	if c := st.calls.Load() - st.after.Load(); c > 10 { // count's probes (Events)
		t.Errorf("counting %d events took %d probes, want at most 10", n, c)
	}
}

// closingStore calls onFirst at the first read of events, once.
type closingStore struct {
	chat.Store
	onFirst func()
	once    sync.Once
}

func (s *closingStore) EventsAfter(ctx context.Context, cid string, after, upTo int64, limit int) ([]chat.Event, error) {
	s.once.Do(s.onFirst)
	return s.Store.EventsAfter(ctx, cid, after, upTo, limit)
}

// TestEndedConnStopsReadingPages: however a connection with replay
// pages left to read ends (closed, overflowed, unregistered, or closed
// while it opened), the context of its page reads ends with it, so no
// page read starts or goes on.
func TestEndedConnStopsReadingPages(t *testing.T) {
	w := newReplayWorld(t, 1)
	a := w.conversation(0)
	for range 3000 {
		w.send(a)
	}
	st := &closingStore{Store: w.st}
	h := w.hub(st)
	var c *Conn
	for _, tc := range []struct {
		name    string
		opening func() // called during the open's first read
		end     func()
	}{
		{name: "closed", end: func() { c.Close() }},
		{name: "overflowed", end: func() {
			for range 3 {
				c.Enqueue(EventItem(chat.Event{Type: chat.EventMessageCreated, Partition: 0, Position: 1 << 40}, time.Now()))
			}
		}},
		{name: "unregistered", end: func() { h.Unregister(c) }},
		{name: "closed while opening", opening: func() { c.Close() }, end: func() {}},
	} {
		c = NewConn("bob", 2)
		st.once, st.onFirst = sync.Once{}, func() {}
		if tc.opening != nil {
			st.onFirst = tc.opening
		}
		if err := h.Open(t.Context(), c, fromStart, 0); err != nil {
			t.Fatal(err)
		}
		pg := c.pages
		if pg == nil {
			t.Fatalf("%s: no pages left to read after the first", tc.name)
		}
		if tc.opening == nil && pg.ctx.Err() != nil {
			t.Fatalf("%s: page reads stopped before the connection ended", tc.name)
		}
		tc.end()
		if pg.ctx.Err() == nil {
			t.Errorf("%s: the connection ended, its page reads did not", tc.name)
		}
		h.Unregister(c)
	}
}

package fanout

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

func event(p int, pos int64) *Item {
	return EventItem(chat.Event{Type: chat.EventMessageCreated, ConversationID: "cnv_1", Seq: pos, Partition: p, Position: pos}, time.Now())
}

func newTestConn(queue int) *Conn {
	c := NewConn("bob", queue)
	c.cursor = chat.NewCursor(7)
	return c
}

// TestControlGoesAheadOfQueuedEvents: an ack queued after thousands of
// events is taken (written) first.
func TestControlGoesAheadOfQueuedEvents(t *testing.T) {
	c := newTestConn(4096)
	for i := 1; i <= 3000; i++ {
		c.Enqueue(event(0, int64(i)))
	}
	c.Control([]byte(`{"type":"ack","ref":"r1"}`))
	items, err := c.Take(nil)
	if err != nil || len(items) != 3001 {
		t.Fatalf("take: %d, %v", len(items), err)
	}
	if items[0].Kind != KindControl {
		t.Fatalf("first item is %v, want the ack", items[0].Kind)
	}
}

// TestWriterRunsOnlyWhileItemsWait: the on-demand writer is started by the
// first item, not again while it runs, and again after it found nothing.
func TestWriterRunsOnlyWhileItemsWait(t *testing.T) {
	c := newTestConn(64)
	starts := 0
	c.StartWriter(func() { starts++ })
	if starts != 0 {
		t.Fatal("started with nothing queued")
	}
	c.Enqueue(event(0, 1))
	c.Enqueue(event(0, 2))
	if starts != 1 {
		t.Fatalf("%d starts, want 1", starts)
	}
	if items, _ := c.Take(nil); len(items) != 2 {
		t.Fatalf("took %d", len(items))
	}
	if items, err := c.Take(nil); len(items) != 0 || err != nil {
		t.Fatalf("idle take: %d, %v", len(items), err)
	}
	c.Enqueue(event(0, 3))
	if starts != 2 {
		t.Fatalf("%d starts after idle, want 2", starts)
	}
}

// TestOverflowDropsTheQueueAndSaysTooSlow: a connection that falls more
// than its queue behind is dropped, and its memory released.
func TestOverflowDropsTheQueueAndSaysTooSlow(t *testing.T) {
	c := newTestConn(16)
	overflowed := make(chan struct{})
	c.OnOverflow = func() { close(overflowed) }
	for i := 1; i <= 17; i++ {
		c.Enqueue(event(0, int64(i)))
	}
	if _, err := c.Next(context.Background(), nil); !errors.Is(err, ErrTooSlow) {
		t.Fatalf("next: %v, want ErrTooSlow", err)
	}
	<-overflowed
	if c.queue != nil {
		t.Fatal("an overflowed queue keeps its items")
	}
}

// TestCloseDrainsThenSaysClosed: what was queued before a close is still
// taken (a last error frame goes out), then ErrClosed.
func TestCloseDrainsThenSaysClosed(t *testing.T) {
	c := newTestConn(16)
	c.Control([]byte(`{"type":"error"}`))
	c.CloseWith(4429, "rate limited")
	c.Control([]byte(`{"type":"late"}`))
	items, err := c.Next(context.Background(), nil)
	if err != nil || len(items) != 1 {
		t.Fatalf("next: %d, %v", len(items), err)
	}
	if _, err := c.Next(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("next after drain: %v", err)
	}
	if c.CloseCode() != 4429 || c.CloseReason() != "rate limited" {
		t.Fatalf("close %d %q", c.CloseCode(), c.CloseReason())
	}
}

// TestRenderAppendsTheConnectionsCursorAndSkipsWhatItHas: each event
// carries the cursor that includes it; an event at or below the cursor,
// a mark and a heartbeat render nothing.
func TestRenderAppendsTheConnectionsCursorAndSkipsWhatItHas(t *testing.T) {
	c := newTestConn(16)
	c.cursor.Advance(1, 256)
	frame := string(c.RenderBatch(nil, []*Item{event(1, 256), event(1, 512), {Kind: KindMark, Partition: 2, Position: 99}, heartbeat, ControlItem([]byte(`{"type":"pong"}`))}))
	lines := strings.Split(frame, "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[1], `{"type":"pong"}`) {
		t.Fatalf("frame %q", frame)
	}
	want := chat.Cursor{Deployment: 7, Positions: map[int]int64{1: 512}}.Encode()
	if !strings.HasSuffix(lines[0], `,"cursor":"`+want+`"}`) {
		t.Fatalf("event %q, want cursor %s", lines[0], want)
	}
	got, err := chat.DecodeCursor(c.Cursor(), 7, 4)
	if err != nil || got.Positions[2] != 99 || got.Positions[1] != 512 {
		t.Fatalf("cursor after the mark: %v %v", got, err)
	}
}

// TestBeatQueuesOneHeartbeat: heartbeats do not pile up on a stream that
// is not drained.
func TestBeatQueuesOneHeartbeat(t *testing.T) {
	c := newTestConn(16)
	c.Beat()
	c.Beat()
	items, _ := c.Next(context.Background(), nil)
	if len(items) != 1 || items[0].Kind != KindHeartbeat {
		t.Fatalf("items %v", items)
	}
}

// TestNextUntilStopsAtDoneOrTimeoutAndTakesWhatWaits: items already
// queued are returned at once; with none, NextUntil returns (with an
// error that is neither ErrClosed nor ErrTooSlow) when its timeout fires
// or done is closed.
func TestNextUntilStopsAtDoneOrTimeoutAndTakesWhatWaits(t *testing.T) {
	c := NewConn("u", 16)
	c.Control([]byte(`{"type":"pong"}`))
	items, err := c.NextUntil(nil, nil, nil)
	if err != nil || len(items) != 1 {
		t.Fatalf("queued: %d items, %v", len(items), err)
	}
	timer := time.NewTimer(10 * time.Millisecond)
	defer timer.Stop()
	if items, err := c.NextUntil(nil, timer.C, nil); err == nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrTooSlow) || len(items) != 0 {
		t.Fatalf("timeout: %d items, %v", len(items), err)
	}
	done := make(chan struct{})
	close(done)
	if _, err := c.NextUntil(done, nil, nil); err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("done: %v", err)
	}
	c.Close()
	if _, err := c.NextUntil(nil, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v, want ErrClosed", err)
	}
}

// TestUnreadComesBackFirst: items taken but not written, put back with
// Unread, are taken again before anything queued meanwhile, in order.
func TestUnreadComesBackFirst(t *testing.T) {
	c := newTestConn(64)
	for i := 1; i <= 5; i++ {
		c.Enqueue(event(0, int64(i)))
	}
	items, err := c.Next(context.Background(), nil)
	if err != nil || len(items) != 5 {
		t.Fatalf("next: %d, %v", len(items), err)
	}
	c.Unread(items[2:]) // 3, 4, 5 not written
	c.Enqueue(event(0, 6))
	if !c.Pending() {
		t.Fatal("nothing pending after Unread")
	}
	var got []int64
	for len(got) < 4 {
		items, err := c.Next(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			got = append(got, it.Position)
		}
	}
	if want := []int64{3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("taken %v, want %v", got, want)
	}
}

// TestBroken: a connection is broken once closed or overflowed, not before.
func TestBroken(t *testing.T) {
	c := newTestConn(2)
	if c.Broken() {
		t.Fatal("new connection broken")
	}
	for i := 1; i <= 3; i++ {
		c.Enqueue(event(0, int64(i)))
	}
	if !c.Broken() {
		t.Fatal("overflowed connection not broken")
	}
	d := newTestConn(2)
	d.Close()
	if !d.Broken() {
		t.Fatal("closed connection not broken")
	}
}

// TestWakerIsCalledWhereNextUntilWakes: a connection's waker is called
// for an item queued, a close and an overflow, and not once removed.
func TestWakerIsCalledWhereNextUntilWakes(t *testing.T) {
	c := newTestConn(2)
	var woken int
	c.SetWaker(func() { woken++ })
	c.Enqueue(event(0, 1))
	if woken != 1 {
		t.Fatalf("woken %d times by an item, want 1", woken)
	}
	c.Enqueue(event(0, 2))
	c.Enqueue(event(0, 3)) // overflows
	if woken != 3 || !c.Broken() {
		t.Fatalf("woken %d times after an overflow (broken %v), want 3", woken, c.Broken())
	}
	d := newTestConn(2)
	woken = 0
	d.SetWaker(func() { woken++ })
	d.Close()
	if woken != 1 {
		t.Fatalf("woken %d times by a close, want 1", woken)
	}
	d.SetWaker(nil)
	d.Control([]byte(`{}`))
	if woken != 1 {
		t.Fatalf("woken after SetWaker(nil)")
	}
}

// TestNextUntilWakesOnItemAndClose: with its wake channel made only when
// a transport first waits, NextUntil still gets an item queued before it
// waited, one queued while it waits, and the close; Done is closed too,
// whether asked before or after the close.
func TestNextUntilWakesOnItemAndClose(t *testing.T) {
	c := newTestConn(8)
	before := c.Done()
	c.Enqueue(event(0, 1))
	items, err := c.NextUntil(nil, nil, nil)
	if err != nil || len(items) != 1 {
		t.Fatalf("queued before waiting: %d items, %v", len(items), err)
	}
	go func() { time.Sleep(10 * time.Millisecond); c.Enqueue(event(0, 2)) }()
	if items, err = c.NextUntil(nil, nil, nil); err != nil || len(items) != 1 {
		t.Fatalf("queued while waiting: %d items, %v", len(items), err)
	}
	go func() { time.Sleep(10 * time.Millisecond); c.Close() }()
	if _, err = c.NextUntil(nil, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed while waiting: %v", err)
	}
	for _, d := range []<-chan struct{}{before, c.Done()} {
		select {
		case <-d:
		default:
			t.Fatal("Done not closed")
		}
	}
}

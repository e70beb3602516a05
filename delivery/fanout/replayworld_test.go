package fanout

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/storage/pebble"
)

// replayWorld is an embedded store that conversations of alice and bob
// are written to as a sequencer would: each command at the next offset of
// its partition, each conversation's seqs without gaps.
type replayWorld struct {
	t          testing.TB
	st         *pebble.Store
	partitions int
	offsets    map[int]int64
	epochs     map[int]int64
	convs      map[string]*chat.Conversation
	pending    map[int][]chat.Change
	text       string // of the messages sent; "hi" when empty
}

func newReplayWorld(t testing.TB, partitions int) *replayWorld {
	t.Helper()
	st, err := pebble.Open(context.Background(), pebble.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &replayWorld{t: t, st: st, partitions: partitions, offsets: map[int]int64{}, epochs: map[int]int64{},
		convs: map[string]*chat.Conversation{}, pending: map[int][]chat.Change{}}
}

// conversation returns the id of a new conversation of alice and bob in
// partition p (written at the next flush).
func (w *replayWorld) conversation(p int) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("cnv_%d_%d", p, i)
		if _, ok := w.convs[id]; ok || chat.PartitionOf(id, w.partitions) != p {
			continue
		}
		w.convs[id] = &chat.Conversation{ID: id, Kind: chat.KindGroup, CreatedBy: "alice", Members: []string{"alice", "bob"}}
		var ms []chat.Membership
		ch := w.command(id, chat.EventMemberAdded, chat.EventMemberAdded)
		for _, ev := range ch.Events {
			ms = append(ms, chat.Membership{ConversationID: id, UserID: []string{"alice", "bob"}[ev.Seq-1], Active: true, JoinedPosition: ev.Position})
		}
		ch.Memberships = ms
		w.pending[p] = append(w.pending[p], ch)
		return id
	}
}

// command is the change of one command of cid with events of types.
func (w *replayWorld) command(cid string, types ...string) chat.Change {
	c := w.convs[cid]
	p := chat.PartitionOf(cid, w.partitions)
	off := w.offsets[p]
	w.offsets[p]++
	ch := chat.Change{PrevSeq: c.LastSeq}
	for i, typ := range types {
		c.LastSeq++
		ev := chat.Event{Type: typ, ConversationID: cid, Seq: c.LastSeq, EventID: chat.NewID("evt"), At: time.UnixMilli(1e12), Actor: "alice",
			Partition: p, Position: chat.Position(off, i)}
		if typ == chat.EventMessageCreated {
			ev.Message = &chat.Message{ID: chat.NewID("msg"), ConversationID: cid, Seq: c.LastSeq, SenderID: "alice", Text: cmp.Or(w.text, "hi"), Version: 1}
		}
		c.LastPosition = ev.Position
		ch.Events = append(ch.Events, ev)
	}
	ch.Conversation = *c
	ch.Conversation.Members = slices.Clone(c.Members)
	return ch
}

// send queues a message in cid.
func (w *replayWorld) send(cid string) {
	p := chat.PartitionOf(cid, w.partitions)
	w.pending[p] = append(w.pending[p], w.command(cid, chat.EventMessageCreated))
	if len(w.pending[p]) >= 4096 {
		w.flush()
	}
}

// flush commits what is queued.
func (w *replayWorld) flush() {
	w.t.Helper()
	ctx := context.Background()
	for p, chs := range w.pending {
		if len(chs) == 0 {
			continue
		}
		if w.epochs[p] == 0 {
			e, err := w.st.Own(ctx, p)
			if err != nil {
				w.t.Fatal(err)
			}
			w.epochs[p] = e
		}
		var head int64
		for _, ch := range chs {
			for _, ev := range ch.Events {
				head = max(head, ev.Position)
			}
		}
		if err := w.st.Commit(ctx, p, w.epochs[p], head, chs); err != nil {
			w.t.Fatal(err)
		}
		w.pending[p] = nil
	}
}

// hub flushes and returns a running hub on the store, whose frontier is
// the store's heads.
func (w *replayWorld) hub(st chat.Store) *Hub {
	w.t.Helper()
	w.flush()
	if st == nil {
		st = w.st
	}
	return runHub(w.t, w.partitions, st)
}

// runHub returns a running hub on st, whose frontier is st's heads.
func runHub(t testing.TB, partitions int, st chat.Store) *Hub {
	h := NewHub(Config{ID: "gw1", Log: &fakeLog{parts: partitions, reads: make(chan fakeRead)}, Store: st, Deployment: 7})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-h.Ready()
	return h
}

// madeUpStore has bob in convs conversations of one partition, of
// events events each, made up on demand rather than stored: seq k of
// conversation i is at offset (k-1)*convs+i, so conversations interleave.
type madeUpStore struct {
	fakeStore
	convs, events int
}

func (s madeUpStore) position(i int, seq int64) int64 {
	return chat.Position((seq-1)*int64(s.convs)+int64(i), 0)
}

func (s madeUpStore) Heads(ctx context.Context, n int) ([]int64, error) {
	heads := make([]int64, n)
	heads[0] = s.position(s.convs-1, int64(s.events))
	return heads, nil
}

func (s madeUpStore) Memberships(ctx context.Context, uid string) ([]chat.Membership, error) {
	var ms []chat.Membership
	for i := range s.convs {
		ms = append(ms, chat.Membership{ConversationID: fmt.Sprint("cnv_", i), UserID: uid, Active: true, JoinedPosition: s.position(i, 1)})
	}
	return ms, nil
}

func (s madeUpStore) event(cid string, seq int64) chat.Event {
	var i int
	fmt.Sscanf(cid, "cnv_%d", &i)
	return chat.Event{Type: chat.EventMessageCreated, ConversationID: cid, Seq: seq, Position: s.position(i, seq)}
}

func (s madeUpStore) Events(ctx context.Context, cid string, after int64, limit int) ([]chat.Event, error) {
	var evs []chat.Event
	for seq := after + 1; seq <= int64(s.events) && len(evs) < limit; seq++ {
		evs = append(evs, s.event(cid, seq))
	}
	return evs, nil
}

func (s madeUpStore) EventsAfter(ctx context.Context, cid string, after, upTo int64, limit int) ([]chat.Event, error) {
	var evs []chat.Event
	for seq := int64(1); seq <= int64(s.events) && len(evs) < limit; seq++ {
		if ev := s.event(cid, seq); ev.Position > after && ev.Position <= upTo {
			evs = append(evs, ev)
		}
	}
	return evs, nil
}

// fromStart is a cursor before every event.
var fromStart = chat.NewCursor(7).Encode()

// drain takes everything c has, until nothing waits or c ends.
func drain(t testing.TB, c *Conn) ([]*Item, error) {
	t.Helper()
	var all []*Item
	for {
		items, err := c.Take(nil)
		all = append(all, items...)
		if err != nil || len(items) == 0 {
			return all, err
		}
	}
}

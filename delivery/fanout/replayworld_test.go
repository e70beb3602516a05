package fanout

import (
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
			ev.Message = &chat.Message{ID: chat.NewID("msg"), ConversationID: cid, Seq: c.LastSeq, SenderID: "alice", Text: "hi", Version: 1}
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
	h := NewHub(Config{ID: "gw1", Log: &fakeLog{parts: w.partitions, reads: make(chan fakeRead)}, Store: st, Deployment: 7})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	w.t.Cleanup(func() { cancel(); <-done })
	<-h.Ready()
	return h
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

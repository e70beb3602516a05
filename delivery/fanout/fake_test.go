package fanout

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// fakeLog hands the hub the reads a test feeds it, one at a time.
type fakeLog struct {
	chat.Log
	parts int
	reads chan fakeRead
}

type fakeRead struct {
	partition int
	recs      []chat.Record
	handled   chan struct{}
}

func (l *fakeLog) Partitions() int { return l.parts }

func (l *fakeLog) Subscribe(ctx context.Context, topic string, ready func(), handle func(int, []chat.Record)) error {
	ready()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-l.reads:
			handle(r.partition, r.recs)
			close(r.handled)
		}
	}
}

// fakeStore answers the hub's few reads: no heads, no memberships.
type fakeStore struct{ chat.Store }

func (fakeStore) Heads(ctx context.Context, n int) ([]int64, error) { return make([]int64, n), nil }
func (fakeStore) Memberships(ctx context.Context, uid string) ([]chat.Membership, error) {
	return nil, nil
}

// testHub is a running hub on a fake log.
type testHub struct {
	*Hub
	log *fakeLog
}

func newTestHub(t *testing.T, setup func(*Hub)) *testHub {
	t.Helper()
	lg := &fakeLog{parts: 4, reads: make(chan fakeRead)}
	h := NewHub(Config{ID: "gw1", Log: lg, Store: fakeStore{}, Deployment: 7})
	if setup != nil {
		setup(h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-h.Ready()
	return &testHub{Hub: h, log: lg}
}

// feed hands one read to the hub and waits until its reader took it
// (results resolved; fan-out may still be running).
func (th *testHub) feed(t *testing.T, partition int, seqs ...chat.Sequenced) {
	t.Helper()
	r := fakeRead{partition: partition, handled: make(chan struct{})}
	for i, s := range seqs {
		b, err := record.EncodeSequenced(&s)
		if err != nil {
			t.Fatal(err)
		}
		r.recs = append(r.recs, chat.Record{Partition: partition, Offset: int64(i), Value: b})
	}
	select {
	case th.log.reads <- r:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub's reader did not take the read")
	}
	select {
	case <-r.handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub's reader did not finish the read")
	}
}

var nextPos int64

// message is a sequenced send in conversation cid of partition p, for recipients.
func message(p int, gateway, cmd string, recipients ...string) chat.Sequenced {
	nextPos += 256
	ev := chat.Event{Type: chat.EventMessageCreated, ConversationID: "cnv_1", Seq: nextPos / 256, EventID: fmt.Sprint("evt_", nextPos),
		Actor: "alice", Message: &chat.Message{ID: "msg_1", Text: "hi"}, Partition: p, Position: nextPos}
	return chat.Sequenced{CommandID: cmd, Gateway: gateway, Events: []chat.Event{ev}, Recipients: recipients, Result: chat.Result{Created: true}}
}

// open registers a connection of user, without a cursor, whose writer
// start is counted (and run by the test).
func (th *testHub) open(t *testing.T, user string, queue int) (*Conn, *atomic.Int32) {
	t.Helper()
	c := NewConn(user, queue)
	if err := th.Open(context.Background(), c, "", 0); err != nil {
		t.Fatal(err)
	}
	starts := new(atomic.Int32)
	c.StartWriter(func() { starts.Add(1) })
	return c, starts
}

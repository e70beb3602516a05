package fanout

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// countEncoders wraps the package's encoders so that the test counts their
// calls, per encoding, until it ends. Tests using it must not run in
// parallel.
func countEncoders(t *testing.T) (jsonCalls, protoCalls *atomic.Int32) {
	t.Helper()
	jsonCalls, protoCalls = new(atomic.Int32), new(atomic.Int32)
	ej, eej, ep, eep := encodeEventJSON, encodeEphemeralJSON, encodeEventProto, encodeEphemeralProto
	encodeEventJSON = func(ev chat.Event) []byte { jsonCalls.Add(1); return ej(ev) }
	encodeEphemeralJSON = func(e chat.Ephemeral) ([]byte, error) { jsonCalls.Add(1); return eej(e) }
	encodeEventProto = func(ev chat.Event) ([]byte, error) { protoCalls.Add(1); return ep(ev) }
	encodeEphemeralProto = func(e chat.Ephemeral) ([]byte, error) { protoCalls.Add(1); return eep(e) }
	t.Cleanup(func() {
		encodeEventJSON, encodeEphemeralJSON, encodeEventProto, encodeEphemeralProto = ej, eej, ep, eep
	})
	return jsonCalls, protoCalls
}

// TestEachEncodingIsMadeOnlyWhenAConnectionNeedsIt: a hub whose
// connections all speak one encoding delivers events and ephemeral events
// without ever calling the other encoding's encoder, and encodes each item
// once however many connections render it. Before, every item's JSON was
// made as it was queued, whoever its connections were.
func TestEachEncodingIsMadeOnlyWhenAConnectionNeedsIt(t *testing.T) {
	for _, binary := range []bool{true, false} {
		name := "only JSON connections"
		if binary {
			name = "only binary connections"
		}
		t.Run(name, func(t *testing.T) {
			jsonCalls, protoCalls := countEncoders(t)
			th := newTestHub(t, nil) // after countEncoders: its goroutines end first
			users := []string{"bob", "carol", "dave"}
			conns := make([]*Conn, len(users))
			for i, u := range users {
				conns[i], _ = th.open(t, u, 64)
			}
			const events = 5
			seqs := make([]chat.Sequenced, events)
			for i := range seqs {
				seqs[i] = message(1, "other-gw", "cmd", users...)
			}
			th.feed(t, 1, seqs...)
			th.Ephemeral(users, chat.Ephemeral{Type: chat.EventTyping, ConversationID: "cnv_1", UserID: "alice"})
			for _, c := range conns {
				var items []*Item
				waitFor(t, func() bool {
					got, _ := c.Take(nil)
					items = append(items, got...)
					return len(items) == events+1
				})
				var frame []byte
				if binary {
					frame = c.RenderBatchProto(nil, items)
				} else {
					frame = c.RenderBatch(nil, items)
				}
				if len(frame) == 0 {
					t.Fatal("nothing rendered")
				}
			}
			used, unused := protoCalls.Load(), jsonCalls.Load()
			if !binary {
				used, unused = unused, used
			}
			if unused != 0 {
				t.Errorf("the encoding no connection needs was made %d times", unused)
			}
			if used != events+1 {
				t.Errorf("the encoding in use was made %d times for %d items on %d connections, want once per item", used, events+1, len(conns))
			}
		})
	}
}

// TestAnItemThatCannotBeEncodedRendersNothing: an event of a type the
// binary schema does not know (a newer server's, say) is skipped by binary
// connections without moving their cursor, and still reaches JSON ones.
func TestAnItemThatCannotBeEncodedRendersNothing(t *testing.T) {
	ev := chat.Event{Type: "message.exploded", ConversationID: "cnv_1", Seq: 1, Partition: 3, Position: 512}
	it := EventItem(ev, time.Time{})
	c := testConn()
	if frame := c.RenderBatchProto(nil, []*Item{it}); len(frame) != 0 {
		t.Fatalf("binary frame of %d bytes for an event without a mapping", len(frame))
	}
	if c.cursor.Positions[3] != 0 {
		t.Fatal("the cursor moved past an event the connection did not get")
	}
	if frame := testConn().RenderBatch(nil, []*Item{it}); len(frame) == 0 {
		t.Fatal("a JSON connection lost the event")
	}
}

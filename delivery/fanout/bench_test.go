package fanout

import (
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

func benchEvent(pos int64) chat.Event {
	return chat.Event{Type: chat.EventMessageCreated, ConversationID: "cnv_0123456789abcdef", Seq: pos, EventID: "evt_0123456789abcdef",
		At: time.Unix(1700000000, 0).UTC(), Actor: "alice",
		Message: &chat.Message{ID: "msg_0123456789abcdef", ConversationID: "cnv_0123456789abcdef", Seq: pos, SenderID: "alice", ClientID: "c-1",
			Text: string(make([]byte, 100)), CreatedAt: time.Unix(1700000000, 0).UTC(), Version: 1},
		Partition: 5, Position: pos << 8}
}

// BenchmarkEncodeEvent is the once-per-event encoding every delivery shares.
func BenchmarkEncodeEvent(b *testing.B) {
	ev := benchEvent(1)
	b.ReportAllocs()
	for b.Loop() {
		EncodeEvent(ev)
	}
}

// BenchmarkHubDispatch reads one event record for a 5,000-member room
// (decoding included) and queues the event on 5,000 connections, waking
// each; ns/delivery is the cost of one delivery.
func BenchmarkHubDispatch(b *testing.B) {
	const members = 5000
	lg := &fakeLog{parts: 64}
	h := NewHub(Config{ID: "gw", Log: lg, Store: fakeStore{}})
	recipients := make([]string, members)
	conns := make([]*Conn, members)
	for i := range recipients {
		recipients[i] = fmt.Sprint("user", i)
		c := NewConn(recipients[i], 1<<30)
		c.StartWriter(func() {})
		conns[i] = c
		h.Register(c, 0)
	}
	pos := int64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pos++
		b.StopTimer()
		val, _ := record.EncodeSequenced(&chat.Sequenced{CommandID: "cmd", Gateway: "gw2", Events: []chat.Event{benchEvent(pos)}, Recipients: recipients})
		b.StartTimer()
		if rb, ok := h.read(5, []chat.Record{{Partition: 5, Offset: pos, Value: val}}); ok {
			h.fanOut(rb)
		}
		if pos%256 == 0 { // drain, as writers would
			b.StopTimer()
			for _, c := range conns {
				c.Take(nil)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/members, "ns/delivery")
}

// BenchmarkRenderBatch renders what a busy connection takes at once: 100
// events with their cursors into one WebSocket frame.
func BenchmarkRenderBatch(b *testing.B) {
	items := make([]*Item, 100)
	for i := range items {
		items[i] = &Item{Data: sharedData, Partition: 5, Position: int64(i+1) << 8, Kind: KindEvent}
	}
	c := NewConn("bob", 1024)
	var frame []byte
	b.ReportAllocs()
	for b.Loop() {
		c.cursor = chat.Cursor{Deployment: 7, Positions: map[int]int64{17: 1 << 20, 40: 1 << 21}}
		frame = c.RenderBatch(frame[:0], items)
	}
	b.SetBytes(int64(len(frame)))
}

var sharedData = EncodeEvent(benchEvent(1))

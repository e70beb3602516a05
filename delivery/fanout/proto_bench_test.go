package fanout

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/wire"
)

// The binary encoding against JSON on a realistic mix of events: what a
// busy user's connection receives in a day of group chat. Bytes per event
// and the gateway's CPU per delivery (encoding once per event, rendering
// each connection's frame with its cursor, writing it through the
// WebSocket library) are compared with benchstat:
//
//	for i in $(seq 10); do go test -run '^$' -bench DeliveryMix ./delivery/fanout; done | tee mix.txt
//	benchstat -col /enc mix.txt
//
// (one run per round, so the two encodings alternate on a shared machine).

// mixEvent is one item of the mix: a durable event or an ephemeral one.
type mixEvent struct {
	ev  *chat.Event
	eph *chat.Ephemeral
}

const mixWords = "ok sure lunch deploy the build is green again can you review my PR when you have a minute " +
	"thanks 👍 meeting moved to three o'clock see the doc I shared yesterday about the migration plan"

// mixID is an id of the server's form (chat.NewID: a prefix, "_", 26
// base32 characters) drawn from r, so that the mix, and the partitions
// its conversations live in, are the same on every run.
func mixID(r *rand.Rand, prefix string) string {
	const crockford = "0123456789abcdefghjkmnpqrstvwxyz"
	b := []byte(prefix + "_")
	for range 26 {
		b = append(b, crockford[r.IntN(32)])
	}
	return string(b)
}

// realisticMix makes n events: mostly messages (short ones more often than
// long ones, some replies, some with an attachment), then reactions, read
// receipts, edits, deletions, typing and presence, and now and then a
// membership or conversation change. Ids are real ids; conversations of
// the user are spread over the deployment's 64 partitions.
func realisticMix(n int) []mixEvent {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields(mixWords)
	users := []string{"alice", "bob", "carol.dev", "dave@ops", "erin_s", "frank", "grace.h", "heidi"}
	convs := make([]string, 20)
	for i := range convs {
		convs[i] = mixID(r, "cnv")
	}
	text := func() string {
		var k int
		switch p := r.IntN(10); {
		case p < 6:
			k = 1 + r.IntN(10)
		case p < 9:
			k = 10 + r.IntN(30)
		default:
			k = 40 + r.IntN(80)
		}
		var sb strings.Builder
		for i := range k {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(words[r.IntN(len(words))])
		}
		return sb.String()
	}
	seq := map[string]int64{}
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	var msgs []*chat.Message
	out := make([]mixEvent, 0, n)
	for len(out) < n {
		cid := convs[r.IntN(len(convs))]
		actor := users[r.IntN(len(users))]
		at = at.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
		p := r.IntN(100)
		if p >= 94 { // ephemeral
			e := chat.Ephemeral{Type: chat.EventTyping, ConversationID: cid, UserID: actor}
			if p >= 97 {
				online := r.IntN(2) == 0
				e = chat.Ephemeral{Type: chat.EventPresence, UserID: actor, Online: &online}
			}
			out = append(out, mixEvent{eph: &e})
			continue
		}
		seq[cid]++
		ev := chat.Event{ConversationID: cid, Seq: seq[cid], EventID: mixID(r, "evt"), At: at, Actor: actor,
			Partition: chat.PartitionOf(cid, 64), Position: int64(1_000_000+len(out)) << 8}
		switch {
		case p < 66 || len(msgs) == 0:
			m := &chat.Message{ID: mixID(r, "msg"), ConversationID: cid, Seq: seq[cid], SenderID: actor,
				ClientID: mixID(r, "c"), Text: text(), CreatedAt: at, Version: 1}
			if r.IntN(10) == 0 && len(msgs) > 0 {
				reply := msgs[r.IntN(len(msgs))].ID
				m.ReplyTo = &reply
			}
			if r.IntN(20) == 0 {
				m.Attachments = []chat.Attachment{{ID: mixID(r, "att"), Name: "IMG_2041.jpeg", ContentType: "image/jpeg", Size: 1_483_201, Thumbnail: true}}
			}
			msgs = append(msgs, m)
			ev.Type, ev.Message = chat.EventMessageCreated, m
		case p < 76:
			ev.Type, ev.MessageID, ev.Emoji, ev.UserID = chat.EventReactionAdded, msgs[r.IntN(len(msgs))].ID, "👍", actor
		case p < 78:
			ev.Type, ev.MessageID, ev.Emoji, ev.UserID = chat.EventReactionRemoved, msgs[r.IntN(len(msgs))].ID, "👍", actor
		case p < 88:
			ev.Type, ev.UserID, ev.ReadSeq = chat.EventReadUpdated, actor, max(seq[cid]-1, 1)
		case p < 91:
			old := *msgs[r.IntN(len(msgs))]
			edited := at
			old.Text, old.EditedAt, old.Version = text(), &edited, old.Version+1
			old.Reactions = map[string][]string{"👍": {"bob", "carol.dev"}}
			ev.Type, ev.Message = chat.EventMessageUpdated, &old
		case p < 93:
			ev.Type, ev.MessageID = chat.EventMessageDeleted, msgs[r.IntN(len(msgs))].ID
		default:
			if r.IntN(2) == 0 {
				ev.Type, ev.UserID = chat.EventMemberAdded, users[r.IntN(len(users))]
			} else {
				ev.Type = chat.EventConversationUpdated
				ev.Conversation = &chat.Conversation{ID: cid, Kind: chat.KindGroup, Title: "Platform team", CreatedBy: "alice",
					CreatedAt: at.Add(-48 * time.Hour), Members: users, MemberCount: len(users), LastSeq: seq[cid],
					LastMessage: msgs[len(msgs)-1]}
				pub := ev.Conversation.Public()
				ev.Conversation = &pub
			}
		}
		out = append(out, mixEvent{ev: &ev})
	}
	return out
}

// mixItems makes the fan-out items of the mix, as the hub does.
func mixItems(mix []mixEvent) []*Item {
	items := make([]*Item, len(mix))
	for i, m := range mix {
		if m.ev != nil {
			items[i] = EventItem(*m.ev, time.Time{})
		} else {
			items[i] = EphemeralItem(*m.eph)
		}
	}
	return items
}

// mixCursor is the cursor of a user in 20 conversations: a position in
// each partition they live in.
func mixCursor(mix []mixEvent) chat.Cursor {
	c := chat.NewCursor(0x5a17)
	for _, m := range mix {
		if m.ev != nil {
			c.Positions[m.ev.Partition] = 1_000_000 << 8
		}
	}
	return c
}

// TestRealisticMixSizes logs the bytes per event of each encoding on the
// mix (go test -run RealisticMix -v), one event per frame and in frames of
// 16, and without the cursors (the same cursor in both encodings, a
// base64url string in JSON and its bytes in binary, which grows with the
// partitions a user's conversations live in); the binary
// encoding must take at most half of JSON's bytes.
func TestRealisticMixSizes(t *testing.T) {
	mix := realisticMix(2000)
	items := mixItems(mix)
	for _, batch := range []int{1, 16} {
		var js, pb int
		cj, cp := NewConn("u", 1), NewConn("u", 1)
		cj.cursor, cp.cursor = mixCursor(mix), mixCursor(mix)
		for i := 0; i < len(items); i += batch {
			part := items[i:min(i+batch, len(items))]
			js += len(cj.RenderBatch(nil, part))
			pb += len(cp.RenderBatchProto(nil, part))
		}
		t.Logf("frames of %2d: JSON %6.1f B/event, protobuf %6.1f B/event (%.0f%%), cursor %d B",
			batch, float64(js)/float64(len(items)), float64(pb)/float64(len(items)), 100*float64(pb)/float64(js), len(cj.Cursor()))
		if 2*pb > js { // issue 14's target: at most half of JSON's bytes
			t.Errorf("protobuf %d bytes, more than half of JSON's %d", pb, js)
		}
	}
	var js, pb int
	for _, it := range items {
		js += len(it.JSON())
		pb += len(it.Proto())
	}
	t.Logf("without cursors: JSON %6.1f B/event, protobuf %6.1f B/event (%.0f%%)",
		float64(js)/float64(len(items)), float64(pb)/float64(len(items)), 100*float64(pb)/float64(js))
}

type hijacked struct {
	http.ResponseWriter
	conn net.Conn
}

func (h hijacked) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriterSize(h.conn, 1<<10)), nil
}

// serverSocket is the server side of a WebSocket on a loopback TCP
// connection, negotiated as the gateway does, whose peer reads and drops
// everything.
func serverSocket(b *testing.B, subprotocol string) (*websocket.Conn, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	drained := make(chan struct{})
	go func() { defer close(drained); _, _ = io.Copy(io.Discard, peer) }()
	req := httptest.NewRequest(http.MethodGet, "/v1/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(make([]byte, 16)))
	req.Header.Set("Sec-WebSocket-Protocol", subprotocol)
	ws, err := websocket.Accept(hijacked{httptest.NewRecorder(), conn}, req, &websocket.AcceptOptions{
		Subprotocols: []string{subprotocol}, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		b.Fatal(err)
	}
	return ws, func() { ws.CloseNow(); conn.Close(); peer.Close(); <-drained }
}

// BenchmarkDeliveryMix is the gateway's work per delivery on the mix, for
// each encoding: every event encoded once (for all connections), then
// each of 100 connections takes the events in batches of 8, renders each
// batch with its own cursor into one frame and writes it through the
// WebSocket library to a loopback TCP socket. ns/delivery is the time of
// one event reaching one connection; cpu-ns/delivery the CPU time of the
// thread doing all that (the write system calls included), which is
// steadier than wall time on a shared machine; proc-cpu-ns/delivery the
// whole process's (garbage collection, but also the peer draining the
// socket); B/event the bytes each delivery puts on the wire.
func BenchmarkDeliveryMix(b *testing.B) {
	const (
		conns = 100
		batch = 8
	)
	mix := realisticMix(512)
	for _, enc := range []string{"json", "proto"} {
		b.Run("enc="+enc, func(b *testing.B) {
			typ, sub := websocket.MessageText, "parley.v1"
			if enc == "proto" {
				typ, sub = websocket.MessageBinary, "parley.v1+proto"
			}
			ws, done := serverSocket(b, sub)
			defer done()
			cs := make([]*Conn, conns)
			for i := range cs {
				cs[i] = NewConn(fmt.Sprint("user", i), 1)
			}
			ctx := context.Background()
			var frame []byte
			var wire int64
			b.ReportAllocs()
			runtime.LockOSThread() // so that the thread's CPU time is this loop's
			defer runtime.UnlockOSThread()
			cpu0, proc0 := threadCPU(), processCPU()
			for b.Loop() {
				items := mixItems(mix) // encoded once per iteration, as the hub does per event
				wire = 0
				for _, c := range cs {
					c.cursor = mixCursor(mix)
					for i := 0; i < len(items); i += batch {
						part := items[i:min(i+batch, len(items))]
						if enc == "proto" {
							frame = c.RenderBatchProto(frame[:0], part)
						} else {
							frame = c.RenderBatch(frame[:0], part)
						}
						if err := ws.Write(ctx, typ, frame); err != nil {
							b.Fatal(err)
						}
						wire += int64(len(frame))
					}
				}
			}
			cpu, proc := threadCPU()-cpu0, processCPU()-proc0
			deliveries := float64(b.N) * float64(conns*len(mix))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
			b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
			b.ReportMetric(float64(proc.Nanoseconds())/deliveries, "proc-cpu-ns/delivery")
			b.ReportMetric(float64(wire)/float64(conns*len(mix)), "B/event")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// threadCPU is the CPU time the calling thread has used (Linux).
func threadCPU() time.Duration { return rusage(1) } // RUSAGE_THREAD

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRenderBatchProto is BenchmarkRenderBatch for a binary
// connection: the same 100 events, one frame.
func BenchmarkRenderBatchProto(b *testing.B) {
	items := make([]*Item, 100)
	shared := EventItem(benchEvent(1), time.Time{})
	for i := range items {
		items[i] = &Item{Data: shared.JSON(), Partition: 5, Position: int64(i+1) << 8, Kind: KindEvent, event: shared.event}
	}
	c := NewConn("bob", 1024)
	var frame []byte
	b.ReportAllocs()
	for b.Loop() {
		c.cursor = chat.Cursor{Deployment: 7, Positions: map[int]int64{17: 1 << 20, 40: 1 << 21}}
		frame = c.RenderBatchProto(frame[:0], items)
	}
	b.SetBytes(int64(len(frame)))
}

// BenchmarkEncodeMix is the once-per-event encoding of the mix's durable
// events in each encoding (what the hub does before any delivery).
func BenchmarkEncodeMix(b *testing.B) {
	mix := realisticMix(512)
	for _, enc := range []string{"json", "proto"} {
		b.Run("enc="+enc, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, m := range mix {
					if m.ev == nil {
						continue
					}
					if enc == "proto" {
						_, _ = wire.EncodeEvent(*m.ev)
					} else {
						EncodeEvent(*m.ev)
					}
				}
			}
		})
	}
}

package check

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// valid is a small history with nothing wrong: alice sends three
// messages to c1 (seq 1 is member.added), bob watches c1 from the start on
// WebSocket, then resumes on SSE; carol watches on long-poll; the store
// and the index were read back.
func valid() History {
	h := History{
		{Kind: KindWatch, Receiver: "bob", ConversationID: "c1"},
		{Kind: KindWatch, Receiver: "carol", ConversationID: "c1"},
		{Kind: KindStored, ConversationID: "c1", Seq: 1, Type: "member.added", EventID: "e1"},
		{Kind: KindScan, ConversationID: "c1", Store: true, Index: true},
		{Kind: KindEvent, Receiver: "bob", Transport: "ws", ConversationID: "c1", Seq: 1, Type: "member.added", EventID: "e1"},
		{Kind: KindEvent, Receiver: "carol", Transport: "poll", ConversationID: "c1", Seq: 1, Type: "member.added", EventID: "e1"},
	}
	for i := 2; i <= 4; i++ {
		mid, cl, eid := fmt.Sprintf("m%d", i), fmt.Sprintf("k%d", i), fmt.Sprintf("e%d", i)
		tr := "ws"
		if i == 4 {
			tr = "sse" // bob resumed on SSE with his cursor
		}
		h = append(h,
			Record{Kind: KindOp, Process: "alice-1", Phase: Invoke, F: "send", ConversationID: "c1", SenderID: "alice", ClientID: cl},
			Record{Kind: KindOp, Process: "alice-1", Phase: OK, F: "send", ConversationID: "c1", SenderID: "alice", ClientID: cl, MessageID: mid, Seq: int64(i)},
			Record{Kind: KindStored, ConversationID: "c1", Seq: int64(i), Type: "message.created", EventID: eid, MessageID: mid, SenderID: "alice", ClientID: cl},
			Record{Kind: KindIndexed, ConversationID: "c1", MessageID: mid},
			Record{Kind: KindEvent, Receiver: "bob", Transport: tr, ConversationID: "c1", Seq: int64(i), Type: "message.created", EventID: eid, MessageID: mid},
			Record{Kind: KindEvent, Receiver: "carol", Transport: "poll", ConversationID: "c1", Seq: int64(i), Type: "message.created", EventID: eid, MessageID: mid},
		)
	}
	return h
}

// without returns h minus the records for which drop is true.
func without(h History, drop func(Record) bool) History {
	var out History
	for _, r := range h {
		if !drop(r) {
			out = append(out, r)
		}
	}
	return out
}

func counts(r Report) map[string]int {
	m := map[string]int{}
	for _, a := range r.Anomalies {
		if a.Count > 0 {
			m[a.Class] = a.Count
		}
	}
	return m
}

func TestValidHistoryHasNoAnomaly(t *testing.T) {
	rep := Check(valid())
	if !rep.OK() {
		var b bytes.Buffer
		_ = rep.WriteText(&b)
		t.Fatalf("a valid history is reported invalid:\n%s", b.String())
	}
	if rep.Ops != 3 || rep.Acked != 3 || rep.Events != 8 || rep.Receivers != 2 || rep.Stored != 4 || rep.Indexed != 3 {
		t.Errorf("checked %+v, want 3 ops, 3 acked, 8 events, 2 receivers, 4 stored, 3 indexed", rep)
	}
}

func TestEachAnomalyClassIsFoundWithExamples(t *testing.T) {
	isEvent := func(r Record, recv string, seq int64) bool {
		return r.Kind == KindEvent && r.Receiver == recv && r.Seq == seq
	}
	for _, tc := range []struct {
		name    string
		history func() History
		want    map[string]int
		example string
	}{
		{
			name:    "acked message never delivered to a watching member",
			history: func() History { return without(valid(), func(r Record) bool { return isEvent(r, "carol", 4) }) },
			want:    map[string]int{Lost: 1},
			example: "m4 (seq 4 of c1) was acknowledged to alice-1 but never delivered to carol",
		},
		{
			name: "acked message absent from the store",
			history: func() History {
				return without(valid(), func(r Record) bool {
					return (r.Kind == KindStored || r.Kind == KindIndexed || r.Kind == KindEvent) && r.MessageID == "m4"
				})
			},
			want:    map[string]int{Lost: 3}, // not stored, and never delivered to bob nor carol
			example: "m4 (seq 4 of c1, client_id k4) was acknowledged to alice-1 but is not in the store",
		},
		{
			name: "stored event (not acked) never delivered",
			history: func() History {
				h := without(valid(), func(r Record) bool { return isEvent(r, "bob", 1) })
				return h[:len(h):len(h)]
			},
			want:    map[string]int{Lost: 1, Gap: 1},
			example: "stored seq 1 of c1 (member.added (e1)) was never delivered to bob",
		},
		{
			name: "event delivered twice",
			history: func() History {
				h := valid()
				return append(h, Record{Kind: KindEvent, Receiver: "bob", Transport: "sse", ConversationID: "c1", Seq: 3, Type: "message.created", EventID: "e3", MessageID: "m3"})
			},
			want:    map[string]int{Duplicate: 1},
			example: "bob got seq 3 of c1 again (message.created m3 (e3) at bob, on sse)",
		},
		{
			name: "two stored messages for one client_id",
			history: func() History {
				h := valid()
				return append(h,
					Record{Kind: KindStored, ConversationID: "c1", Seq: 5, Type: "message.created", EventID: "e5", MessageID: "m5", SenderID: "alice", ClientID: "k2"},
					Record{Kind: KindIndexed, ConversationID: "c1", MessageID: "m5"},
					Record{Kind: KindEvent, Receiver: "bob", ConversationID: "c1", Seq: 5, Type: "message.created", EventID: "e5", MessageID: "m5"},
					Record{Kind: KindEvent, Receiver: "carol", ConversationID: "c1", Seq: 5, Type: "message.created", EventID: "e5", MessageID: "m5"})
			},
			want:    map[string]int{Duplicate: 1},
			example: "the store holds two messages for client_id k2 of alice in c1: m2 at seq 2 and m5 at seq 5",
		},
		{
			name: "events out of order",
			history: func() History {
				h := valid()
				var i3, i4 int
				for i, r := range h {
					if isEvent(r, "carol", 3) {
						i3 = i
					}
					if isEvent(r, "carol", 4) {
						i4 = i
					}
				}
				h[i3], h[i4] = h[i4], h[i3]
				return h
			},
			want:    map[string]int{Reorder: 1, Gap: 1}, // 2 then 4 jumps; 3 comes late
			example: "carol got seq 3 of c1 after seq 4 (on poll)",
		},
		{
			name:    "a seq jump at a receiver",
			history: func() History { return without(valid(), func(r Record) bool { return isEvent(r, "bob", 3) }) },
			want:    map[string]int{Gap: 1, Lost: 1},
			example: "bob got seq 4 of c1 right after seq 2 (on sse)",
		},
		{
			name: "a seq missing from the store's log",
			history: func() History {
				return without(valid(), func(r Record) bool { return r.Kind == KindStored && r.Seq == 1 })
			},
			want:    map[string]int{Gap: 1},
			example: "the store's log of c1 jumps from seq 0 to 2",
		},
		{
			name: "one seq, two messages",
			history: func() History {
				h := valid()
				for i, r := range h {
					if isEvent(r, "carol", 3) {
						h[i].EventID, h[i].MessageID = "e99", "m99"
					}
				}
				return h
			},
			want:    map[string]int{Inconsistent: 1, Lost: 1},
			example: "seq 3 of c1: carol got message.created m99 (e99) at carol, elsewhere it is message.created m3 (e3)",
		},
		{
			name: "one client_id acknowledged as two messages",
			history: func() History {
				return append(valid(), Record{Kind: KindOp, Process: "alice-2", Phase: OK, F: "send", ConversationID: "c1", SenderID: "alice", ClientID: "k2", MessageID: "m7", Seq: 2})
			},
			want:    map[string]int{Inconsistent: 3}, // seq 2 twice, client_id k2 twice, and the store says m2
			example: "seq 2 of c1 acknowledged as two messages: m2 and m7",
		},
		{
			name: "a failed send that was applied",
			history: func() History {
				return append(valid(), Record{Kind: KindOp, Process: "alice-1", Phase: Fail, F: "send", ConversationID: "c1", SenderID: "alice", ClientID: "k3", Note: "invalid_request"})
			},
			want:    map[string]int{Inconsistent: 1},
			example: "a send of client_id k3 by alice-1 in c1 failed (invalid_request), yet the store holds it as m3 at seq 3",
		},
		{
			name: "search misses a stored message",
			history: func() History {
				return without(valid(), func(r Record) bool { return r.Kind == KindIndexed && r.MessageID == "m2" })
			},
			want:    map[string]int{IndexMismatch: 1},
			example: "m2 (seq 2 of c1) is stored but not found by search",
		},
		{
			name: "search finds a deleted message",
			history: func() History {
				h := valid()
				return append(h,
					Record{Kind: KindStored, ConversationID: "c1", Seq: 5, Type: "message.deleted", EventID: "e5", MessageID: "m2"},
					Record{Kind: KindEvent, Receiver: "bob", ConversationID: "c1", Seq: 5, Type: "message.deleted", EventID: "e5", MessageID: "m2"},
					Record{Kind: KindEvent, Receiver: "carol", ConversationID: "c1", Seq: 5, Type: "message.deleted", EventID: "e5", MessageID: "m2"})
			},
			want:    map[string]int{IndexMismatch: 1},
			example: "search finds m2 in c1, which was deleted",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(tc.history())
			if got := counts(rep); !reflect.DeepEqual(got, tc.want) {
				var b bytes.Buffer
				_ = rep.WriteText(&b)
				t.Fatalf("counts %v, want %v\n%s", got, tc.want, b.String())
			}
			var all []string
			for _, a := range rep.Anomalies {
				all = append(all, a.Examples...)
			}
			found := false
			for _, e := range all {
				found = found || e == tc.example
			}
			if !found {
				t.Errorf("no example %q among %q", tc.example, all)
			}
			if rep.OK() {
				t.Error("OK() with anomalies")
			}
		})
	}
}

func TestExamplesAreCappedButCountsAreNot(t *testing.T) {
	h := valid()
	for range 20 {
		h = append(h, Record{Kind: KindEvent, Receiver: "bob", ConversationID: "c1", Seq: 2, Type: "message.created", EventID: "e2", MessageID: "m2"})
	}
	rep := Check(h)
	for _, a := range rep.Anomalies {
		if a.Class == Duplicate && (a.Count != 20 || len(a.Examples) != MaxExamples) {
			t.Fatalf("duplicate: count %d with %d examples, want 20 with %d", a.Count, len(a.Examples), MaxExamples)
		}
	}
}

func TestHistoryRoundTripsThroughJSONLines(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, valid()); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, valid()) {
		t.Fatalf("read back %d records differing from the %d written", len(got), len(valid()))
	}
	if _, err := Read(strings.NewReader("{\"kind\":\"op\"}\n{oops\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a malformed line: %v, want an error naming line 2", err)
	}
}

func TestEventRecordKeepsDurableEventsOnly(t *testing.T) {
	ev := map[string]any{"type": "message.created", "conversation_id": "c1", "seq": 7.0, "event_id": "e7",
		"message": map[string]any{"id": "m7", "sender_id": "alice", "client_id": "k7"}}
	r, ok := EventRecord("bob", "ws", ev)
	if !ok || r.Seq != 7 || r.MessageID != "m7" || r.ClientID != "k7" || r.SenderID != "alice" || r.EventID != "e7" {
		t.Fatalf("EventRecord = %+v, %v", r, ok)
	}
	for _, m := range []map[string]any{{"type": "ready"}, {"type": "typing", "conversation_id": "c1"}, {"type": "pong", "ref": "x"}} {
		if _, ok := EventRecord("bob", "ws", m); ok {
			t.Errorf("%v taken as a durable event", m)
		}
	}
}

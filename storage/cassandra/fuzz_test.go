package cassandra

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// decode and encode are a row's codec: a claimed batch is the adapter's
// own JSON (whose changes are record.Change), every other row its stored
// form.
func decode(raw []byte, v any) error {
	if _, ok := v.(*claimedBatch); ok {
		return json.Unmarshal(raw, v)
	}
	return record.DecodeRow(raw, v)
}

func encode(v any) ([]byte, error) {
	if _, ok := v.(*claimedBatch); ok {
		return json.Marshal(v)
	}
	return record.EncodeRow(v)
}

// stable decodes raw into a T and checks that its encoding is a fixed
// point: decoded and encoded again, the same bytes.
func stable[T any](t *testing.T, raw []byte) (*T, bool) {
	t.Helper()
	v := new(T)
	if decode(raw, v) != nil {
		return nil, false
	}
	once, err := encode(v)
	if err != nil {
		t.Fatalf("%T decoded from %q does not encode: %v", v, raw, err)
	}
	w := new(T)
	if err := decode(once, w); err != nil {
		t.Fatalf("%T: its own encoding %q does not decode: %v", v, once, err)
	}
	twice, _ := encode(w)
	if !bytes.Equal(once, twice) {
		t.Fatalf("%T: %q re-encodes as %q, then as %q", v, raw, once, twice)
	}
	return v, true
}

// FuzzStoredRecords: whatever a row's JSON holds (the state of a
// conversation, an event, a claimed batch that Own replays after a
// crash), decoding never panics and re-encoding is stable; scrubbing a
// decoded message leaves no content and does not touch the original.
func FuzzStoredRecords(f *testing.F) {
	batch, _ := json.Marshal(claimedBatch{Intents: []*intent{{TS: 7, LastPosition: 259, Change: record.Change{Change: chat.Change{PrevSeq: 1,
		Conversation: chat.Conversation{ID: "cnv_1", Members: []string{"alice"}, LastSeq: 2},
		Events:       []chat.Event{{Type: "message.created", ConversationID: "cnv_1", Seq: 2, Message: &chat.Message{ID: "msg_1", Text: "hi", Attachments: []chat.Attachment{{ID: "att_1"}}}}},
		Dedups:       []chat.Dedup{{ConversationID: "cnv_1", SenderID: "alice", ClientID: "c1", MessageID: "msg_1"}},
	}}}}})
	f.Add(batch)
	f.Add([]byte(`{"intents":[null,{"change":null}]}`))
	f.Add([]byte(`{"type":"message.created","message":{"id":"m","text":"secret","attachments":[{"id":"a"}],"reactions":{"x":null}}}`))
	f.Add([]byte(`{"last_position":-1,"last_activity":"2026-13-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if b, ok := stable[claimedBatch](t, raw); ok {
			for _, in := range b.Intents {
				if in == nil {
					continue
				}
				for _, ev := range in.Change.Events {
					_ = bucketOf(ev.Seq)
				}
			}
		}
		if c, ok := stable[chat.Conversation](t, raw); ok {
			var w struct {
				LastPosition int64     `json:"last_position"`
				LastActivity time.Time `json:"last_activity"`
			}
			if json.Unmarshal(raw, &w) == nil && (c.LastPosition != w.LastPosition || !c.LastActivity.Equal(w.LastActivity)) {
				t.Fatalf("the stored position or activity was dropped: %+v from %q", c, raw)
			}
		}
		if ev, ok := stable[chat.Event](t, raw); ok && ev.Message != nil {
			before := *ev.Message
			s := scrubbed(ev.Message)
			if s.Text != "" || len(s.Attachments) != 0 || s.ID != ev.Message.ID {
				t.Fatalf("scrubbed %+v to %+v", ev.Message, s)
			}
			if !reflect.DeepEqual(before, *ev.Message) {
				t.Fatal("scrubbing changed the original message")
			}
		}
		stable[chat.Message](t, raw)
		stable[chat.AttachmentRecord](t, raw)
		stable[chat.Membership](t, raw)
		stable[chat.Device](t, raw)
		stable[chat.ConversationSettings](t, raw)
	})
}

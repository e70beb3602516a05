package pebble

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// reencode decodes raw into a new T and encodes it again; ok is false
// when raw does not decode.
func reencode[T any](t *testing.T, raw []byte) (T, []byte, bool) {
	var v T
	if record.DecodeRow(raw, &v) != nil {
		return v, nil, false
	}
	out, err := record.EncodeRow(&v)
	if err != nil {
		t.Fatalf("%T decoded from %q does not encode: %v", v, raw, err)
	}
	return v, out, true
}

// stable checks that what a stored record decodes to encodes to bytes
// that decode and encode to themselves: a record read, changed and
// written back keeps what it held.
func stable[T any](t *testing.T, raw []byte) (T, bool) {
	t.Helper()
	v, once, ok := reencode[T](t, raw)
	if !ok {
		return v, false
	}
	_, twice, ok := reencode[T](t, once)
	if !ok || !bytes.Equal(once, twice) {
		t.Fatalf("%T: %q re-encodes as %q, then as %q", v, raw, once, twice)
	}
	return v, true
}

// FuzzStoredRecords: whatever bytes a stored record holds (a torn write,
// an older version, a bug), decoding it never panics, its re-encoding is
// stable, a decoded conversation is cached as an independent equal copy,
// and the key codec is its own inverse.
func FuzzStoredRecords(f *testing.F) {
	conv, _ := record.EncodeRow(&chat.Conversation{ID: "cnv_1", Kind: "group", Members: []string{"alice", "bob"}, LastSeq: 3, Tally: &chat.Tally{Messages: 2, Deleted: 1, Deletions: []chat.Deletion{{At: 3, Seq: 2}}}, LastPosition: 259})
	ev, _ := record.EncodeRow(&chat.Event{Type: "message.created", ConversationID: "cnv_1", Seq: 2, Message: &chat.Message{ID: "msg_1", Text: "hi", Reactions: map[string][]string{"👍": {"bob"}}}})
	f.Add(conv, "cnv_1")
	f.Add(ev, "a\x00b")
	f.Add([]byte(`{"members":null,"tally":{"deletions":[{"at":1},{"seq":2}]},"last_message":{"reply_to":"msg_0","edited_at":"2026-01-01T00:00:00Z"}}`), "\x00\xff\x00\x01")
	f.Add([]byte(`{"last_activity":"0001-01-01T00:00:00+05:00"}`), "")
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1}, "x")
	f.Fuzz(func(t *testing.T, raw []byte, key string) {
		if c, ok := stable[chat.Conversation](t, raw); ok {
			var cc convCache
			cc.put("cnv", raw, c)
			got, ok := cc.get("cnv", raw)
			if !ok || !reflect.DeepEqual(got, c) {
				t.Fatalf("the cache gives back %+v for %+v", got, c)
			}
			if len(got.Members) > 0 {
				got.Members[0] += "!"
				if again, _ := cc.get("cnv", raw); reflect.DeepEqual(again, got) {
					t.Fatal("a conversation from the cache shares its members with the cache")
				}
			}
		}
		stable[chat.Event](t, raw)
		stable[chat.Message](t, raw)
		stable[chat.Membership](t, raw)
		stable[chat.AttachmentRecord](t, raw)
		stable[chat.Device](t, raw)
		stable[chat.ConversationSettings](t, raw)

		enc := appendString(nil, key)
		if got, err := lastString(enc); err != nil || got != key {
			t.Fatalf("key element %q comes back as %q (%v)", key, got, err)
		}
		_, _ = lastString(raw)
		if v, err := decodeUint(raw); err == nil && !bytes.Equal(encodeUint(v), raw) {
			t.Fatalf("number %x decodes to %d, which encodes as %x", raw, v, encodeUint(v))
		}
	})
}

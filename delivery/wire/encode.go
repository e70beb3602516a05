package wire

import (
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/parleychat/parley/chat"
)

// The hub encodes every durable event once for the binary connections, so
// that encoding writes the bytes straight from the domain values: no
// intermediate generated structs to allocate and walk. The bytes are the
// ones proto.Marshal (deterministic) makes of EventProto's result, field
// for field; TestHandEncodingEqualsMarshal holds the two together.

// appendEvent appends ev as an Event without its cursor.
func appendEvent(b []byte, ev *chat.Event, t int32) []byte {
	b = appendInt(b, 1, int64(t))
	b = appendString(b, 2, ev.ConversationID)
	b = appendInt(b, 3, ev.Seq)
	b = appendString(b, 4, ev.EventID)
	b = appendInt(b, 5, Nanos(ev.At))
	b = appendString(b, 6, ev.Actor)
	if ev.Message != nil {
		var at int
		b, at = beginNested(b, 7)
		b = appendMessage(b, ev.Message, ev)
		b = endNested(b, at)
	}
	b = appendString(b, 8, ev.MessageID)
	b = appendString(b, 9, ev.Emoji)
	b = appendString(b, 10, ev.UserID)
	if ev.Conversation != nil {
		var at int
		b, at = beginNested(b, 11)
		b = appendConversation(b, ev.Conversation)
		b = endNested(b, at)
	}
	return appendInt(b, 12, ev.ReadSeq)
}

// appendMessage appends m as a Message. In an Event (in is the event,
// else nil) it leaves out what the Event carries, as EventProto does.
func appendMessage(b []byte, m *chat.Message, in *chat.Event) []byte {
	b = appendString(b, 1, m.ID)
	inherited := in != nil && inherits(in, m)
	if in == nil {
		b = appendString(b, 2, m.ConversationID)
	}
	if !inherited {
		b = appendInt(b, 3, m.Seq)
		b = appendString(b, 4, m.SenderID)
	}
	b = appendString(b, 5, m.ClientID)
	b = appendString(b, 6, m.Text)
	for i := range m.Attachments {
		a := &m.Attachments[i]
		var at int
		b, at = beginNested(b, 7)
		b = appendString(b, 1, a.ID)
		b = appendString(b, 2, a.Name)
		b = appendString(b, 3, a.ContentType)
		b = appendInt(b, 4, a.Size)
		b = appendBool(b, 5, a.Thumbnail)
		b = endNested(b, at)
	}
	if m.ReplyTo != nil { // optional: present even when empty
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendString(b, *m.ReplyTo)
	}
	if !inherited {
		b = appendInt(b, 9, Nanos(m.CreatedAt))
	}
	if m.EditedAt != nil {
		b = appendInt(b, 10, Nanos(*m.EditedAt))
	}
	b = appendBool(b, 11, m.Deleted)
	if len(m.Reactions) > 0 {
		emojis := make([]string, 0, len(m.Reactions))
		for e := range m.Reactions {
			emojis = append(emojis, e)
		}
		slices.Sort(emojis) // deterministic, as proto.Marshal's map order
		for _, e := range emojis {
			var entry, value int
			b, entry = beginNested(b, 12)
			b = protowire.AppendTag(b, 1, protowire.BytesType) // a map entry's key and value are always written
			b = protowire.AppendString(b, e)
			b, value = beginNested(b, 2)
			for _, u := range m.Reactions[e] {
				b = protowire.AppendTag(b, 1, protowire.BytesType)
				b = protowire.AppendString(b, u)
			}
			b = endNested(b, value)
			b = endNested(b, entry)
		}
	}
	return appendInt(b, 13, int64(m.Version))
}

func appendConversation(b []byte, c *chat.Conversation) []byte {
	b = appendString(b, 1, c.ID)
	b = appendString(b, 2, c.Kind)
	b = appendString(b, 3, c.Title)
	b = appendString(b, 4, c.CreatedBy)
	b = appendInt(b, 5, Nanos(c.CreatedAt))
	for _, m := range c.Members {
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendString(b, m)
	}
	b = appendInt(b, 7, int64(c.MemberCount))
	b = appendInt(b, 8, c.LastSeq)
	b = appendInt(b, 9, c.ReadSeq)
	b = appendInt(b, 10, c.Unread)
	b = appendBool(b, 11, c.Muted)
	if c.LastMessage != nil {
		var at int
		b, at = beginNested(b, 12)
		b = appendMessage(b, c.LastMessage, nil)
		b = endNested(b, at)
	}
	return b
}

// appendString appends a proto3 string field, left out when empty.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendInt appends a proto3 int64 (or enum) field, left out when zero.
func appendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// appendBool appends a proto3 bool field, left out when false.
func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return append(b, 1)
}

// beginNested starts a nested message field: its tag and a one-byte
// length to be fixed by endNested, which gets the returned position.
func beginNested(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = append(b, 0)
	return b, len(b)
}

// endNested writes the length of the nested message that began at at
// (the position after its one-byte length), moving the message when its
// length needs more bytes.
func endNested(b []byte, at int) []byte {
	n := len(b) - at
	if n < 0x80 {
		b[at-1] = byte(n)
		return b
	}
	k := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, k-1)...)
	copy(b[at-1+k:], b[at:at+n])
	protowire.AppendVarint(b[:at-1], uint64(n))
	return b
}

package fanout

import (
	"encoding/json"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/wire"
)

// An item's two encodings: JSON (subprotocol parley.v1, SSE, long-poll)
// and binary (subprotocol parley.v1+proto, package wire). Each is made
// once and shared by every connection the item is queued on, and only on
// the first demand of a connection that needs it: a gateway whose
// connections all speak one encoding never pays for the other.

// The encoders, variables so that tests can count their calls.
var (
	encodeEventJSON      = EncodeEvent
	encodeEphemeralJSON  = func(e chat.Ephemeral) ([]byte, error) { return json.Marshal(e) }
	encodeEventProto     = wire.EncodeEvent
	encodeEphemeralProto = wire.EncodeEphemeral
)

// JSON returns the item's JSON: for a durable event, its object without
// the closing brace (each connection appends its cursor, Render); for
// anything else, the complete object. It is Data when the item was made
// with it, else made on the first call from the value the item was made
// of; it is nil when the item renders nothing or cannot be encoded.
func (it *Item) JSON() []byte {
	if it.Data != nil {
		return it.Data
	}
	it.json.once.Do(func() {
		switch {
		case it.event != nil:
			it.json.data = encodeEventJSON(*it.event)
		case it.ephemeral != nil:
			if b, err := encodeEphemeralJSON(*it.ephemeral); err == nil {
				it.json.data = b
			}
		}
	})
	return it.json.data
}

// Proto returns the item's binary encoding: for a durable event, its Event
// without the cursor (each connection appends its own, RenderProto); for
// anything else rendered, one complete ServerMessage. It is made on the
// first call, from the value the item was made of when the item kept it,
// else from its JSON; it is nil when the item renders nothing or cannot be
// encoded.
func (it *Item) Proto() []byte {
	it.proto.once.Do(func() { it.proto.data = it.encodeProto() })
	return it.proto.data
}

func (it *Item) encodeProto() []byte {
	var (
		b   []byte
		err error
	)
	switch {
	case it.Kind == KindEvent && it.event != nil:
		b, err = encodeEventProto(*it.event)
	case it.Kind == KindEvent && it.Data != nil:
		b, err = wire.EventFromJSON(append(it.Data[:len(it.Data):len(it.Data)], '}'))
	case it.Kind == KindEphemeral && it.ephemeral != nil:
		b, err = encodeEphemeralProto(*it.ephemeral)
	case it.Kind == KindEphemeral || it.Kind == KindControl:
		b, err = wire.FromJSON(it.Data)
	}
	if err != nil {
		return nil
	}
	return b
}

// cursorScratch is the stack space a connection's cursor is encoded in
// before it is appended to a binary frame: enough for a user whose
// conversations live in some 40 partitions (a longer cursor is encoded on
// the heap).
const cursorScratch = 256

// RenderProto is Render for a binary connection: it appends the item to a
// binary frame (wire.AppendEvent, wire.AppendMessage), advancing the
// cursor. It reports false, with dst unchanged, for what renders nothing.
func (c *Conn) RenderProto(dst []byte, it *Item) ([]byte, bool) {
	var scratch [cursorScratch]byte
	return c.renderProto(dst, it, scratch[:0])
}

// renderProto is RenderProto with the scratch space for the cursor.
func (c *Conn) renderProto(dst []byte, it *Item, scratch []byte) ([]byte, bool) {
	switch it.Kind {
	case KindEvent:
		b := it.Proto()
		if b == nil || !c.cursor.Advance(it.Partition, it.Position) {
			return dst, false
		}
		return wire.AppendEvent(dst, b, c.cursor.AppendBinary(scratch)), true
	case KindMark:
		c.cursor.Advance(it.Partition, it.Position)
		return dst, false
	case KindHeartbeat:
		return dst, false
	}
	b := it.Proto()
	if b == nil {
		return dst, false
	}
	return wire.AppendMessage(dst, b), true
}

// RenderBatchProto renders items into one binary frame: a ServerFrame of
// one message per item rendered.
func (c *Conn) RenderBatchProto(dst []byte, items []*Item) []byte {
	var scratch [cursorScratch]byte
	for _, it := range items {
		dst, _ = c.renderProto(dst, it, scratch[:0])
	}
	return dst
}

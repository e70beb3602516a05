// Package fanout delivers sequenced events to the realtime connections of
// one gateway. The Hub reads the events log, encodes each event once and
// queues it, without blocking, on every local connection of its
// recipients; a Conn is one connection's bounded queue, its cursor, and
// the rendering of what its transport writes. Transports (WebSocket, SSE,
// long-poll) live in the gateway and only drain Conns.
package fanout

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
)

// Kind says how an Item is rendered.
type Kind uint8

const (
	// KindEvent is a durable event: its JSON (Item.JSON) lacks the closing
	// brace, and each connection appends its own cursor.
	KindEvent Kind = iota
	// KindEphemeral is a typing or presence event: complete JSON.
	KindEphemeral
	// KindControl is an answer to the client (ack, pong, error): complete
	// JSON, written before any queued event.
	KindControl
	// KindMark moves the cursor and renders nothing.
	KindMark
	// KindHeartbeat asks the transport to show it is alive (an SSE
	// comment line); it renders nothing.
	KindHeartbeat
)

// Item is one thing queued for connections. An Item is shared by every
// connection it is queued on and never modified once queued.
type Item struct {
	// Data is the item's JSON when it was made with it (control items);
	// an event's or ephemeral event's JSON is made on demand (JSON).
	Data      []byte
	Type      string // the event type (SSE's "event:" line)
	Partition int
	Position  int64
	Kind      Kind
	// Received is when the hub read the event's record from the log (zero
	// for replayed events), for the events_to_socket hop.
	Received time.Time
	// Sequenced is when the sequencer made the event (its At; zero for
	// replayed events), for parley_delivery_duration_seconds.
	Sequenced time.Time
	// Trace is the traceparent of the sequencer's span that made the
	// event ("" untraced): the socket write's span continues it.
	Trace string

	// Each encoding is made on the first demand of a connection that
	// needs it, once for all of them (encodings.go): JSON for parley.v1,
	// SSE and long-poll, binary for parley.v1+proto.
	event     *chat.Event     // what the item encodes, when kept
	ephemeral *chat.Ephemeral // likewise
	json      encodeOnce
	proto     encodeOnce
}

// heartbeat is the one heartbeat item every connection shares.
var heartbeat = &Item{Kind: KindHeartbeat}

// EncodeEvent encodes ev in JSON for clients, without its closing brace
// (the connection appends its cursor). It returns nil when ev cannot be
// encoded.
func EncodeEvent(ev chat.Event) []byte {
	ev.Partition, ev.Position = 0, 0
	if ev.Message != nil {
		m := *ev.Message
		m.Normalize()
		ev.Message = &m
	}
	b, err := json.Marshal(ev)
	if err != nil || len(b) < 2 {
		return nil
	}
	return b[:len(b)-1]
}

// EventItem is the item of a durable event read at received. It encodes
// nothing yet: each encoding is made once, when a connection first needs
// it (Item.JSON, Item.Proto).
func EventItem(ev chat.Event, received time.Time) *Item {
	return &Item{Type: ev.Type, Partition: ev.Partition, Position: ev.Position, Kind: KindEvent, Received: received, Sequenced: sequencedAt(ev, received), event: &ev}
}

// sequencedAt is ev's sequencing time for a live event, zero for a replay.
func sequencedAt(ev chat.Event, received time.Time) time.Time {
	if received.IsZero() {
		return time.Time{}
	}
	return ev.At
}

// EphemeralItem is the item of a typing, presence or user.updated event.
// Like EventItem, it encodes nothing yet.
func EphemeralItem(e chat.Ephemeral) *Item {
	return &Item{Type: e.Type, Kind: KindEphemeral, ephemeral: &e}
}

// encodeOnce is one of an item's encodings, made at most once.
type encodeOnce struct {
	once sync.Once
	data []byte
}

// ControlItem is an answer to one client: complete JSON.
func ControlItem(data []byte) *Item { return &Item{Data: data, Type: "message", Kind: KindControl} }

// timeZero marks items that were not read live (replay).
var timeZero time.Time

// Package check is Parley's history checker, in the manner of Jepsen's
// queue workloads: clients record every operation they invoke and its
// outcome, and every event each receiver got on whichever transport; the
// store's log and the search index are read back at the end; Check then
// finds every broken promise in the whole history.
//
// A history is a sequence of Records, kept in order (a JSON object per
// line on disk, see Write and Read). The order of a receiver's Event
// records is the order it received them, so a receiver that resumes on
// another transport with its cursor is one receiver across connections.
//
// The promises checked, each an anomaly class of the Report:
//
//   - lost: a send acknowledged (ok) whose message a watching receiver
//     never got, or that the store's log does not hold;
//   - duplicate: a receiver got one event twice, or the store holds two
//     messages for one (sender, client_id);
//   - reorder: a receiver got a conversation's event after a later one;
//   - gap: a receiver's seqs of a conversation jump, or the store's log
//     misses a seq;
//   - inconsistent: one seq with two different events (between receivers,
//     the store and acknowledgements), one client_id acknowledged as two
//     messages, or a send that failed whose message exists;
//   - index_mismatch: once the indexer caught up, search finds a message
//     the store does not hold undeleted, or misses one it does.
package check

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Record kinds.
const (
	KindOp      = "op"      // an operation's invoke or outcome
	KindEvent   = "event"   // a durable event a receiver got
	KindWatch   = "watch"   // a receiver must get every event of a conversation after a seq
	KindStored  = "stored"  // a durable event of the store's log, read back at the end
	KindIndexed = "indexed" // a message search found, read back at the end
	KindScan    = "scan"    // the store (and maybe the index) was read for a conversation
)

// Operation phases, as Jepsen names them.
const (
	Invoke  = "invoke"
	OK      = "ok"
	Fail    = "fail"    // definitely not applied (a 4xx, or an error frame)
	Unknown = "unknown" // maybe applied (timeout, 503, connection lost)
)

// Record is one line of a history. Which fields matter depends on Kind.
type Record struct {
	Kind string    `json:"kind"`
	Time time.Time `json:"time,omitzero"`

	// Op: the client (Process) invoking F ("send") and the phase.
	Process string `json:"process,omitempty"`
	Phase   string `json:"phase,omitempty"`
	F       string `json:"f,omitempty"`

	// Event, Watch: the receiver (a user's logical stream, across
	// reconnects) and the transport the event came on.
	Receiver  string `json:"receiver,omitempty"`
	Transport string `json:"transport,omitempty"`

	ConversationID string `json:"conversation_id,omitempty"`
	Seq            int64  `json:"seq,omitempty"`
	Type           string `json:"type,omitempty"`     // event type
	EventID        string `json:"event_id,omitempty"` // durable event id
	MessageID      string `json:"message_id,omitempty"`
	SenderID       string `json:"sender_id,omitempty"`
	ClientID       string `json:"client_id,omitempty"`

	// Watch: the receiver must get every event of ConversationID after
	// AfterSeq.
	AfterSeq int64 `json:"after_seq,omitempty"`

	// Scan: what was read for ConversationID.
	Store bool `json:"store,omitempty"`
	Index bool `json:"index,omitempty"`

	// Note is free text for people reading the history (an error code).
	Note string `json:"note,omitempty"`
}

// History is a recorded run.
type History []Record

// Write writes h as JSON lines.
func Write(w io.Writer, h History) error {
	enc := json.NewEncoder(w)
	for _, r := range h {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("check: write history: %w", err)
		}
	}
	return nil
}

// Read reads a history written by Write (or by any client that writes
// one Record per line). Blank lines are skipped; a malformed line is an
// error naming its number.
func Read(r io.Reader) (History, error) {
	var h History
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("check: history line %d: %w", n, err)
		}
		h = append(h, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("check: read history: %w", err)
	}
	return h, nil
}

// EventRecord turns an event object as a client receives it (any
// transport) into a Record for receiver; ok is false for objects that are
// not durable events (ready, ack, pong, typing, presence …).
func EventRecord(receiver, transport string, m map[string]any) (Record, bool) {
	seq, _ := m["seq"].(float64)
	cid, _ := m["conversation_id"].(string)
	if seq <= 0 || cid == "" {
		return Record{}, false
	}
	r := Record{Kind: KindEvent, Time: time.Now().UTC(), Receiver: receiver, Transport: transport, ConversationID: cid, Seq: int64(seq)}
	r.Type, _ = m["type"].(string)
	r.EventID, _ = m["event_id"].(string)
	r.MessageID, _ = m["message_id"].(string)
	if msg, ok := m["message"].(map[string]any); ok {
		r.MessageID, _ = msg["id"].(string)
		r.SenderID, _ = msg["sender_id"].(string)
		r.ClientID, _ = msg["client_id"].(string)
	}
	return r, true
}

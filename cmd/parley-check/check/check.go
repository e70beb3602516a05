package check

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Anomaly classes, in the order a Report lists them.
const (
	Lost          = "lost"
	Duplicate     = "duplicate"
	Reorder       = "reorder"
	Gap           = "gap"
	Inconsistent  = "inconsistent"
	IndexMismatch = "index_mismatch"
)

// Classes are every anomaly class, in report order.
var Classes = []string{Lost, Duplicate, Reorder, Gap, Inconsistent, IndexMismatch}

// MaxExamples is how many examples a class keeps (the first found).
const MaxExamples = 5

// Anomaly is one class's result: how many were found and the first few.
type Anomaly struct {
	Class    string   `json:"class"`
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

// Report is what Check found. The counts of what was checked tell a run
// that proved something from one that recorded nothing.
type Report struct {
	Ops       int       `json:"ops"`       // operations invoked
	Acked     int       `json:"acked"`     // operations acknowledged (ok)
	Events    int       `json:"events"`    // events received, over every receiver
	Receivers int       `json:"receivers"` // distinct receivers
	Stored    int       `json:"stored"`    // events read back from the store
	Indexed   int       `json:"indexed"`   // messages read back from the index
	Anomalies []Anomaly `json:"anomalies"` // one per class, in Classes order
}

// OK reports whether every anomaly count is 0.
func (r Report) OK() bool {
	for _, a := range r.Anomalies {
		if a.Count > 0 {
			return false
		}
	}
	return true
}

// Count is the count of class.
func (r Report) Count(class string) int {
	for _, a := range r.Anomalies {
		if a.Class == class {
			return a.Count
		}
	}
	return 0
}

// WriteText writes the report for people: what was checked, then one line
// per class with its first examples indented below.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "checked %d ops (%d ok), %d events at %d receivers, %d stored events, %d indexed messages\n",
		r.Ops, r.Acked, r.Events, r.Receivers, r.Stored, r.Indexed)
	for _, a := range r.Anomalies {
		fmt.Fprintf(&b, "%-15s %d\n", a.Class, a.Count)
		for _, e := range a.Examples {
			fmt.Fprintf(&b, "    %s\n", e)
		}
	}
	if r.OK() {
		b.WriteString("valid: every count is 0\n")
	} else {
		b.WriteString("INVALID\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tally collects a report's anomalies.
type tally map[string]*Anomaly

func (t tally) add(class, format string, args ...any) {
	a := t[class]
	a.Count++
	if len(a.Examples) < MaxExamples {
		a.Examples = append(a.Examples, fmt.Sprintf(format, args...))
	}
}

// seqKey names one event of one conversation.
type seqKey struct {
	cid string
	seq int64
}

// sendKey names one send as the dedup rule does.
type sendKey struct{ cid, sender, clientID string }

// same reports whether two observations of one (conversation, seq) can be
// the same event: equal event ids when both carry one, else no
// contradiction in type or message id.
func same(a, b Record) bool {
	if a.EventID != "" && b.EventID != "" {
		return a.EventID == b.EventID
	}
	if a.Type != "" && b.Type != "" && a.Type != b.Type {
		return false
	}
	return a.MessageID == "" || b.MessageID == "" || a.MessageID == b.MessageID
}

func describe(r Record) string {
	s := r.Type
	if r.MessageID != "" {
		s += " " + r.MessageID
	}
	if r.EventID != "" {
		s += " (" + r.EventID + ")"
	}
	if r.Kind == KindOp {
		s = "ack of " + r.MessageID + " by " + r.Process
	}
	if r.Receiver != "" {
		s += " at " + r.Receiver
	}
	if s == "" {
		s = r.Kind
	}
	return s
}

// Check finds every anomaly of h. It never fails: a history that records
// nothing checks as valid with zero counts, which the counts in the
// Report show.
func Check(h History) Report {
	t := tally{}
	for _, c := range Classes {
		t[c] = &Anomaly{Class: c}
	}
	var rep Report

	// What the store's log and the index hold, per conversation.
	storeRead := map[string]bool{}
	indexRead := map[string]bool{}
	for _, r := range h {
		if r.Kind == KindScan {
			storeRead[r.ConversationID] = storeRead[r.ConversationID] || r.Store
			indexRead[r.ConversationID] = indexRead[r.ConversationID] || r.Index
		}
	}
	stored := map[seqKey]Record{}
	storedSeqs := map[string][]int64{}
	storedMsg := map[string]Record{} // message id -> its message.created
	storedSend := map[sendKey]Record{}
	deleted := map[string]bool{}
	indexed := map[string]map[string]bool{}
	for _, r := range h {
		switch r.Kind {
		case KindStored:
			rep.Stored++
			k := seqKey{r.ConversationID, r.Seq}
			if prev, ok := stored[k]; ok {
				if same(prev, r) {
					t.add(Duplicate, "the store's log of %s holds seq %d twice: %s", r.ConversationID, r.Seq, describe(r))
				} else {
					t.add(Inconsistent, "the store's log of %s holds two events at seq %d: %s and %s", r.ConversationID, r.Seq, describe(prev), describe(r))
				}
				continue
			}
			stored[k] = r
			storedSeqs[r.ConversationID] = append(storedSeqs[r.ConversationID], r.Seq)
			switch r.Type {
			case "message.created":
				storedMsg[r.MessageID] = r
				if r.ClientID != "" {
					sk := sendKey{r.ConversationID, r.SenderID, r.ClientID}
					if prev, ok := storedSend[sk]; ok && prev.MessageID != r.MessageID {
						t.add(Duplicate, "the store holds two messages for client_id %s of %s in %s: %s at seq %d and %s at seq %d",
							r.ClientID, r.SenderID, r.ConversationID, prev.MessageID, prev.Seq, r.MessageID, r.Seq)
					} else if !ok {
						storedSend[sk] = r
					}
				}
			case "message.deleted":
				deleted[r.MessageID] = true
			}
		case KindIndexed:
			rep.Indexed++
			if indexed[r.ConversationID] == nil {
				indexed[r.ConversationID] = map[string]bool{}
			}
			indexed[r.ConversationID][r.MessageID] = true
		}
	}

	// The store's log has no gap.
	for _, cid := range sortedKeys(storedSeqs) {
		seqs := storedSeqs[cid]
		slices.Sort(seqs)
		next := int64(1)
		for _, s := range seqs {
			if s > next {
				t.add(Gap, "the store's log of %s jumps from seq %d to %d", cid, next-1, s)
			}
			next = s + 1
		}
	}

	// Acknowledgements agree with each other and with the store.
	acked := map[seqKey]Record{}
	ackedSend := map[sendKey]Record{}
	ackedByCID := map[string][]Record{}
	for _, r := range h {
		if r.Kind != KindOp {
			continue
		}
		switch r.Phase {
		case Invoke:
			rep.Ops++
		case OK:
			rep.Acked++
			if r.MessageID == "" || r.Seq <= 0 {
				continue // an ok without a message (not a send) proves nothing here
			}
			obs := r
			obs.Type = "message.created"
			k := seqKey{r.ConversationID, r.Seq}
			if prev, ok := acked[k]; ok && prev.MessageID != r.MessageID {
				t.add(Inconsistent, "seq %d of %s acknowledged as two messages: %s and %s", r.Seq, r.ConversationID, prev.MessageID, r.MessageID)
			} else if !ok {
				acked[k] = obs
				ackedByCID[r.ConversationID] = append(ackedByCID[r.ConversationID], obs)
			}
			if r.ClientID != "" {
				sk := sendKey{r.ConversationID, r.SenderID, r.ClientID}
				if prev, ok := ackedSend[sk]; ok && prev.MessageID != r.MessageID {
					t.add(Inconsistent, "client_id %s of %s in %s acknowledged as two messages: %s and %s", r.ClientID, r.SenderID, r.ConversationID, prev.MessageID, r.MessageID)
				} else if !ok {
					ackedSend[sk] = r
				}
			}
			if !storeRead[r.ConversationID] {
				continue
			}
			if s, ok := stored[k]; ok && !same(s, obs) {
				t.add(Inconsistent, "seq %d of %s: acknowledged as %s, stored as %s", r.Seq, r.ConversationID, r.MessageID, describe(s))
			} else if !ok {
				t.add(Lost, "%s (seq %d of %s, client_id %s) was acknowledged to %s but is not in the store", r.MessageID, r.Seq, r.ConversationID, r.ClientID, r.Process)
			}
		case Fail:
			if r.ClientID == "" || !storeRead[r.ConversationID] {
				continue
			}
			if s, ok := storedSend[sendKey{r.ConversationID, r.SenderID, r.ClientID}]; ok {
				t.add(Inconsistent, "a send of client_id %s by %s in %s failed (%s), yet the store holds it as %s at seq %d", r.ClientID, r.Process, r.ConversationID, r.Note, s.MessageID, s.Seq)
			}
		}
	}

	// Receivers: each conversation's events once, in order, without
	// jumps, agreeing with the store and the acknowledgements.
	type progress struct {
		last int64
		seen map[int64]Record
	}
	type recvConv struct{ receiver, cid string }
	state := map[recvConv]*progress{}
	watches := map[recvConv]int64{}
	var watchOrder []recvConv
	for _, r := range h {
		if r.Kind == KindWatch {
			k := recvConv{r.Receiver, r.ConversationID}
			if _, ok := watches[k]; !ok {
				watchOrder = append(watchOrder, k)
			}
			watches[k] = r.AfterSeq
		}
	}
	receivers := map[string]bool{}
	conflicted := map[seqKey]bool{}
	for _, r := range h {
		if r.Kind != KindEvent {
			continue
		}
		rep.Events++
		receivers[r.Receiver] = true
		k := recvConv{r.Receiver, r.ConversationID}
		p := state[k]
		if p == nil {
			p = &progress{seen: map[int64]Record{}}
			if after, ok := watches[k]; ok {
				p.last = after
			} else {
				p.last = r.Seq - 1 // an unwatched conversation starts where it starts
			}
			state[k] = p
		}
		sk := seqKey{r.ConversationID, r.Seq}
		for _, ref := range []map[seqKey]Record{stored, acked} {
			if o, ok := ref[sk]; ok && !same(o, r) && !conflicted[sk] {
				conflicted[sk] = true
				t.add(Inconsistent, "seq %d of %s: %s got %s, elsewhere it is %s", r.Seq, r.ConversationID, r.Receiver, describe(r), describe(o))
			}
		}
		_, dup := p.seen[r.Seq]
		switch {
		case dup:
			t.add(Duplicate, "%s got seq %d of %s again (%s, on %s)", r.Receiver, r.Seq, r.ConversationID, describe(r), r.Transport)
		case r.Seq < p.last:
			t.add(Reorder, "%s got seq %d of %s after seq %d (on %s)", r.Receiver, r.Seq, r.ConversationID, p.last, r.Transport)
		case r.Seq > p.last+1:
			t.add(Gap, "%s got seq %d of %s right after seq %d (on %s)", r.Receiver, r.Seq, r.ConversationID, p.last, r.Transport)
		}
		if !dup {
			p.seen[r.Seq] = r
		}
		p.last = max(p.last, r.Seq)
	}
	rep.Receivers = len(receivers)

	// Every watching receiver got every acknowledged message and every
	// stored event after its starting point.
	for _, w := range watchOrder {
		after := watches[w]
		p := state[w]
		// has: the receiver got this very event at seq.
		has := func(seq int64, want Record) bool {
			if p == nil {
				return false
			}
			got, ok := p.seen[seq]
			return ok && same(got, want)
		}
		missing := map[int64]bool{}
		for _, a := range ackedByCID[w.cid] {
			if a.Seq > after && !has(a.Seq, a) {
				missing[a.Seq] = true
				t.add(Lost, "%s (seq %d of %s) was acknowledged to %s but never delivered to %s", a.MessageID, a.Seq, w.cid, a.Process, w.receiver)
			}
		}
		for _, s := range storedSeqs[w.cid] {
			if s > after && !has(s, stored[seqKey{w.cid, s}]) && !missing[s] {
				t.add(Lost, "stored seq %d of %s (%s) was never delivered to %s", s, w.cid, describe(stored[seqKey{w.cid, s}]), w.receiver)
			}
		}
	}

	// Search agrees with the store: every undeleted stored message is
	// found, nothing else is.
	for _, cid := range sortedKeys(indexRead) {
		if !indexRead[cid] {
			continue
		}
		found := indexed[cid]
		want := map[string]bool{}
		for _, s := range storedSeqs[cid] {
			r := stored[seqKey{cid, s}]
			if r.Type == "message.created" && !deleted[r.MessageID] {
				want[r.MessageID] = true
				if !found[r.MessageID] {
					t.add(IndexMismatch, "%s (seq %d of %s) is stored but not found by search", r.MessageID, s, cid)
				}
			}
		}
		for _, id := range sortedKeys(found) {
			if !want[id] {
				why := "is not stored"
				if deleted[id] {
					why = "was deleted"
				}
				t.add(IndexMismatch, "search finds %s in %s, which %s", id, cid, why)
			}
		}
	}

	for _, c := range Classes {
		rep.Anomalies = append(rep.Anomalies, *t[c])
	}
	return rep
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

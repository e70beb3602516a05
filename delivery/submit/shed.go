package submit

import (
	"time"

	"github.com/parleychat/parley/chat"
)

// Shedding. When the sequencer of a partition falls behind (it is
// overloaded, or the partition is moving to another sequencer), the
// commands to that partition wait in the log; a command the sequencer
// reaches past its deadline plus chat.ExpiryGrace is refused, after the
// log, the sequencer and the events log have all carried it. Under a load
// the engines cannot carry, that wasted work is what halves the
// acknowledged rate. So a submitter watches, per partition, the oldest of
// its commands still waiting for a result; while that one has waited
// longer than Config.ShedAfter, new commands to the partition are
// answered "unavailable" at once and never appended (a caller retries
// after Retry-After). A command stops counting once its fence starts
// (giveUp), so a partition that stays stalled admits a few commands again
// every so often, and its first answer makes it admit all of them.

// backlog is the commands of one partition that wait for a result,
// oldest first, linked through their waiters.
type backlog struct{ head, tail *waiter }

// defaultShedAfter is two thirds of how long the sequencer may take to
// reach a command before refusing it: the command's lead to its deadline
// plus chat.ExpiryGrace.
func defaultShedAfter(timeout time.Duration) time.Duration {
	at := time.Unix(0, 0)
	deadline, _ := Deadlines(at, timeout)
	return (deadline.Sub(at) + chat.ExpiryGrace) * 2 / 3
}

// enlist adds w, submitted at w.at, to its partition's backlog (s.mu held).
func (s *Submitter) enlist(w *waiter) {
	b := &s.backlogs[w.partition]
	w.listed, w.prev, w.next = true, b.tail, nil
	if b.tail != nil {
		b.tail.next = w
	} else {
		b.head = w
	}
	b.tail = w
}

// unlist removes w from its partition's backlog, if it is there (s.mu
// held).
func (s *Submitter) unlist(w *waiter) {
	if !w.listed {
		return
	}
	b := &s.backlogs[w.partition]
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		b.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		b.tail = w.prev
	}
	w.listed, w.prev, w.next = false, nil, nil
}

// behind reports whether partition's oldest waiting command has waited
// longer than ShedAfter at now (s.mu held).
func (s *Submitter) behind(partition int, now time.Time) bool {
	h := s.backlogs[partition].head
	return s.cfg.ShedAfter > 0 && h != nil && now.Sub(h.at) > s.cfg.ShedAfter
}

// Shed is the number of commands answered "unavailable" at once because
// their partition was behind (parley_submit_shed_total).
func (s *Submitter) Shed() int64 { return s.shed.Load() }

package memlog

import (
	"context"

	"github.com/parleychat/parley/chat"
)

// Subscribe reads every partition of topic from its end at the time of
// the call, calls ready once those start offsets are fixed, then hands
// every later record to handle, per partition in offset order, until ctx
// is done (it then returns nil). Appends never wait for a subscriber, and
// the log keeps every record a live subscriber has yet to read. Records
// passed to handle are shared: they may be kept but not modified.
func (l *Log) Subscribe(ctx context.Context, topicName string, ready func(), handle func(partition int, recs []chat.Record)) error {
	if ctx.Err() != nil {
		return nil
	}
	if l.isClosed() {
		return l.errClosed("memlog: subscribe")
	}
	t, err := l.topic(topicName)
	if err != nil {
		return err
	}
	w := newWatcher(len(t.parts), true, true)
	t.watch(w) // at zero, so nothing is freed before the positions are fixed
	defer t.unwatch(w)
	for p, pt := range t.parts {
		w.pos[p].Store(pt.next.Load())
	}
	if ready != nil {
		ready()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.closed:
			return l.errClosed("memlog: subscribe")
		default:
		}
		progressed := false
		for p, pt := range t.parts {
			off := w.pos[p].Load()
			if off >= pt.next.Load() {
				continue
			}
			recs := pt.read(off)
			if len(recs) == 0 {
				continue
			}
			handle(p, recs)
			w.pos[p].Store(recs[len(recs)-1].Offset + 1)
			progressed = true
		}
		if progressed {
			continue
		}
		// Caught up: sleep until records arrive.
		w.sleeping.Store(true)
		if w.behind(t) {
			w.sleeping.Store(false)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.closed:
			return l.errClosed("memlog: subscribe")
		case <-w.wake:
		}
	}
}

// behind reports whether some partition of t has records beyond w's
// positions.
func (w *watcher) behind(t *topic) bool {
	for p, pt := range t.parts {
		if w.pos[p].Load() < pt.next.Load() {
			return true
		}
	}
	return false
}

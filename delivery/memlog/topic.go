package memlog

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/parleychat/parley/chat"
)

// topic is one topic: its partitions, its consumer groups and the readers
// to wake when records arrive.
type topic struct {
	log   *Log
	name  string
	file  string // mark file name in log.dir
	parts []*partition

	// mark is the reserved offset mark: every offset of every partition
	// handed out so far is below it, and it is on disk.
	mark   atomic.Int64
	markMu sync.Mutex // serializes raising the mark

	mu       sync.Mutex // guards groups and changes to watchers
	groups   map[string]*group
	watchers atomic.Pointer[[]*watcher] // copied on write
}

// watcher is a reader of a topic: a subscriber, a group (which only holds
// positions) or a group member (which only wakes).
type watcher struct {
	// pos, if not nil, holds per partition the lowest offset the reader
	// may still read: records below the lowest pos of all watchers may be
	// freed.
	pos []atomic.Int64
	// wake, if not nil, gets a token when records arrive while sleeping.
	wake     chan struct{}
	sleeping atomic.Bool
}

func newTopic(l *Log, name, file string, mark int64) *topic {
	t := &topic{log: l, name: name, file: file, groups: map[string]*group{}}
	t.mark.Store(mark)
	t.parts = make([]*partition, l.partitions)
	for i := range t.parts {
		t.parts[i] = &partition{}
		t.parts[i].next.Store(mark)
	}
	t.watchers.Store(&[]*watcher{})
	return t
}

func newWatcher(partitions int, positions, wakes bool) *watcher {
	w := &watcher{}
	if positions {
		w.pos = make([]atomic.Int64, partitions)
	}
	if wakes {
		w.wake = make(chan struct{}, 1)
	}
	return w
}

// watch registers w. A watcher with positions starts at zero, below
// everything, so nothing is freed before it has fixed its real positions.
func (t *topic) watch(w *watcher) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.watchLocked(w)
}

// watchLocked is watch with t.mu held.
func (t *topic) watchLocked(w *watcher) {
	old := *t.watchers.Load()
	ws := append(slices.Clip(old), w)
	t.watchers.Store(&ws)
}

func (t *topic) unwatch(w *watcher) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.watchers.Load()
	ws := slices.DeleteFunc(slices.Clone(old), func(x *watcher) bool { return x == w })
	t.watchers.Store(&ws)
}

// wakeAll wakes every sleeping reader of the topic.
func (t *topic) wakeAll() {
	for _, w := range *t.watchers.Load() {
		w.poke()
	}
}

// poke wakes w if it sleeps. A reader sets sleeping before its last look
// for records and an appender publishes records before looking at
// sleeping, so either the reader sees the records or the appender sees it
// sleeping.
func (w *watcher) poke() {
	if w.wake != nil && w.sleeping.Load() && w.sleeping.CompareAndSwap(true, false) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// poked wakes w whether or not it sleeps (for changes other than records).
func (w *watcher) poked() {
	w.sleeping.Store(false)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// raiseMark makes sure offsets below upTo are reserved on disk.
func (t *topic) raiseMark(upTo int64) error {
	t.markMu.Lock()
	defer t.markMu.Unlock()
	if upTo <= t.mark.Load() {
		return nil
	}
	mark := upTo + reserveBlock
	if err := writeMark(t.log.dir, t.file, t.name, mark); err != nil {
		return &chat.Error{Code: chat.CodeUnavailable, Op: "memlog: append", Message: "cannot reserve offsets", Err: err}
	}
	t.mark.Store(mark)
	return nil
}

// floor returns the lowest position of the topic's watchers in partition
// p, or limit if that is lower.
func (t *topic) floor(p int, limit int64) int64 {
	low := limit
	for _, w := range *t.watchers.Load() {
		if w.pos != nil {
			low = min(low, w.pos[p].Load())
		}
	}
	return low
}

// chunk holds chunkSize consecutive records starting at base. A slot is
// written once, before the partition's next offset passes it, and never
// changed after, so readers may hold slices of it without locks.
type chunk struct {
	base int64
	recs [chunkSize]chat.Record
}

// partition is the retained records of one topic partition.
type partition struct {
	mu     sync.Mutex
	chunks []*chunk // consecutive; chunks[0].base is the first retained offset
	arena  []byte   // free room for copies of values
	// next is the offset the next record gets. It is written under mu;
	// readers load it without mu to skip partitions with nothing new.
	next atomic.Int64
}

// append assigns offsets to recs, all of partition p, and stores copies.
func (pt *partition) append(t *topic, p int, recs []*chat.Record) error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	next := pt.next.Load()
	if end := next + int64(len(recs)); end > t.mark.Load() {
		if err := t.raiseMark(end); err != nil {
			return err
		}
	}
	var c *chunk
	if n := len(pt.chunks); n > 0 {
		c = pt.chunks[n-1]
	}
	for _, r := range recs {
		if c == nil || next-c.base == chunkSize {
			c = pt.grow(t, p, next)
		}
		c.recs[next-c.base] = chat.Record{Key: r.Key, Value: pt.copyValue(r.Value), Partition: p, Offset: next}
		r.Offset = next
		next++
	}
	pt.next.Store(next)
	return nil
}

// grow frees the chunks no reader needs any more and adds a chunk
// starting at base.
func (pt *partition) grow(t *topic, p int, base int64) *chunk {
	cut := t.floor(p, base) - t.log.retain
	k := 0
	for k < len(pt.chunks) && pt.chunks[k].base+chunkSize <= cut {
		k++
	}
	if k > 0 {
		n := copy(pt.chunks, pt.chunks[k:])
		clear(pt.chunks[n:])
		pt.chunks = pt.chunks[:n]
	}
	c := &chunk{base: base}
	pt.chunks = append(pt.chunks, c)
	return c
}

// copyValue copies v into the partition's arena. Small values share
// arena blocks, so a record costs no allocation of its own.
func (pt *partition) copyValue(v []byte) []byte {
	switch {
	case v == nil:
		return nil
	case len(v) == 0:
		return []byte{}
	case len(v) > arenaSize/8:
		return append([]byte(nil), v...)
	}
	if len(pt.arena) < len(v) {
		pt.arena = make([]byte, arenaSize)
	}
	c := pt.arena[:len(v):len(v)]
	copy(c, v)
	pt.arena = pt.arena[len(v):]
	return c
}

// first returns the first retained offset.
func (pt *partition) first() int64 {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if len(pt.chunks) > 0 {
		return pt.chunks[0].base
	}
	return pt.next.Load()
}

// read returns up to maxBatch records from offset off on. If off was
// freed (which the watchers prevent), it starts at the first retained
// record; callers move on to the last returned offset + 1.
func (pt *partition) read(off int64) []chat.Record {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	next := pt.next.Load()
	if off >= next || len(pt.chunks) == 0 {
		return nil
	}
	off = max(off, pt.chunks[0].base)
	c := pt.chunks[(off-pt.chunks[0].base)/chunkSize]
	lo := off - c.base
	hi := min(lo+maxBatch, chunkSize, next-c.base)
	return c.recs[lo:hi:hi]
}

package memlog

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/parleychat/parley/chat"
)

// group is a consumer group of one topic. Its committed offsets live in
// memory only, for as long as the process.
type group struct {
	t *topic
	// committed holds, per partition, the next offset to hand to the
	// group; it is written only by the holder of that partition's lock.
	committed *watcher
	// locks make sure that only one member handles a partition at a time:
	// a member holds a partition's lock for the whole batch, so a
	// partition moves to another member only between batches.
	locks []sync.Mutex

	mu      sync.Mutex // guards members
	members []*member
	version atomic.Uint64 // changes whenever members change
}

type member struct {
	w *watcher // wakes only
}

// group returns the named group of t, creating it on first use: a new
// group starts at the first record the topic retains.
func (t *topic) group(name string) *group {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[name]; ok {
		return g
	}
	g := &group{t: t, committed: newWatcher(len(t.parts), true, false), locks: make([]sync.Mutex, len(t.parts))}
	// Watched at zero first, so nothing is freed before the start offsets
	// are fixed.
	t.watchLocked(g.committed)
	for p, pt := range t.parts {
		g.committed.pos[p].Store(pt.first())
	}
	t.groups[name] = g
	return g
}

func (g *group) join(m *member) {
	g.t.watch(m.w)
	g.mu.Lock()
	g.members = append(g.members, m)
	g.changed()
	g.mu.Unlock()
}

func (g *group) leave(m *member) {
	g.mu.Lock()
	for i, x := range g.members {
		if x == m {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	g.changed()
	g.mu.Unlock()
	g.t.unwatch(m.w)
}

// changed bumps the version and wakes every member to look at its
// partitions again. g.mu is held.
func (g *group) changed() {
	g.version.Add(1)
	for _, x := range g.members {
		x.w.poked()
	}
}

// owner returns the member that owns partition p: partition p belongs to
// the member at index p % members, in join order.
func (g *group) owner(p int) *member {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.members) == 0 {
		return nil
	}
	return g.members[p%len(g.members)]
}

// assignment returns the partitions m owns and the version they are of.
func (g *group) assignment(m *member, into []int) ([]int, uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	into = into[:0]
	n := len(g.members)
	for i, x := range g.members {
		if x == m {
			for p := i; p < len(g.locks); p += n {
				into = append(into, p)
			}
			break
		}
	}
	return into, g.version.Load()
}

// Consume joins group on topic and hands its partitions' records to
// handle until ctx is done (it then returns nil) or handle fails (it then
// returns handle's error). Members of a group split the partitions; a
// member hands out one batch at a time, or up to Config.Parallel of the
// group at once, each of a different partition. A batch's offsets are
// committed when handle returns nil (or, for a held batch, when it is
// released). Consume returns only once every call of handle it made has
// returned. Records passed to handle are shared: they may be kept but not
// modified.
func (l *Log) Consume(ctx context.Context, topicName, groupName string, handle func(ctx context.Context, partition int, recs []chat.Record) error) error {
	if ctx.Err() != nil {
		return nil
	}
	if l.isClosed() {
		return l.errClosed("memlog: consume")
	}
	t, err := l.topic(topicName)
	if err != nil {
		return err
	}
	g := t.group(groupName)
	m := &member{w: newWatcher(0, false, true)}
	g.join(m)
	defer g.leave(m)
	n := l.parallel[groupName]
	if n == 0 {
		n = l.parallelAll
	}
	if n > 1 {
		return l.consumeParallel(ctx, g, m, n, handle)
	}

	var owned, idle []int
	version := ^uint64(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.closed:
			return l.errClosed("memlog: consume")
		default:
		}
		if v := g.version.Load(); v != version {
			owned, version = g.assignment(m, owned)
		}
		progressed := false
		idle = idle[:0]
		for _, p := range owned {
			st, err := g.handleNext(ctx, m, p, handle)
			if err != nil {
				return err
			}
			switch st {
			case handled:
				progressed = true
			case nothing:
				idle = append(idle, p)
			}
		}
		if progressed {
			continue
		}
		// Nothing to do: sleep until records arrive, the group changes, or
		// a busy partition's previous owner hands it over.
		m.w.sleeping.Store(true)
		if g.pending(idle) || g.version.Load() != version {
			m.w.sleeping.Store(false)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.closed:
			return l.errClosed("memlog: consume")
		case <-m.w.wake:
		}
	}
}

// outcome is what one call of handleNext in a parallel Consume did.
type outcome struct {
	p   int
	st  step
	err error
	// wakes is the count of wakes the member had had when the batch was
	// handed out.
	wakes int
}

// consumeParallel is Consume for a group whose members hand out up to n
// batches at once. Each batch runs on a goroutine of its own, owned by
// this call: it returns only once all of them have returned. A partition
// has at most one batch out at a time, and the partitions are offered in
// turn, starting after the last one handed out, so a busy few do not keep
// the others waiting.
func (l *Log) consumeParallel(ctx context.Context, g *group, m *member, n int, handle func(context.Context, int, []chat.Record) error) error {
	results := make(chan outcome, n)
	out := make(map[int]bool, n) // partitions with a batch out
	// waiting holds partitions another member still held when last tried;
	// they are tried again after a wake (handOver pokes this member).
	waiting := map[int]bool{}
	wakes := 0 // wakes received: a busy partition waits only for a wake that comes after its try
	var owned, idle []int
	version := ^uint64(0)
	turn := 0 // where the next look at owned starts
	var failed error
	stop := false
	settle := func(r outcome) {
		delete(out, r.p)
		switch {
		case r.err != nil:
			if failed == nil {
				failed = r.err
			}
		case r.st == busy && r.wakes == wakes:
			// A wake that came while the batch was out may have been its
			// handover: then the partition is tried again at once.
			waiting[r.p] = true
		}
	}
	for {
		if !stop && failed == nil {
			select {
			case <-ctx.Done():
				stop = true
			case <-l.closed:
				stop = true
				failed = l.errClosed("memlog: consume")
			default:
			}
		}
		if stop || failed != nil {
			// Wait for the batches out, then return.
			for len(out) > 0 {
				settle(<-results)
			}
			return failed
		}
		if v := g.version.Load(); v != version {
			owned, version = g.assignment(m, owned)
			clear(waiting)
			turn = 0
		}
		idle = idle[:0]
		for i := range owned {
			if len(out) >= n {
				break
			}
			k := (turn + i) % len(owned)
			p := owned[k]
			if out[p] || waiting[p] {
				continue
			}
			if g.committed.pos[p].Load() >= g.t.parts[p].next.Load() {
				idle = append(idle, p)
				continue
			}
			out[p] = true
			turn = k + 1
			w := wakes
			go func() {
				st, err := g.handleNext(ctx, m, p, handle)
				results <- outcome{p: p, st: st, err: err, wakes: w}
			}()
		}
		// Sleep until a batch returns, records arrive, the group changes,
		// or a partition's previous owner hands it over.
		m.w.sleeping.Store(true)
		if (len(out) < n && g.pending(idle)) || g.version.Load() != version {
			m.w.sleeping.Store(false)
			continue
		}
		select {
		case r := <-results:
			m.w.sleeping.Store(false)
			settle(r)
		case <-m.w.wake:
			wakes++
			clear(waiting)
		case <-ctx.Done():
			stop = true
		case <-l.closed:
			stop = true
			failed = l.errClosed("memlog: consume")
		}
	}
}

// pending reports whether any of the partitions has records beyond the
// group's committed offset.
func (g *group) pending(parts []int) bool {
	for _, p := range parts {
		if g.committed.pos[p].Load() < g.t.parts[p].next.Load() {
			return true
		}
	}
	return false
}

// step is what handleNext did.
type step int

const (
	nothing step = iota // no records, or the partition is not m's
	handled             // handed a batch to handle
	busy                // another member still holds the partition
)

// handleNext hands the next batch of partition p to handle if m owns p
// and p has records.
func (g *group) handleNext(ctx context.Context, m *member, p int, handle func(context.Context, int, []chat.Record) error) (step, error) {
	pt := g.t.parts[p]
	if g.committed.pos[p].Load() >= pt.next.Load() {
		return nothing, nil
	}
	if !g.locks[p].TryLock() {
		// The previous owner is finishing a batch; it wakes us when done.
		return busy, nil
	}
	if g.owner(p) != m {
		g.locks[p].Unlock()
		g.handOver(p, m)
		return nothing, nil
	}
	recs := pt.read(g.committed.pos[p].Load())
	if len(recs) == 0 {
		g.locks[p].Unlock()
		return nothing, nil
	}
	// A held batch (chat.HoldCommit) is waited for here: the embedded log
	// hands the partition its next batch only after the release, and keeps
	// the partition's lock until then.
	hold := chat.NewCommitHold()
	err := handle(chat.WithCommitHold(ctx, hold.Hold), p, recs)
	if err == nil && hold.Held() {
		err = <-hold.Done()
		if err != nil && ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	if err == nil {
		g.committed.pos[p].Store(recs[len(recs)-1].Offset + 1)
	}
	g.locks[p].Unlock()
	g.handOver(p, m)
	if err != nil {
		return nothing, err
	}
	return handled, nil
}

// handOver wakes p's owner if that is no longer m, after m released p: the
// new owner may have found p locked and gone to sleep.
func (g *group) handOver(p int, m *member) {
	if o := g.owner(p); o != nil && o != m {
		o.w.poked()
	}
}

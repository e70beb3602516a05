// Package gcfloor puts a floor under the Go garbage collector's heap
// goal, so that a process whose live heap is small does not collect every
// few megabytes it allocates.
//
// With Go's default pacing (GOGC=100) the heap goal is twice the live
// heap. An embedded Parley server delivering 20,000 events a second holds
// about 8 MiB of live heap, so it collected three times a second, and each
// collection's stop-the-world phases, its marking and the allocations it
// made wait all fell on the delivery path: the send→delivered p99 at
// 20,000 deliveries/s was 0.85× as long with GOGC=800, and 0.80× at
// 100,000/s (BENCHMARKS.md). A fixed GOGC=800 would let a big heap grow
// to nine times its live size; the floor only applies while the live heap
// is under half of it, and above that the process paces as it would
// without it.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Percent is the GOGC that makes the heap goal at least floor bytes over
// a live heap of live bytes, and never less than base: the goal is
// live × (1 + GOGC/100).
func Percent(floor, live uint64, base int) int {
	if base < 0 || live == 0 || live*uint64(100+base)/100 >= floor {
		return base
	}
	return int(((floor-live)*100 + live - 1) / live) // rounded up
}

// sentinel is an object whose only use is to be collected: its cleanup
// runs once per collection cycle. Sixteen bytes, so that it is not one of
// the runtime's tiny allocations, whose cleanups may never run.
type sentinel struct{ _ [16]byte }

// tuner is one Start's floor, and the GOGC it restores.
type tuner struct {
	floor   uint64
	base    int
	percent int // the GOGC it set last
}

// running is the tuner that runs, if any: GOGC is the process's, so one
// runs at a time, and its mutex guards every tuner's fields.
var running struct {
	sync.Mutex
	t *tuner
}

// Start keeps the heap goal at floor bytes or more, from the next
// collection on, until stop is called; stop restores the GOGC the process
// had. It does nothing when the collector is off (GOGC=off) or floor is 0.
// After each collection it sets GOGC from that collection's live heap
// (Percent), so the heap it lets grow follows the live heap's size.
//
// A Start while a tuner runs (several servers in one test process) does
// nothing, and its stop nothing either.
func Start(floor uint64) (stop func()) {
	running.Lock()
	defer running.Unlock()
	base := int(read("/gc/gogc:percent"))
	if floor == 0 || base < 0 || running.t != nil {
		return func() {}
	}
	t := &tuner{floor: floor, base: base, percent: base}
	running.t = t
	t.tuneLocked()
	t.arm()
	return t.stop
}

// arm registers the cleanup that tunes after the next collection, and
// arms the one after, for as long as t runs.
func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *tuner) {
		running.Lock()
		defer running.Unlock()
		if running.t == t {
			t.tuneLocked()
			t.arm()
		}
	}, t)
}

// tuneLocked sets GOGC for the live heap of the last collection; the
// caller holds running's mutex.
func (t *tuner) tuneLocked() {
	if p := Percent(t.floor, read("/gc/heap/live:bytes"), t.base); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

func (t *tuner) stop() {
	running.Lock()
	defer running.Unlock()
	if running.t == t {
		debug.SetGCPercent(t.base)
		running.t = nil
	}
}

// read is one runtime metric of kind uint64, 0 when the runtime lacks it.
func read(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

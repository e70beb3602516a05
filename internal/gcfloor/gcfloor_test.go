package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestPercentRaisesTheGoalToTheFloorOnlyUnderIt(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		floor, live uint64
		base, want  int
	}{
		{64 * mib, 8 * mib, 100, 700},       // goal 8 × 8 = 64 MiB
		{64 * mib, 7 * mib, 100, 815},       // rounded up: the goal is never under the floor
		{64 * mib, 32 * mib, 100, 100},      // twice 32 MiB is the floor already
		{64 * mib, 200 * mib, 100, 100},     // a big heap paces as without the floor
		{64 * mib, 8 * mib, 1000, 1000},     // a higher GOGC of the operator's stays
		{64 * mib, 8 * mib, -1, -1},         // GOGC=off stays off
		{64 * mib, 0, 100, 100},             // no collection yet
		{0, 8 * mib, 100, 100},              // no floor
		{64 * mib, 63 * mib, 100, 100},      // 2 × 63 MiB is over the floor
		{100 * mib, 40 * mib, 100, 150},     // 40 × 2.5 = 100 MiB
		{100 * mib, 40 * mib, 50, 150},      // GOGC=50 raised as well
		{100 * mib, 80 * mib, 50, 50},       // 80 × 1.5 = 120 MiB: over the floor
		{100 * mib, 1 << 10, 100, 10239900}, // a tiny heap: the goal is the floor
	} {
		got := Percent(c.floor, c.live, c.base)
		if got != c.want {
			t.Errorf("Percent(%d MiB, %d KiB, %d) = %d, want %d", c.floor/mib, c.live>>10, c.base, got, c.want)
		}
		if got >= 0 && c.live > 0 && c.floor > 0 && c.live*uint64(100+got)/100 < c.floor {
			t.Errorf("Percent(%d MiB, %d KiB, %d) = %d: goal %d under the floor", c.floor/mib, c.live>>10, c.base, got, c.live*uint64(100+got)/100)
		}
	}
}

// TestStartSetsGOGCAfterEachCollectionAndStopRestoresIt: with a floor far
// over this test's live heap, the first collection after Start raises
// GOGC, and stop puts back the process's own.
func TestStartSetsGOGCAfterEachCollectionAndStopRestoresIt(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	stop := Start(1 << 30)
	if again := Start(1 << 20); again == nil {
		t.Fatal("a second Start returned no stop")
	} else {
		again() // the second does nothing, and its stop neither
	}
	runtime.GC()
	// The cleanup that tunes runs on the runtime's cleanup goroutine
	// after the collection; a few more collections give it the chance.
	var got uint64
	for range 100 {
		if got = read("/gc/gogc:percent"); got > 100 {
			break
		}
		runtime.GC()
	}
	if got <= 100 {
		t.Fatalf("GOGC %d after collections with a 1 GiB floor, want more than 100", got)
	}
	stop()
	if got := read("/gc/gogc:percent"); got != 100 {
		t.Errorf("GOGC %d after stop, want 100", got)
	}
	runtime.GC()
	runtime.GC()
	if got := read("/gc/gogc:percent"); got != 100 {
		t.Errorf("GOGC %d after collections once stopped, want 100", got)
	}
}

func TestStartDoesNothingWithTheCollectorOff(t *testing.T) {
	base := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(base)
	stop := Start(1 << 30)
	defer stop()
	if got := int(read("/gc/gogc:percent")); got != -1 {
		t.Errorf("GOGC %d, want off (-1)", got)
	}
}

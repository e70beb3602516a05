package fanout

import (
	"context"
	"runtime"
	"testing"
)

// resumeWorld is bob 20,000 events behind over 20 conversations, four
// partitions, on the embedded store.
func resumeWorld(b *testing.B) *Hub {
	w := newReplayWorld(b, 4)
	var cids []string
	for i := range 20 {
		cids = append(cids, w.conversation(i%4))
	}
	for i := range 20_000 - 20 { // and bob's twenty member.added
		w.send(cids[i%len(cids)])
	}
	return w.hub(nil)
}

// BenchmarkResume20000 opens a connection resuming 20,000 events behind
// and reports the heap it holds once open (held-B/op: live heap after a
// GC, with the connection referenced, less the same before), and the
// time and allocations of the open.
func BenchmarkResume20000(b *testing.B) {
	h := resumeWorld(b)
	var held int64
	var ms runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := int64(ms.HeapAlloc)
		c := NewConn("bob", 64)
		b.StartTimer()
		if err := h.Open(context.Background(), c, fromStart, 0); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		held += int64(ms.HeapAlloc) - before
		h.Unregister(c)
		runtime.KeepAlive(c)
		b.StartTimer()
	}
	b.ReportMetric(float64(held)/float64(b.N), "held-B/op")
}

// BenchmarkResume20000Drain opens the same connection and takes its whole
// replay: what paging costs in all.
func BenchmarkResume20000Drain(b *testing.B) {
	h := resumeWorld(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c := NewConn("bob", 64)
		if err := h.Open(context.Background(), c, fromStart, 0); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			items, err := c.Take(nil)
			if err != nil {
				b.Fatal(err)
			}
			if len(items) == 0 {
				break
			}
			n += len(items)
		}
		if n < 20_000 {
			b.Fatalf("took %d items", n)
		}
		h.Unregister(c)
	}
}

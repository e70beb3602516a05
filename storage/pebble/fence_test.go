package pebble

import (
	"fmt"
	"sync"
	"testing"
)

// Goroutines that lock overlapping sets of names (given in any order,
// with repeats) never hold one name at once, never deadlock, and the
// table forgets every lock once nobody holds or waits for it.
func TestFencesExcludeByNameAndForgetUnusedLocks(t *testing.T) {
	var f fences
	// One counter per name, made up front (the map is only read) and
	// written only under the name's lock: the race detector catches two
	// holders.
	counts := map[string]*int{}
	for i := range 7 {
		counts[fmt.Sprintf("c\x00%d", i)] = new(int)
	}
	for p := range 5 {
		counts[partitionFence(p)] = new(int)
	}
	inside := map[string]int{}
	var mu sync.Mutex // guards inside, to check exclusion
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 300 {
				a := fmt.Sprintf("c\x00%d", (g+i)%7)
				b := partitionFence((g * i) % 5)
				names := []string{b, a, a}
				held := f.lock(names...)
				mu.Lock()
				for _, n := range []string{a, b} {
					if inside[n]++; inside[n] > 1 {
						t.Errorf("%q held twice", n)
					}
				}
				mu.Unlock()
				*counts[a]++
				*counts[b]++
				mu.Lock()
				inside[a]--
				inside[b]--
				mu.Unlock()
				f.unlock(held)
			}
		})
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += *c
	}
	if total != 2*16*300 {
		t.Errorf("%d lock holds counted, want %d", total, 2*16*300)
	}
	for i := range f.shards {
		if n := len(f.shards[i].locks); n != 0 {
			t.Errorf("shard %d keeps %d locks nobody holds", i, n)
		}
	}
}

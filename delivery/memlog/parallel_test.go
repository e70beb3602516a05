package memlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
	"github.com/parleychat/parley/internal/testutil"
)

// The Log contract holds when every group hands out several batches at
// once.
func TestLogContractParallel(t *testing.T) {
	chattest.TestLog(t, func(t *testing.T, partitions int) chat.Log {
		l := open(t, Config{Dir: t.TempDir(), Partitions: partitions})
		l.parallelAll = 4
		return l
	})
}

func TestParallelRejectsLessThanOne(t *testing.T) {
	if err := (Config{Dir: "x", Partitions: 1, Parallel: map[string]int{"g": 0}}).Validate(); err == nil {
		t.Fatal("Parallel 0 accepted")
	}
}

// appendAll appends n records to each of parts partitions' keys.
func appendAll(t *testing.T, l *Log, topic string, n int) map[int]int {
	t.Helper()
	want := map[int]int{}
	var recs []*chat.Record
	for i := range n {
		recs = append(recs, &chat.Record{Key: fmt.Sprintf("cnv-%d", i), Value: []byte{byte(i)}})
	}
	if err := l.Append(context.Background(), topic, recs...); err != nil {
		t.Fatalf("Append: %v", err)
	}
	for _, r := range recs {
		want[r.Partition]++
	}
	return want
}

// A group with Parallel n has up to n batches out at once, never more,
// and never two of one partition; every record is handled once.
func TestParallelGroupHandlesPartitionsAtOnce(t *testing.T) {
	const parts, par = 8, 3
	l := open(t, Config{Dir: t.TempDir(), Partitions: parts, Parallel: map[string]int{"seq": par}})
	want := appendAll(t, l, chat.TopicCommands, 64)

	var active, most atomic.Int32
	release := make(chan struct{})
	var mu sync.Mutex
	busy := map[int]bool{}
	got := map[int]int{}
	var overlap atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- l.Consume(ctx, chat.TopicCommands, "seq", func(_ context.Context, p int, recs []chat.Record) error {
			mu.Lock()
			if busy[p] {
				overlap.Store(true)
			}
			busy[p] = true
			got[p] += len(recs)
			mu.Unlock()
			n := active.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			active.Add(-1)
			mu.Lock()
			busy[p] = false
			mu.Unlock()
			return nil
		})
	}()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := most.Load(); n < par {
			return fmt.Errorf("%d batches out at once, want %d", n, par)
		}
		return nil
	})
	close(release)
	testutil.Eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for p, n := range want {
			if got[p] != n {
				return fmt.Errorf("partition %d: %d of %d records handled", p, got[p], n)
			}
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if n := most.Load(); n > par {
		t.Errorf("%d batches out at once, Parallel is %d", n, par)
	}
	if overlap.Load() {
		t.Error("two batches of one partition were out at once")
	}
}

// A failed batch ends Consume with its error, but only once the batches
// of other partitions that were out have returned.
func TestParallelFailureWaitsForTheOtherBatches(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir(), Partitions: 2, Parallel: map[string]int{"seq": 2}})
	appendAll(t, l, chat.TopicCommands, 16)
	boom := errors.New("boom")
	var started, running atomic.Int32
	failNow := make(chan struct{})
	err := l.Consume(context.Background(), chat.TopicCommands, "seq", func(_ context.Context, p int, _ []chat.Record) error {
		if started.Add(1) == 1 {
			select {
			case <-failNow: // the other partition's batch is out by now
			case <-time.After(5 * time.Second):
				t.Error("the other partition's batch was not handed out beside this one")
			}
			return boom
		}
		running.Add(1)
		defer running.Add(-1)
		close(failNow)
		time.Sleep(50 * time.Millisecond) // still out when the first fails
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Consume = %v, want the handler's error", err)
	}
	if n := running.Load(); n != 0 {
		t.Fatalf("Consume returned with %d batches still out", n)
	}
}

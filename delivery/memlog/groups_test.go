package memlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// TestLagFollowsTheGroup: unknown before the group consumes; then every
// record appended counts until the group has handled it.
func TestLagFollowsTheGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := Open(ctx, Config{Dir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, _, ok := l.Lag("commands", "sequencer"); ok {
		t.Fatal("lag of a group that never consumed")
	}
	release := make(chan struct{})
	handled := make(chan int, 100)
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- l.Consume(cctx, "commands", "sequencer", func(_ context.Context, _ int, recs []chat.Record) error {
			<-release
			handled <- len(recs)
			return nil
		})
	}()
	defer func() { stop(); <-done }()
	for i := 0; i < 6; i++ {
		if err := l.Append(ctx, "commands", &chat.Record{Key: fmt.Sprint("c", i), Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	total := func() (behind int64, members int) {
		lag, m, ok := l.Lag("commands", "sequencer")
		if !ok {
			t.Fatal("no lag for a consuming group")
		}
		for _, p := range lag {
			behind += p.End - p.Next
		}
		return behind, m
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if behind, m := total(); behind == 6 && m == 1 {
			break
		}
		if time.Now().After(deadline) {
			b, m := total()
			t.Fatalf("lag %d with %d members, want 6 with 1", b, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	for n := 0; n < 6; n += <-handled {
	}
	for deadline = time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if behind, _ := total(); behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lag never reached 0")
		}
	}
}

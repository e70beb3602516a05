package memlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/internal/testutil"
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
	// The consumer joins its group in its own goroutine, so the group
	// may not exist yet on the first looks.
	total := func() (behind int64, members int, err error) {
		lag, m, ok := l.Lag("commands", "sequencer")
		if !ok {
			return 0, 0, fmt.Errorf("no lag for a consuming group")
		}
		for _, p := range lag {
			behind += p.End - p.Next
		}
		return behind, m, nil
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		b, m, err := total()
		if err == nil && (b != 6 || m != 1) {
			err = fmt.Errorf("lag %d with %d members, want 6 with 1", b, m)
		}
		return err
	})
	close(release)
	for n := 0; n < 6; n += <-handled {
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		b, _, err := total()
		if err == nil && b != 0 {
			err = fmt.Errorf("lag %d, never reached 0", b)
		}
		return err
	})
}

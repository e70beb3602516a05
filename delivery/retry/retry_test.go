package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestBackoffDoublesToTheCapAndRestartsAfterALongRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := time.Unix(0, 0)
	calls := 0
	var waits []time.Duration
	consume := func(context.Context) error {
		calls++
		if calls == 8 {
			clock = clock.Add(time.Minute) // a membership that lasted
		}
		if calls == 10 {
			cancel()
		}
		return errors.New("broker down")
	}
	wait := func(_ context.Context, d time.Duration) bool { waits = append(waits, d); return true }
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := loop(ctx, logger, "test", consume, func() time.Time { return clock }, wait); err != nil {
		t.Fatalf("loop returned %v after ctx ended, want nil", err)
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms, 100 * ms, 200 * ms}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
}

func TestConsumeStopsWhenTheWaitIsCut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	consume := func(context.Context) error { calls++; cancel(); return nil }
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := Consume(ctx, logger, "test", consume); err != nil || calls != 1 {
		t.Fatalf("Consume = %v after %d calls; want nil after 1", err, calls)
	}
	// A wait that ctx cuts short ends the loop without another call.
	ctx2, cancel2 := context.WithCancel(context.Background())
	calls = 0
	wait := func(context.Context, time.Duration) bool { cancel2(); return false }
	if err := loop(ctx2, logger, "test", func(context.Context) error { calls++; return errors.New("x") }, time.Now, wait); err != nil || calls != 1 {
		t.Fatalf("loop = %v after %d calls; want nil after 1", err, calls)
	}
}

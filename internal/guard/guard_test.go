package guard

import (
	"context"
	"testing"

	"github.com/parleychat/parley/chat"
)

func TestEnterRefusesADoneContextAndAClosedGuardAsUnavailable(t *testing.T) {
	var g Guard
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Enter(ctx, "op"); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("done context: %v, want unavailable", err)
	}
	closes := 0
	release := func() error { closes++; return nil }
	if err := g.Close(release); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(release); err != nil || closes != 1 {
		t.Errorf("second Close = %v after %d releases, want nil after 1", err, closes)
	}
	if err := g.Enter(context.Background(), "op"); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("closed: %v, want unavailable", err)
	}
}

func TestCloseWaitsForTheOperationsThatEntered(t *testing.T) {
	var g Guard
	if err := g.Enter(context.Background(), "op"); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() { _ = g.Close(func() error { close(released); return nil }) }()
	// Close cannot release while the operation runs: it needs the write
	// lock, which the entered operation's read lock holds off. TryLock
	// failing proves the read lock is still held; release runs only after
	// Leave.
	if g.mu.TryLock() {
		t.Fatal("the guard was lockable while an operation ran")
	}
	select {
	case <-released:
		t.Fatal("Close released while an operation ran")
	default:
	}
	g.Leave()
	<-released
}

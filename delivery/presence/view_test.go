package presence

import (
	"context"
	"testing"
	"time"
)

// TestViewLearnsWhoIsOnlineFromTheGateways: a View started after a
// gateway's users connected learns them from the snapshot its hello asks
// for, follows later changes, and is ready only after that; the gateway
// does not take the View for a gateway of its own.
func TestViewLearnsWhoIsOnlineFromTheGateways(t *testing.T) {
	tr, lg := start(t, Config{Grace: 50 * time.Millisecond}, newFakeDir(), newFakeOut())
	tr.Connected("ann")
	eventually(t, "the tracker sees ann online", func() bool { return tr.Online("ann") })

	ctx, cancel := context.WithCancel(context.Background())
	v := NewView("push-1", lg, 100*time.Millisecond, quiet)
	done := make(chan struct{})
	go func() { defer close(done); _ = v.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	<-v.Ready()
	if !v.Online("ann") {
		t.Fatal("ready, but ann (online before the view started) is not online")
	}
	tr.Connected("bob")
	eventually(t, "the view sees bob online", func() bool { return v.Online("bob") })
	tr.Disconnected("ann")
	eventually(t, "the view sees ann offline after the grace", func() bool { return !v.Online("ann") })

	tr.mu.Lock()
	_, taken := tr.seen["push-1"]
	tr.mu.Unlock()
	if taken {
		t.Fatal("the gateway counts the view among the gateways it expects heartbeats from")
	}
}

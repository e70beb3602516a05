package push

import (
	"testing"

	"go.uber.org/goleak"
)

// TestPushRoleLeavesNoGoroutine: the role, its presence view and its
// connections to a push service and a webhook receiver are all gone once
// the role stopped.
func TestPushRoleLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("run", func(t *testing.T) {
		e := newEnv(t, nil)
		e.subscribe("bob", "phone")
		e.post("cnv_1", 1, "alice", "hi", "alice", "bob")
		waitFor(t, "a push", func() bool { return e.counter("deliveries", "webpush") == 1 })
	})
}

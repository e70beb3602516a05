// Package testutil holds what Parley's tests share beyond the contract
// suites: waiting on a condition instead of a clock.
package testutil

import (
	"testing"
	"time"
)

// Eventually calls cond until it returns nil, and fails t (t.Fatalf, with
// cond's last error) if it has not within the given time. It polls often
// at first and then every 50 ms, so a condition that holds soon is seen
// soon and a slow one does not spin.
//
// Eventually proves that something happens. To prove that something does
// NOT happen, wait with Eventually for a later event that could only come
// after it (a record appended after it, a frame sent after it), and then
// check its absence.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

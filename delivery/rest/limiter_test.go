package rest

import (
	"testing"
	"time"
)

// TestLimiterAllowsTheBurstThenSaysHowLongToWait: a user gets burst sends
// at once, then a refusal that names the wait until the next token, and
// users do not share buckets.
func TestLimiterAllowsTheBurstThenSaysHowLongToWait(t *testing.T) {
	l := newLimiter(2, 3) // 2 per second, burst 3
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow("alice"); !ok {
			t.Fatalf("send %d of the burst refused", i+1)
		}
	}
	ok, wait := l.allow("alice")
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("4th send: allowed %v, wait %v; want refused with a wait up to 500ms", ok, wait)
	}
	if ok, _ := l.allow("bob"); !ok {
		t.Fatal("bob was limited by alice's sends")
	}
}

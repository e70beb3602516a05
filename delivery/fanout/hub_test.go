package fanout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/internal/testutil"
)

// TestResultsDoNotWaitBehindFanOut: while the fan-out of earlier events is
// stuck (here: a connection's writer start blocks), the result of a later
// command still reaches its caller. Before, the hub resolved a result only
// after delivering every event read before it.
func TestResultsDoNotWaitBehindFanOut(t *testing.T) {
	results := make(chan string, 10)
	th := newTestHub(t, func(h *Hub) {
		h.OnResult = func(id string, r chat.Result) { results <- id }
	})
	block := make(chan struct{})
	defer close(block)
	c := NewConn("bob", 64)
	if err := th.Open(context.Background(), c, "", 0); err != nil {
		t.Fatal(err)
	}
	c.StartWriter(func() { <-block }) // the fan-out is stuck waking bob

	th.feed(t, 1, message(1, "other-gw", "cmd_a", "bob"))
	th.feed(t, 1, message(1, "gw1", "cmd_b", "bob"))
	select {
	case id := <-results:
		if id != "cmd_b" {
			t.Fatalf("result of %s, want cmd_b", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the result waited behind a stuck fan-out")
	}
}

// TestAReadWakesEachConnectionOnceWithEverything: the events of one read
// reach a connection in one take (one write), however many they are, and
// its writer is started once.
func TestAReadWakesEachConnectionOnceWithEverything(t *testing.T) {
	th := newTestHub(t, nil)
	c, starts := th.open(t, "bob", 1024)
	seqs := make([]chat.Sequenced, 100)
	for i := range seqs {
		seqs[i] = message(2, "other-gw", fmt.Sprint("cmd_", i), "alice", "bob")
	}
	th.feed(t, 2, seqs...)
	waitFor(t, func() bool { return c.Pending() })
	waitFor(t, func() bool { return starts.Load() == 1 })
	items, err := c.Take(nil)
	if err != nil || len(items) != 100 {
		t.Fatalf("take: %d items, %v; want 100", len(items), err)
	}
	frame := c.RenderBatch(nil, items)
	if n := bytes.Count(frame, []byte("\n")) + 1; n != 100 {
		t.Fatalf("frame holds %d objects, want 100", n)
	}
	if n := starts.Load(); n != 1 {
		t.Fatalf("writer started %d times, want 1", n)
	}
}

// TestEventAtOrBelowTheFrontierIsNotDispatchedAgain: a record read again
// (a replay of the events log) is not delivered twice.
func TestEventAtOrBelowTheFrontierIsNotDispatchedAgain(t *testing.T) {
	th := newTestHub(t, nil)
	c, _ := th.open(t, "bob", 64)
	s := message(3, "x", "cmd_1", "bob")
	th.feed(t, 3, s)
	th.feed(t, 3, s)
	// A later message is fanned out after the replay (reads go out in
	// order): once it arrives, a wrong second dispatch would have too.
	marker := message(3, "x", "cmd_2", "bob")
	th.feed(t, 3, marker)
	var items []*Item
	testutil.Eventually(t, 10*time.Second, func() error {
		got, _ := c.Take(nil)
		items = append(items, got...)
		if len(items) == 0 || items[len(items)-1].Position != marker.Events[0].Position {
			return fmt.Errorf("%d deliveries, the marker not among them yet", len(items))
		}
		return nil
	})
	if len(items) != 2 {
		t.Fatalf("%d deliveries, want the message once and the marker", len(items))
	}
}

// TestEphemeralReachesEveryConnectionOfTheUsers: presence and typing go to
// all local connections of the named users, and to no one else.
func TestEphemeralReachesEveryConnectionOfTheUsers(t *testing.T) {
	th := newTestHub(t, nil)
	b1, _ := th.open(t, "bob", 64)
	b2, _ := th.open(t, "bob", 64)
	c, _ := th.open(t, "carol", 64)
	on := true
	th.Ephemeral([]string{"bob"}, chat.Ephemeral{Type: chat.EventPresence, UserID: "alice", Online: &on})
	for i, conn := range []*Conn{b1, b2} {
		items, _ := conn.Take(nil)
		if len(items) != 1 || items[0].Kind != KindEphemeral {
			t.Fatalf("bob's connection %d: %v", i, items)
		}
	}
	if c.Pending() {
		t.Fatal("carol got bob's presence")
	}
}

// TestRegisterHooksAndLimit: the presence hooks hear every connection that
// opens and closes, and a user's connections beyond the limit are refused.
func TestRegisterHooksAndLimit(t *testing.T) {
	var mu sync.Mutex
	var log []string
	th := newTestHub(t, func(h *Hub) {
		h.OnRegister = func(u string) { mu.Lock(); log = append(log, "+"+u); mu.Unlock() }
		h.OnUnregister = func(u string) { mu.Lock(); log = append(log, "-"+u); mu.Unlock() }
	})
	a := NewConn("bob", 16)
	if err := th.Open(context.Background(), a, "", 1); err != nil {
		t.Fatal(err)
	}
	if err := th.Open(context.Background(), NewConn("bob", 16), "", 1); chat.ErrorCode(err) != chat.CodeRateLimited {
		t.Fatalf("second connection: %v, want rate_limited", err)
	}
	th.Unregister(a)
	th.Unregister(a)
	if fmt.Sprint(log) != "[+bob -bob]" || th.Connections("bob") != 0 || th.AnyLocal() {
		t.Fatalf("hooks %v, connections %d", log, th.Connections("bob"))
	}
}

// waitFor waits until cond holds (testutil.Eventually).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if !cond() {
			return errors.New("condition not met")
		}
		return nil
	})
}

// TestRecipientsChangeWithTheMembers: the cached recipients of a room are
// reused only while they are the same; a member added is delivered to.
func TestRecipientsChangeWithTheMembers(t *testing.T) {
	th := newTestHub(t, nil)
	members := make([]string, 100)
	for i := range members {
		members[i] = fmt.Sprint("user", i)
	}
	late, _ := th.open(t, "late", 64)
	th.feed(t, 1, message(1, "x", "c1", members...))
	th.feed(t, 1, message(1, "x", "c2", append(members, "late")...))
	waitFor(t, func() bool { return late.Pending() })
	if items, _ := late.Take(nil); len(items) != 1 {
		t.Fatalf("the added member got %d events, want 1", len(items))
	}
}

// headsFailFirst fails its first Heads call, then blocks the next one
// until release is closed and answers heads.
type headsFailFirst struct {
	fakeStore
	calls   atomic.Int32
	second  chan struct{} // closed when the second call starts
	release chan struct{}
	heads   []int64
}

func (s *headsFailFirst) Heads(ctx context.Context, n int) ([]int64, error) {
	switch s.calls.Add(1) {
	case 1:
		return nil, chat.Errorf(chat.CodeUnavailable, "store: heads: connection refused")
	case 2:
		close(s.second)
		<-s.release
	}
	return s.heads, nil
}

// TestHubIsNotReadyWhileTheHeadsAreUnread: a hub that cannot read the
// partition heads is not ready (and says why) until a retry reads them;
// then its frontier is the heads, not zero.
func TestHubIsNotReadyWhileTheHeadsAreUnread(t *testing.T) {
	st := &headsFailFirst{second: make(chan struct{}), release: make(chan struct{}), heads: []int64{5, 0, 9, 0}}
	lg := &fakeLog{parts: 4, reads: make(chan fakeRead)}
	h := NewHub(Config{ID: "gw1", Log: lg, Store: st, Deployment: 7})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	defer func() { cancel(); <-done }()

	select {
	case <-st.second: // the first read failed and was recorded
	case <-time.After(10 * time.Second):
		t.Fatal("the hub did not retry reading the heads")
	}
	select {
	case <-h.Ready():
		t.Fatal("hub ready without the partition heads")
	default:
	}
	if why := h.NotReady(); !strings.Contains(why, "partition heads") || !strings.Contains(why, "connection refused") {
		t.Fatalf("NotReady() = %q, want the heads error", why)
	}
	close(st.release)
	select {
	case <-h.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("hub not ready after the heads were read")
	}
	if why := h.NotReady(); why != "" {
		t.Fatalf("NotReady() = %q once ready", why)
	}
	h.mu.Lock()
	front := slices.Clone(h.front)
	h.mu.Unlock()
	if !slices.Equal(front, st.heads) {
		t.Fatalf("frontier %v, want the heads %v", front, st.heads)
	}
}

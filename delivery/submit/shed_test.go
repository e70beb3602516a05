package submit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// conversationsIn returns n conversation ids of partition p (of 4).
func conversationsIn(p, n int) []string {
	var ids []string
	for i := 0; len(ids) < n; i++ {
		if id := fmt.Sprintf("cnv_%d", i); chat.PartitionOf(id, 4) == p {
			ids = append(ids, id)
		}
	}
	return ids
}

// submitNow submits a send and reports whether it was answered before
// Submit returned, and with what.
func submitNow(s *Submitter, cid string) (cmd *chat.Command, answered bool, err error) {
	cmd = &chat.Command{Op: chat.OpSend, ConversationID: cid, Actor: "alice", Text: "hi"}
	got := make(chan error, 1)
	s.Submit(context.Background(), cmd, func(_ chat.Result, err error) { got <- err })
	select {
	case err = <-got:
		return cmd, true, err
	default:
		return cmd, false, nil
	}
}

func (l *fakeLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.appended)
}

// waitAppended waits until the log holds n commands.
func waitAppended(t *testing.T, lg *fakeLog, n int) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); lg.count() < n; {
		if time.Now().After(end) {
			t.Fatalf("%d commands appended, want %d", lg.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// While a partition's oldest command has waited longer than ShedAfter for
// its result, a new command to that partition is answered "unavailable"
// at once and never appended; other partitions are not held back, and the
// partition admits commands again as soon as its oldest is answered.
// Before, every command was appended, and under a load the sequencer
// could not carry, most were carried through the log only to be refused
// at their deadline.
func TestABehindPartitionShedsNewCommandsUnappended(t *testing.T) {
	lg := &fakeLog{}
	s := startWithShed(t, lg, 10*time.Second, 100*time.Millisecond)
	slow, other := conversationsIn(1, 3), conversationsIn(2, 1)

	first, answered, _ := submitNow(s, slow[0])
	if answered {
		t.Fatal("the first command was answered at once")
	}
	waitAppended(t, lg, 1)
	time.Sleep(150 * time.Millisecond)

	if _, answered, err := submitNow(s, slow[1]); !answered || chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Fatalf("a command to the partition behind: answered at once %v, err %v; want unavailable at once", answered, err)
	}
	if _, answered, _ := submitNow(s, other[0]); answered {
		t.Fatal("a command to another partition was shed")
	}
	waitAppended(t, lg, 2)
	if n := lg.count(); n != 2 {
		t.Fatalf("%d commands appended, want 2 (the shed one never is)", n)
	}
	if n := s.Shed(); n != 1 {
		t.Fatalf("Shed() = %d, want 1", n)
	}

	s.Resolve(first.ID, chat.Result{Created: true})
	if _, answered, _ := submitNow(s, slow[2]); answered {
		t.Fatal("the partition still sheds once its oldest command is answered")
	}
	waitAppended(t, lg, 3)
}

// A partition that stays stalled does not shed for ever: a command stops
// counting once its fence starts, even when the fence finds it passed
// and it waits on for its result, and the partition then admits new
// commands again.
func TestAStalledPartitionAdmitsAgainOnceItsCommandsGiveUp(t *testing.T) {
	lg := &fakeLog{}
	st := &fakeStore{refuse: false} // the fence finds the command passed
	s := startConfig(t, Config{Gateway: "gw1", Log: lg, Store: st, Timeout: time.Second, ShedAfter: 50 * time.Millisecond})
	cids := conversationsIn(3, 3)
	if _, answered, _ := submitNow(s, cids[0]); answered {
		t.Fatal("the first command was answered at once")
	}
	time.Sleep(100 * time.Millisecond)
	if _, answered, _ := submitNow(s, cids[1]); !answered {
		t.Fatal("not shed while the partition's oldest command waits")
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st.mu.Lock()
		fenced := len(st.calls) > 0
		st.mu.Unlock()
		if fenced {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the stalled command was never fenced")
		}
	}
	time.Sleep(20 * time.Millisecond)
	if _, answered, err := submitNow(s, cids[2]); answered {
		t.Fatalf("still shed after the stalled command's fence started: %v", err)
	}
}

// A negative ShedAfter never sheds.
func TestNegativeShedAfterNeverSheds(t *testing.T) {
	lg := &fakeLog{}
	s := startWithShed(t, lg, 10*time.Second, -1)
	cids := conversationsIn(0, 2)
	submitNow(s, cids[0])
	time.Sleep(50 * time.Millisecond)
	if _, answered, err := submitNow(s, cids[1]); answered {
		t.Fatalf("shed with ShedAfter < 0: %v", err)
	}
	waitAppended(t, lg, 2)
}

// The default sheds at two thirds of the time the sequencer has to reach
// a command: with the gateway's 4 s timeout, its 1 s lead and the 2 s
// grace, at 2 s.
func TestTheDefaultShedAfterIsTwoThirdsOfTheSequencersWindow(t *testing.T) {
	if d := defaultShedAfter(4 * time.Second); d != 2*time.Second {
		t.Fatalf("defaultShedAfter(4s) = %v, want 2s", d)
	}
	s := New(Config{Gateway: "gw1", Log: &fakeLog{}, Store: &fakeStore{}, Timeout: 4 * time.Second})
	if s.cfg.ShedAfter != 2*time.Second {
		t.Fatalf("ShedAfter %v, want the default 2s", s.cfg.ShedAfter)
	}
}

func startWithShed(t *testing.T, lg *fakeLog, timeout, shedAfter time.Duration) *Submitter {
	t.Helper()
	return startConfig(t, Config{Gateway: "gw1", Log: lg, Store: &fakeStore{refuse: true}, Timeout: timeout, ShedAfter: shedAfter})
}

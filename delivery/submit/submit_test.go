package submit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// fakeLog records appended commands; fail makes Append report an error
// after taking them (a lost acknowledgement).
type fakeLog struct {
	chat.Log
	mu       sync.Mutex
	appended []chat.Command
	fail     bool
	took     chan chat.Command
}

func (l *fakeLog) Partitions() int { return 4 }

func (l *fakeLog) Append(ctx context.Context, topic string, recs ...*chat.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		cmd, err := record.DecodeCommand(r.Value)
		if err != nil {
			return err
		}
		l.appended = append(l.appended, cmd)
		if l.took != nil {
			l.took <- cmd
		}
	}
	if l.fail {
		return errors.New("connection reset before the acknowledgement")
	}
	return nil
}

// fakeStore is the fence: Refuse answers refuse (or err) and records
// its calls.
type fakeStore struct {
	mu     sync.Mutex
	refuse bool
	err    error
	calls  []refusal
}

type refusal struct {
	partition int
	gateway   string
	deadline  time.Time
}

func (f *fakeStore) Refuse(ctx context.Context, partition int, gateway string, deadline time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, refusal{partition, gateway, deadline})
	return f.refuse, f.err
}

func (f *fakeStore) Dedup(ctx context.Context, cid, sender, clientID string) (string, error) {
	return "", chat.Errorf(chat.CodeNotFound, "no dedup record")
}

func (f *fakeStore) Message(ctx context.Context, cid, mid string) (chat.Message, error) {
	return chat.Message{}, chat.Errorf(chat.CodeNotFound, "no message")
}

func start(t *testing.T, lg *fakeLog, timeout time.Duration) *Submitter {
	t.Helper()
	return startWith(t, lg, &fakeStore{refuse: true}, timeout)
}

func startWith(t *testing.T, lg *fakeLog, st *fakeStore, timeout time.Duration) *Submitter {
	t.Helper()
	return startConfig(t, Config{Gateway: "gw1", Log: lg, Store: st, Timeout: timeout})
}

// startConfig runs a submitter of cfg until the test ends.
func startConfig(t *testing.T, cfg Config) *Submitter {
	t.Helper()
	s := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// TestUnavailableComesOnlyOnceTheCommandIsFenced: when no result comes,
// the caller hears "unavailable" only once the fence in the Store holds
// for the command's deadline (it can then never be applied), and not
// before the sequencer refuses the command on its own (its deadline plus
// the sequencer's grace). Before, the gateway answered by the clock
// alone, and a slow Commit could still apply the command.
func TestUnavailableComesOnlyOnceTheCommandIsFenced(t *testing.T) {
	lg := &fakeLog{}
	st := &fakeStore{refuse: true}
	s := startWith(t, lg, st, time.Second)
	cmd := &chat.Command{Op: chat.OpSend, ConversationID: "cnv_1", Actor: "alice", Text: "hi"}
	_, err := s.Wait(context.Background(), cmd)
	answered := time.Now()
	if chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Fatalf("err %v, want unavailable", err)
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if len(lg.appended) != 1 {
		t.Fatalf("%d commands appended", len(lg.appended))
	}
	carried := lg.appended[0].Deadline
	if refusedFrom := carried.Add(chat.ExpiryGrace); answered.Before(refusedFrom) {
		t.Fatalf("answered unavailable at %v, before the sequencer refuses the command (%v)",
			answered.Format(time.StampMilli), refusedFrom.Format(time.StampMilli))
	}
	if !carried.After(cmd.At) {
		t.Fatalf("deadline %v not after the command's time %v", carried, cmd.At)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.calls) != 1 || !st.calls[0].deadline.Equal(carried) || st.calls[0].gateway != "gw1" {
		t.Fatalf("fences %+v, want one at the carried deadline %v", st.calls, carried)
	}
}

// TestTheAnswerComesByTheTimeoutWhenTheStoreDoesNotAnswer: a fence the
// Store never answers (it is down) does not keep the caller: it hears
// "unavailable" by the give-up time plus refuseLimit.
func TestTheAnswerComesByTheTimeoutWhenTheStoreDoesNotAnswer(t *testing.T) {
	lg := &fakeLog{}
	st := &fakeStore{err: chat.Errorf(chat.CodeUnavailable, "store down")}
	s := startWith(t, lg, st, 4*time.Second)
	start := time.Now()
	_, err := s.Wait(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: "cnv_1", Actor: "alice", Text: "hi"})
	if chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Fatalf("err %v, want unavailable", err)
	}
	if took := time.Since(start); took > 4*time.Second+refuseLimit+500*time.Millisecond {
		t.Fatalf("answered after %v", took)
	}
}

// TestALostAppendAcknowledgementStillGetsTheResult: an Append that fails
// may have written the command; when the fence finds that the sequencer
// has it, its result, when it comes, is the answer (not an early 503 for
// a message that then appears for everyone).
func TestALostAppendAcknowledgementStillGetsTheResult(t *testing.T) {
	lg := &fakeLog{fail: true, took: make(chan chat.Command, 1)}
	s := startWith(t, lg, &fakeStore{refuse: false}, time.Second)
	done := make(chan error, 1)
	s.Submit(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: "cnv_1", Actor: "alice", Text: "hi"}, func(r chat.Result, err error) {
		if err == nil && !r.Created {
			err = errors.New("not the sequencer's result")
		}
		done <- err
	})
	cmd := <-lg.took
	// The failed Append has returned, and the lane gone on, once the
	// lane's next command is appended (one lane appends in order).
	s.Submit(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: "cnv_1", Actor: "alice", Text: "next"}, func(chat.Result, error) {})
	<-lg.took
	select {
	case err := <-done:
		t.Fatalf("answered %v right after the failed Append, want to wait for the result", err)
	default:
	}
	s.Resolve(cmd.ID, chat.Result{Created: true})
	if err := <-done; err != nil {
		t.Fatalf("answer %v, want the result", err)
	}
}

// TestResultReachesItsCallerOnce: the result is handed over once, a second
// result for the same command (a replay) is ignored, and Drain returns.
func TestResultReachesItsCallerOnce(t *testing.T) {
	lg := &fakeLog{took: make(chan chat.Command, 1)}
	s := start(t, lg, 4*time.Second)
	calls := make(chan chat.Result, 2)
	s.Submit(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: "cnv_1"}, func(r chat.Result, err error) { calls <- r })
	cmd := <-lg.took
	if cmd.Gateway != "gw1" || cmd.ID == "" {
		t.Fatalf("command %+v", cmd)
	}
	s.Resolve(cmd.ID, chat.Result{Created: true})
	s.Resolve(cmd.ID, chat.Result{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Drain(ctx)
	if ctx.Err() != nil || len(calls) != 1 || !(<-calls).Created {
		t.Fatal("the result did not reach its caller exactly once")
	}
}

// TestDeadlinesKeepTheAnswerWithinTheTimeout: with the default timeout the
// caller's wait is the timeout; a command always gets some time to reach
// the sequencer.
func TestDeadlinesKeepTheAnswerWithinTheTimeout(t *testing.T) {
	at := time.Unix(1000, 0)
	for _, tc := range []struct {
		timeout    time.Duration
		lead, wait time.Duration
	}{
		{4 * time.Second, time.Second, 4 * time.Second},
		{10 * time.Second, 7 * time.Second, 10 * time.Second},
		{time.Second, minLead, minLead + chat.ExpiryGrace + Settle},
	} {
		d, g := Deadlines(at, tc.timeout)
		if d.Sub(at) != tc.lead || g.Sub(at) != tc.wait {
			t.Errorf("timeout %v: deadline +%v, give up +%v; want +%v, +%v", tc.timeout, d.Sub(at), g.Sub(at), tc.lead, tc.wait)
		}
	}
}

// TestAFailedAppendIsFencedAndRefused: the commands of a failed Append are
// fenced in the Store up to the deadline they carry; where the fence
// holds they are answered unavailable at once (they can never be
// applied), not after the whole timeout.
func TestAFailedAppendIsFencedAndRefused(t *testing.T) {
	lg := &fakeLog{fail: true, took: make(chan chat.Command, 1)}
	st := &fakeStore{refuse: true}
	s := startWith(t, lg, st, 4*time.Second)
	start := time.Now()
	_, err := s.Wait(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: "cnv_1", Actor: "alice", Text: "hi"})
	if chat.ErrorCode(err) != chat.CodeUnavailable || time.Since(start) > 3*time.Second {
		t.Fatalf("answer %v after %v, want unavailable at once", err, time.Since(start))
	}
	cmd := <-lg.took
	st.mu.Lock()
	defer st.mu.Unlock()
	want := refusal{chat.PartitionOf("cnv_1", 4), "gw1", cmd.Deadline}
	if len(st.calls) != 1 || st.calls[0].partition != want.partition || st.calls[0].gateway != want.gateway || !st.calls[0].deadline.Equal(want.deadline) {
		t.Fatalf("fenced %+v, want %+v", st.calls, want)
	}
}

// TestAPassedCommandWaitsForItsResult: when the result has not come by
// the give-up time but the fence finds that the sequencer has passed the
// command (stored it, or one after it), the caller is not told
// "unavailable": it waits for the result.
func TestAPassedCommandWaitsForItsResult(t *testing.T) {
	lg := &fakeLog{took: make(chan chat.Command, 1)}
	st := &fakeStore{refuse: false}
	s := startWith(t, lg, st, time.Second)
	done := make(chan error, 1)
	s.Submit(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: "cnv_1", Actor: "alice", Text: "hi"}, func(r chat.Result, err error) {
		if err == nil && !r.Created {
			err = errors.New("not the sequencer's result")
		}
		done <- err
	})
	cmd := <-lg.took
	_, giveUp := Deadlines(cmd.At, time.Second)
	// A wait on the clock, as the condition is the clock: the gateway's
	// give-up time passes with the command still unanswered.
	time.Sleep(time.Until(giveUp) + 300*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("answered %v before the result came", err)
	default:
	}
	st.mu.Lock()
	calls := len(st.calls)
	st.mu.Unlock()
	if calls != 1 {
		t.Fatalf("%d fences, want 1", calls)
	}
	s.Resolve(cmd.ID, chat.Result{Created: true})
	if err := <-done; err != nil {
		t.Fatalf("answer %v, want the result", err)
	}
}

// TestDeadlinesGrowInLogOrder: a gateway's commands to one partition
// carry strictly growing deadlines in the order they are appended, also
// when the clock gives two of them the same time.
func TestDeadlinesGrowInLogOrder(t *testing.T) {
	lg := &fakeLog{took: make(chan chat.Command, 1000)}
	s := start(t, lg, 4*time.Second)
	for i := 0; i < 500; i++ {
		s.Submit(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: "cnv_1", Actor: "alice"}, func(chat.Result, error) {})
	}
	var prev time.Time
	for i := 0; i < 500; i++ {
		cmd := <-lg.took
		if !cmd.Deadline.After(prev) {
			t.Fatalf("command %d has deadline %v, not after %v", i, cmd.Deadline, prev)
		}
		prev = cmd.Deadline
	}
}

package submit

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
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
		var cmd chat.Command
		if err := json.Unmarshal(r.Value, &cmd); err != nil {
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

func start(t *testing.T, lg *fakeLog, timeout time.Duration) *Submitter {
	t.Helper()
	s := New(Config{Gateway: "gw1", Log: lg, Timeout: timeout})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// TestUnavailableComesOnlyOnceTheCommandCanNoLongerBeApplied: when no
// result comes, the caller hears "unavailable" only after the moment from
// which the sequencer refuses the command (its deadline plus the
// sequencer's grace) and the result of a command applied just before it
// would have come back (Settle). Before, the gateway answered 503 at the
// command's deadline, while the sequencer still applied it for 2 s more.
func TestUnavailableComesOnlyOnceTheCommandCanNoLongerBeApplied(t *testing.T) {
	lg := &fakeLog{}
	s := start(t, lg, time.Second)
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
	if refusedFrom := carried.Add(chat.ExpiryGrace + Settle); answered.Before(refusedFrom) {
		t.Fatalf("answered unavailable at %v, before the sequencer must refuse the command (%v) and its result settled",
			answered.Format(time.StampMilli), refusedFrom.Format(time.StampMilli))
	}
	if !carried.After(cmd.At) {
		t.Fatalf("deadline %v not after the command's time %v", carried, cmd.At)
	}
}

// TestALostAppendAcknowledgementStillGetsTheResult: an Append that fails
// may have written the command; its result, when it comes, is the answer
// (not an early 503 for a message that then appears for everyone).
func TestALostAppendAcknowledgementStillGetsTheResult(t *testing.T) {
	lg := &fakeLog{fail: true, took: make(chan chat.Command, 1)}
	s := start(t, lg, time.Second)
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

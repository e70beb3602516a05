package submit_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/delivery/sequencer"
	"github.com/parleychat/parley/delivery/submit"
	"github.com/parleychat/parley/internal/testutil"
	"github.com/parleychat/parley/storage/pebble"
)

// slowStore makes Commits of sends slow: before writing (a commit that
// is slow to reach the store, or retried) or after (written, slow to be
// acknowledged).
type slowStore struct {
	chat.Store
	before, after atomic.Int64 // nanoseconds
	// commits counts the Commits of sends that returned.
	commits atomic.Int64
}

func (s *slowStore) Commit(ctx context.Context, partition int, epoch, head int64, changes []chat.Change) error {
	sends := false
	for _, ch := range changes {
		sends = sends || len(ch.Dedups) > 0
	}
	if sends {
		time.Sleep(time.Duration(s.before.Load()))
	}
	err := s.Store.Commit(ctx, partition, epoch, head, changes)
	if sends {
		time.Sleep(time.Duration(s.after.Load()))
		s.commits.Add(1)
	}
	return err
}

// slowEvents delays the sequencer's appends to the events log.
type slowEvents struct {
	chat.Log
	delay atomic.Int64 // nanoseconds
}

func (l *slowEvents) Append(ctx context.Context, topic string, recs ...*chat.Record) error {
	if topic == chat.TopicEvents {
		time.Sleep(time.Duration(l.delay.Load()))
	}
	return l.Log.Append(ctx, topic, recs...)
}

// fenceRig is one embedded gateway's send path: a submitter, the
// sequencer and the results read back from the events log.
type fenceRig struct {
	store  *slowStore
	events *slowEvents
	sub    *submit.Submitter
}

func newFenceRig(t *testing.T) *fenceRig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := pebble.Open(ctx, pebble.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st := &slowStore{Store: pb}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sub := submit.New(submit.Config{Gateway: "gw-fence", Log: lg, Store: st, Timeout: time.Second, Logger: logger})
	ready := make(chan struct{})
	done := make(chan struct{}, 3)
	go func() {
		defer func() { done <- struct{}{} }()
		_ = lg.Subscribe(ctx, chat.TopicEvents, func() { close(ready) }, func(_ int, recs []chat.Record) {
			for _, r := range recs {
				if sq, err := record.DecodeSequenced(r.Value); err == nil && sq.Gateway == "gw-fence" {
					sub.Resolve(sq.CommandID, sq.Result)
				}
			}
		})
	}()
	<-ready
	go func() { defer func() { done <- struct{}{} }(); sub.Run(ctx) }()
	events := &slowEvents{Log: lg}
	go func() { defer func() { done <- struct{}{} }(); _ = sequencer.New(events, st, logger).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
		pb.Close()
		lg.Close()
	})
	return &fenceRig{store: st, events: events, sub: sub}
}

func (r *fenceRig) create(t *testing.T) string {
	t.Helper()
	res, err := r.sub.Wait(context.Background(), &chat.Command{Op: chat.OpCreate, ConversationID: chat.NewID("cnv"), Kind: chat.KindGroup, Actor: "alice"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return res.Conversation.ID
}

// TestAnUnavailableSendIsNeverAppliedAfterwards: a Commit that reaches
// the store only after the gateway stopped waiting (here 5 s, past the
// 3.5 s the gateway waits) used to store the message that the caller had
// been told was not sent. The gateway's fence now makes the Commit fail,
// and the sequencer refuses the send when it tries again.
func TestAnUnavailableSendIsNeverAppliedAfterwards(t *testing.T) {
	r := newFenceRig(t)
	cid := r.create(t)
	r.store.before.Store(int64(5 * time.Second))
	commitsBefore := r.store.commits.Load()
	_, err := r.sub.Wait(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: cid, Actor: "alice", ClientID: "late-1", Text: "late"})
	if chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Fatalf("answer %v, want unavailable", err)
	}
	r.store.before.Store(0)
	// The slow Commit lands meanwhile (it returns, fenced), and the
	// sequencer retries; a later send of the same conversation, after it
	// in the log, shows that the sequencer has moved on.
	testutil.Eventually(t, 10*time.Second, func() error {
		if r.store.commits.Load() == commitsBefore {
			return errors.New("the slow Commit of the late send has not returned")
		}
		return nil
	})
	if _, err := r.sub.Wait(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: cid, Actor: "alice", ClientID: "next-1", Text: "next"}); err != nil {
		t.Fatalf("the next send: %v", err)
	}
	if mid, err := r.store.Dedup(context.Background(), cid, "alice", "late-1"); !chat.IsNotFound(err) {
		t.Fatalf("the send answered unavailable was stored afterwards (message %q, err %v)", mid, err)
	}
}

// TestASlowlyAcknowledgedSendIsAnsweredWithItsResult: a Commit that wrote
// the message but returns late leaves the fence nothing to refuse: the
// caller waits for, and gets, the message, not "unavailable".
func TestASlowlyAcknowledgedSendIsAnsweredWithItsResult(t *testing.T) {
	r := newFenceRig(t)
	cid := r.create(t)
	r.store.after.Store(int64(5 * time.Second))
	res, err := r.sub.Wait(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: cid, Actor: "alice", ClientID: "slow-1", Text: "slow"})
	if err != nil || res.Message == nil || res.Message.ClientID != "slow-1" {
		t.Fatalf("answer %+v, %v; want the message", res, err)
	}
}

// TestAStoredSendIsAnsweredFromTheStoreWhenItsResultIsLate: when the
// events log is what is slow (or down), a send the fence finds stored is
// answered from its dedup record, as created, soon after the give-up
// time, not when the result finally comes.
func TestAStoredSendIsAnsweredFromTheStoreWhenItsResultIsLate(t *testing.T) {
	r := newFenceRig(t)
	cid := r.create(t)
	r.events.delay.Store(int64(10 * time.Second))
	start := time.Now()
	res, err := r.sub.Wait(context.Background(), &chat.Command{Op: chat.OpSend, ConversationID: cid, Actor: "alice", ClientID: "stored-1", Text: "stored"})
	if err != nil || res.Message == nil || res.Message.ClientID != "stored-1" || !res.Created {
		t.Fatalf("answer %+v, %v; want the created message", res, err)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Fatalf("answered after %v, want soon after the give-up time", took)
	}
	r.events.delay.Store(0)
}

package sequencer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/internal/testutil"
	"github.com/parleychat/parley/storage/pebble"
)

type rig struct {
	t     *testing.T
	log   *memlog.Log
	store *pebble.Store
	seq   *Sequencer
	off   int64
	// assignment, when not 0, is the consumer-group assignment the
	// batches are handled in (chat.WithAssignment).
	assignment int64
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	st, err := pebble.Open(ctx, pebble.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); lg.Close() })
	return &rig{t: t, log: lg, store: st, seq: New(lg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))}
}

// apply hands commands to the sequencer as one batch of records at
// consecutive offsets and returns what it appended to the events log.
func (r *rig) apply(cmds ...chat.Command) []chat.Sequenced {
	r.t.Helper()
	recs := r.records(cmds...)
	return r.handle(recs)
}

func (r *rig) records(cmds ...chat.Command) []chat.Record {
	var recs []chat.Record
	for i := range cmds {
		c := cmds[i]
		if c.ID == "" {
			c.ID = chat.NewID("cmd")
		}
		if c.At.IsZero() {
			c.At = time.Now()
		}
		b, _ := record.EncodeCommand(&c)
		recs = append(recs, chat.Record{Key: c.ConversationID, Value: b, Partition: 0, Offset: r.off})
		r.off++
	}
	return recs
}

func (r *rig) handle(recs []chat.Record) []chat.Sequenced {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan []chat.Record, 1)
	ready := make(chan struct{})
	go func() {
		_ = r.log.Subscribe(ctx, chat.TopicEvents, func() { close(ready) }, func(p int, rs []chat.Record) {
			got <- append([]chat.Record(nil), rs...)
		})
	}()
	<-ready
	hctx := ctx
	if r.assignment != 0 {
		hctx = chat.WithAssignment(ctx, r.assignment)
	}
	if err := r.seq.handle(hctx, 0, recs); err != nil {
		r.t.Fatalf("handle: %v", err)
	}
	byID := map[string]chat.Sequenced{}
	var out []chat.Sequenced
	for len(out) < len(recs) {
		select {
		case rs := <-got:
			for _, rec := range rs {
				s, err := record.DecodeSequenced(rec.Value)
				if err != nil {
					r.t.Fatal(err)
				}
				out = append(out, s)
				byID[s.CommandID] = s
			}
		case <-time.After(5 * time.Second):
			r.t.Fatalf("got %d sequenced records of %d", len(out), len(recs))
		}
	}
	// Records of different conversations may sit in different partitions:
	// answer in command order.
	for i, rec := range recs {
		c, _ := record.DecodeCommand(rec.Value)
		out[i] = byID[c.ID]
	}
	return out
}

func create(cid, actor string, members ...string) chat.Command {
	title := "t"
	return chat.Command{Op: chat.OpCreate, ConversationID: cid, Actor: actor, Kind: chat.KindGroup, Title: &title, Members: members}
}

func send(cid, actor, text, clientID string) chat.Command {
	return chat.Command{Op: chat.OpSend, ConversationID: cid, Actor: actor, Text: text, ClientID: clientID}
}

func TestSeqIsGapFreeAndDedupAnswersTheOriginal(t *testing.T) {
	r := newRig(t)
	out := r.apply(create("c1", "alice", "bob"), send("c1", "alice", "a", "k1"), send("c1", "bob", "b", ""), send("c1", "alice", "a again", "k1"))
	if n := len(out[0].Events); n != 2 {
		t.Fatalf("create made %d events, want member.added for both", n)
	}
	if out[1].Events[0].Seq != 3 || out[2].Events[0].Seq != 4 {
		t.Fatalf("seqs %d, %d; want 3, 4", out[1].Events[0].Seq, out[2].Events[0].Seq)
	}
	if len(out[3].Events) != 0 || out[3].Result.Message.ID != out[1].Result.Message.ID || out[3].Result.Created {
		t.Fatalf("a duplicate client_id must answer the original without an event: %+v", out[3])
	}
	c, _ := r.store.Conversation(context.Background(), "c1")
	if c.LastSeq != 4 {
		t.Fatalf("last seq %d", c.LastSeq)
	}
}

func TestReplayedBatchAppliesOnce(t *testing.T) {
	r := newRig(t)
	recs := r.records(create("c1", "alice"), send("c1", "alice", "x", ""), send("c1", "alice", "y", ""))
	first := r.handle(recs)
	again := r.handle(recs) // a crash before the offsets were committed
	evs, err := r.store.Events(context.Background(), "c1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d stored events after a replay, want 3", len(evs))
	}
	for i := range first {
		if len(first[i].Events) != len(again[i].Events) || (len(first[i].Events) > 0 && first[i].Events[0].EventID != again[i].Events[0].EventID) {
			t.Fatalf("replay of command %d re-emitted different events", i)
		}
	}
	if again[1].Result.Message == nil || again[1].Result.Message.Text != "x" {
		t.Fatalf("replayed send must still answer its message: %+v", again[1].Result)
	}
}

func TestRulesAreEnforced(t *testing.T) {
	r := newRig(t)
	out := r.apply(create("c1", "alice", "bob"), create("c2", "alice"), send("c1", "alice", "hello", ""), send("c2", "alice", "elsewhere", ""))
	mid, other := out[2].Result.Message.ID, out[3].Result.Message.ID
	cases := []struct {
		name string
		cmd  chat.Command
		code string
	}{
		{"non-member sends", send("c1", "eve", "hi", ""), chat.CodeNotFound},
		{"edit by someone else", chat.Command{Op: chat.OpEdit, ConversationID: "c1", Actor: "bob", MessageID: mid, Text: "x"}, chat.CodeForbidden},
		{"stale If-Match", chat.Command{Op: chat.OpEdit, ConversationID: "c1", Actor: "alice", MessageID: mid, Text: "x", IfMatch: 5}, chat.CodeConflict},
		{"reply across conversations", chat.Command{Op: chat.OpSend, ConversationID: "c1", Actor: "alice", Text: "re", ReplyTo: other}, chat.CodeInvalid},
		{"delete by non-sender non-creator", chat.Command{Op: chat.OpDelete, ConversationID: "c1", Actor: "bob", MessageID: mid}, chat.CodeForbidden},
		{"others removed by non-creator", chat.Command{Op: chat.OpRemoveMember, ConversationID: "c1", Actor: "bob", UserID: "alice"}, chat.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.apply(c.cmd)[0]
			if got.Result.ErrCode != c.code || len(got.Events) != 0 {
				t.Fatalf("code %q events %d, want %q and none", got.Result.ErrCode, len(got.Events), c.code)
			}
		})
	}
	edit := r.apply(chat.Command{Op: chat.OpEdit, ConversationID: "c1", Actor: "alice", MessageID: mid, Text: "edited", IfMatch: 1})[0]
	if edit.Result.Message == nil || edit.Result.Message.Version != 2 || edit.Events[0].Type != chat.EventMessageUpdated {
		t.Fatalf("edit: %+v", edit)
	}
}

func TestReadOnlyMovesForwardAndNeverPastLastSeq(t *testing.T) {
	r := newRig(t)
	r.apply(create("c1", "alice", "bob"), send("c1", "alice", "x", ""))
	read := func(seq int64) []chat.Event {
		return r.apply(chat.Command{Op: chat.OpRead, ConversationID: "c1", Actor: "bob", Seq: seq})[0].Events
	}
	if evs := read(99); len(evs) != 1 || evs[0].ReadSeq != 3 {
		t.Fatalf("read past the end: %+v", evs)
	}
	if evs := read(2); len(evs) != 0 {
		t.Fatal("read position moved backwards")
	}
	m, _ := r.store.Membership(context.Background(), "c1", "bob")
	if m.ReadSeq != 3 {
		t.Fatalf("stored read seq %d", m.ReadSeq)
	}
}

func TestRemovedMemberHearsItsRemovalThenNothing(t *testing.T) {
	r := newRig(t)
	r.apply(create("c1", "alice", "bob"))
	out := r.apply(chat.Command{Op: chat.OpRemoveMember, ConversationID: "c1", Actor: "alice", UserID: "bob"}, send("c1", "alice", "after", ""))
	if !contains(out[0].Recipients, "bob") {
		t.Fatal("the removed user must receive member.removed")
	}
	if contains(out[1].Recipients, "bob") {
		t.Fatal("a removed user still receives messages")
	}
	m, _ := r.store.Membership(context.Background(), "c1", "bob")
	if m.Active || m.LeftPosition != out[0].Events[0].Position {
		t.Fatalf("left membership %+v", m)
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestExpiredCommandIsRefusedNotApplied: a command that reaches the
// sequencer after its gateway stopped waiting (and answered 503) is
// refused, so the client's retry with the same client_id is what gets
// applied; one applied before its deadline is still answered on replay.
func TestExpiredCommandIsRefusedNotApplied(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.apply(create("c1", "alice", "bob"))
	now := time.Now()
	late := send("c1", "alice", "too late", "k1")
	late.Gateway, late.At, late.Deadline = "gw", now.Add(-8*time.Second), now.Add(-chat.ExpiryGrace-time.Second)
	// Past its deadline by less than the grace (clocks may disagree): applied.
	skewed := send("c1", "alice", "skewed clocks", "k3")
	skewed.Gateway, skewed.Deadline = "gw", now.Add(-chat.ExpiryGrace/2)
	inTime := send("c1", "alice", "in time", "k2")
	inTime.Gateway, inTime.Deadline = "gw", now.Add(time.Minute)
	recs := r.records(late, inTime, skewed)
	out := r.handle(recs)
	if out[2].Result.ErrCode != "" || len(out[2].Events) != 1 {
		t.Fatalf("send within the grace after its deadline: %+v", out[2])
	}
	if out[0].Result.ErrCode != chat.CodeUnavailable || len(out[0].Events) != 0 {
		t.Fatalf("expired send: %+v, want unavailable and no event", out[0])
	}
	if out[1].Result.ErrCode != "" || len(out[1].Events) != 1 {
		t.Fatalf("send in time: %+v", out[1])
	}
	if _, err := r.store.Dedup(ctx, "c1", "alice", "k1"); !chat.IsNotFound(err) {
		t.Fatalf("the expired send left a dedup record: %v", err)
	}
	// The retry, with the same client_id, is applied.
	retry := send("c1", "alice", "too late", "k1")
	retry.Gateway, retry.Deadline = "gw", time.Now().Add(time.Minute)
	if got := r.apply(retry); got[0].Result.ErrCode != "" || !got[0].Result.Created {
		t.Fatalf("retry: %+v", got[0])
	}
	// The batch again after its deadlines passed (a new owner catching
	// up): what was applied is answered as before, not refused.
	r.seq.now = func() time.Time { return now.Add(2 * time.Minute) }
	again := r.handle(recs)
	if again[1].Result.ErrCode != "" || len(again[1].Events) != 1 || again[1].Events[0].EventID != out[1].Events[0].EventID {
		t.Fatalf("replayed send after its deadline: %+v", again[1])
	}
	evs, _ := r.store.Events(ctx, "c1", 0, 100)
	if len(evs) != 5 { // two member.added, "in time", "skewed clocks", the retry
		t.Fatalf("%d events stored, want 5", len(evs))
	}
}

// TestStaleSequencerIsFencedAndTheNewOwnerGoesOn: a sequencer whose
// partition another sequencer took (a rebalance it slept through) cannot
// commit its batch, even one built on the current state; the new owner
// applies the same commands once, and the stale one, taking the partition
// again on its next batch, sees them as replays.
func TestStaleSequencerIsFencedAndTheNewOwnerGoesOn(t *testing.T) {
	r := newRig(t)
	r.apply(create("cnv_z", "alice", "bob"))
	zombie := r.seq
	owner := New(r.log, r.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := owner.epoch(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	recs := r.records(send("cnv_z", "alice", "hello", "c-1"))
	if err := zombie.handle(t.Context(), 0, recs); !chat.IsConflict(err) {
		t.Fatalf("the stale sequencer's batch: %v, want a conflict", err)
	}
	if c, _ := r.store.Conversation(t.Context(), "cnv_z"); c.LastSeq != 2 {
		t.Fatalf("last seq %d after the stale batch, want 2 (nothing written)", c.LastSeq)
	}
	r.seq = owner
	out := r.handle(recs)
	if len(out) != 1 || len(out[0].Events) != 1 || out[0].Events[0].Seq != 3 {
		t.Fatalf("the new owner's batch: %+v", out)
	}
	r.seq = zombie // took the partition back: the batch is a replay now
	again := r.handle(recs)
	if len(again) != 1 || len(again[0].Events) != 1 || again[0].Events[0].EventID != out[0].Events[0].EventID {
		t.Fatalf("the batch handled again: %+v, want the stored event re-emitted", again)
	}
	if c, _ := r.store.Conversation(t.Context(), "cnv_z"); c.LastSeq != 3 {
		t.Errorf("last seq %d, want 3", c.LastSeq)
	}
}

// TestHopsAreMeasured: the sequencer's hop histogram is registered and
// observes each hop of a batch.
func TestHopsAreMeasured(t *testing.T) {
	r := newRig(t)
	reg := prometheus.NewRegistry()
	r.seq = New(r.log, r.store, slog.New(slog.NewTextHandler(io.Discard, nil)), WithRegisterer(reg))
	r.apply(create("cnv_m", "alice", "bob"), send("cnv_m", "alice", "hi", "c-1"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "parley_sequencer_hop_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "hop" {
					counts[l.GetValue()] = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	for hop, want := range map[string]uint64{"command_wait": 2, "store_commit": 1, "events_append": 1} {
		if counts[hop] != want {
			t.Errorf("hop %s observed %d times, want %d (all: %v)", hop, counts[hop], want, counts)
		}
	}
}

// TestStateIsReadOncePerOwnership: the sequencer keeps the states its own
// commits leave, so a conversation's later batches do not read it from the
// Store; taking the partition again reads it afresh.
func TestStateIsReadOncePerOwnership(t *testing.T) {
	r := newRig(t)
	r.apply(create("cnv_c", "alice", "bob"))
	r.apply(send("cnv_c", "alice", "one", "c-1"))
	k, ok := r.seq.knownState(0, "cnv_c")
	if !ok || k.conv.LastSeq != 3 {
		t.Fatalf("cached state: %+v, %v; want last seq 3", k.conv, ok)
	}
	// Another owner writes meanwhile; ours finds out at its commit and
	// takes the partition again.
	other := New(r.log, r.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mine := r.seq
	r.seq = other
	r.apply(send("cnv_c", "bob", "from the other", "c-2"))
	r.seq = mine
	if err := mine.handle(t.Context(), 0, r.records(send("cnv_c", "alice", "stale", "c-3"))); !chat.IsConflict(err) {
		t.Fatalf("stale cached state: %v, want a conflict", err)
	}
	if _, ok := mine.knownState(0, "cnv_c"); ok {
		t.Fatal("the cache outlived the failed commit")
	}
	out := r.apply(send("cnv_c", "alice", "again", "c-4"))
	if len(out) != 1 || len(out[0].Events) != 1 || out[0].Events[0].Seq != 5 {
		t.Fatalf("after taking the partition again: %+v", out)
	}
}

// overlapStore notes whether a send's membership row is read while its
// dedup records are being read.
type overlapStore struct {
	chat.Store
	once       sync.Once
	membership chan struct{}
	overlapped bool
}

func (s *overlapStore) Membership(ctx context.Context, cid, uid string) (chat.Membership, error) {
	s.once.Do(func() { close(s.membership) })
	return s.Store.Membership(ctx, cid, uid)
}

func (s *overlapStore) SenderDedups(ctx context.Context, cid, sender string, limit int) (map[string]string, bool, error) {
	select {
	case <-s.membership:
		s.overlapped = true
	case <-time.After(3 * time.Second):
	}
	return s.Store.SenderDedups(ctx, cid, sender, limit)
}

// TestSendersMembershipsAreReadAlongsideTheirDedups: a batch's reads are
// one round after the conversations' states, not one round for dedup
// records and then another for the senders' membership rows.
func TestSendersMembershipsAreReadAlongsideTheirDedups(t *testing.T) {
	r := newRig(t)
	r.apply(create("c1", "alice", "bob"))
	st := &overlapStore{Store: r.store, membership: make(chan struct{})}
	seq := New(r.log, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b := &batch{s: seq, ctx: context.Background(), partition: 0, states: map[string]*convState{}, prefetched: map[string]string{}}
	cmd := send("c1", "alice", "x", "k9")
	b.prefetch([]*chat.Command{&cmd})
	if !st.overlapped {
		t.Fatal("the sender's membership was not read while its dedup records were")
	}
	if b.states["c1"] == nil || b.states["c1"].mships["alice"] == nil {
		t.Fatal("the sender's membership was not prefetched")
	}
	if !b.states["c1"].knows("alice") {
		t.Fatal("the sender's dedup records were not prefetched")
	}
}

// TestRefusedCommandsAreRefusedAndExpiredOnesFenced: a command at or
// below its gateway's refusal floor (Store.Refuse: the gateway answered
// 503) is refused, not applied, while another gateway's goes on; and a
// command refused as expired is fenced in the Store before its refusal
// is appended, so no later owner can apply it.
func TestRefusedCommandsAreRefusedAndExpiredOnesFenced(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	if ok, err := r.store.Refuse(ctx, 0, "gw-a", later); err != nil || !ok {
		t.Fatalf("Refuse: %v, %v", ok, err)
	}
	from := func(c chat.Command, gw string, deadline time.Time) chat.Command {
		c.Gateway, c.Deadline = gw, deadline
		return c
	}
	past := time.Now().Add(-time.Minute)
	out := r.apply(create("c1", "alice"),
		from(send("c1", "alice", "refused", "k1"), "gw-a", later),
		from(send("c1", "alice", "fine", "k2"), "gw-b", later),
		from(send("c1", "alice", "expired", "k3"), "gw-c", past))
	if out[1].Result.ErrCode != chat.CodeUnavailable || len(out[1].Events) != 0 {
		t.Fatalf("a refused gateway's send: %+v, want unavailable", out[1].Result)
	}
	if out[2].Result.ErrCode != "" || out[2].Result.Message == nil {
		t.Fatalf("another gateway's send: %+v", out[2].Result)
	}
	if out[3].Result.ErrCode != chat.CodeUnavailable {
		t.Fatalf("an expired send: %+v, want unavailable", out[3].Result)
	}
	floors, err := r.store.Refusals(ctx, 0)
	// Fenced up to what is expired by the sequencer's clock, which
	// covers the command's deadline.
	if err != nil || floors["gw-c"].Before(past) || floors["gw-c"].After(time.Now().Add(-chat.ExpiryGrace)) {
		t.Fatalf("floors %v, %v; want gw-c fenced from %v to now - grace", floors, err, past)
	}
	for _, k := range []string{"k1", "k3"} {
		if _, err := r.store.Dedup(ctx, "c1", "alice", k); !chat.IsNotFound(err) {
			t.Errorf("refused send %s stored (err %v)", k, err)
		}
	}
}

// countStore counts membership reads.
type countStore struct {
	chat.Store
	mu          sync.Mutex
	memberships int
}

func (s *countStore) Membership(ctx context.Context, cid, uid string) (chat.Membership, error) {
	s.mu.Lock()
	s.memberships++
	s.mu.Unlock()
	return s.Store.Membership(ctx, cid, uid)
}

// TestMembershipsAreReadOncePerOwnership: a sender's membership row is
// read from the Store once while the sequencer holds the partition (only
// its Commits write it), and its read position still moves with every
// send.
func TestMembershipsAreReadOncePerOwnership(t *testing.T) {
	r := newRig(t)
	r.apply(create("c1", "alice", "bob"))
	st := &countStore{Store: r.store}
	r.seq = New(r.log, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 4 {
		r.apply(send("c1", "alice", "x", fmt.Sprint("m-", i)))
	}
	if st.memberships != 1 {
		t.Errorf("%d membership reads for four batches, want 1", st.memberships)
	}
	m, err := r.store.Membership(t.Context(), "c1", "alice")
	if err != nil || m.ReadSeq != 6 {
		t.Fatalf("alice's stored read position %d (%v), want 6", m.ReadSeq, err)
	}
}

// TestARefusalAfterTakingThePartitionIsHandledInTheBatch: a gateway that
// refuses its commands after the sequencer took the partition makes the
// Commit fail with ErrRefused; the sequencer reads the floors again and
// applies the batch again within the same call, keeping its epoch,
// instead of failing the batch (which would restart the consumer).
func TestARefusalAfterTakingThePartitionIsHandledInTheBatch(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.apply(create("c1", "alice"))
	epoch, _ := r.seq.epoch(ctx, 0)
	later := time.Now().Add(time.Hour)
	if ok, err := r.store.Refuse(ctx, 0, "gw-a", later); err != nil || !ok {
		t.Fatalf("Refuse: %v, %v", ok, err)
	}
	refused := send("c1", "alice", "refused", "k1")
	refused.Gateway, refused.Deadline = "gw-a", later
	fine := send("c1", "alice", "fine", "k2")
	out := r.apply(fine, refused)
	if out[0].Result.Message == nil || out[1].Result.ErrCode != chat.CodeUnavailable {
		t.Fatalf("results %+v, %+v; want the first applied, the refused one unavailable", out[0].Result, out[1].Result)
	}
	if e, _ := r.seq.epoch(ctx, 0); e != epoch {
		t.Errorf("the partition was taken again (epoch %d, then %d)", epoch, e)
	}
	if _, err := r.store.Dedup(ctx, "c1", "alice", "k1"); !chat.IsNotFound(err) {
		t.Errorf("the refused send was stored (err %v)", err)
	}
}

// TestARefusedCommitKeepsTheOtherConversationsCached: a Commit refused
// because of a gateway's refusal drops the cached states of its own
// conversations only; another conversation of the partition, which the
// Commit did not touch, stays cached with its dedup records, so the
// refusal (which comes with overload) does not make every conversation
// be read again.
func TestARefusedCommitKeepsTheOtherConversationsCached(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.apply(create("c0", "bob"), create("c1", "alice"))
	r.apply(send("c0", "bob", "hello", "b1"))
	later := time.Now().Add(time.Hour)
	if ok, err := r.store.Refuse(ctx, 0, "gw-a", later); err != nil || !ok {
		t.Fatalf("Refuse: %v, %v", ok, err)
	}
	refused := send("c1", "alice", "refused", "k1")
	refused.Gateway, refused.Deadline = "gw-a", later
	out := r.apply(send("c1", "alice", "fine", "k2"), refused)
	if out[1].Result.ErrCode != chat.CodeUnavailable {
		t.Fatalf("the refused send: %+v, want unavailable", out[1].Result)
	}
	k, ok := r.seq.knownState(0, "c0")
	if !ok || k.conv.LastSeq != 2 || k.dedups["bob\x00b1"] == "" {
		t.Fatalf("c0 after a refused Commit of c1: cached %v, %+v; want its state and dedup records kept", ok, k)
	}
}

// TestAnExpiredCommandBeforeAStoredOneIsRefused: re-handling a batch in
// which a later command of the same gateway was stored (its claim
// finished by the next Own after an outage), an earlier command of that
// gateway that made no change is now expired: the fence finds the later
// one stored, and the batch goes on, refusing the expired command,
// instead of failing for ever.
func TestAnExpiredCommandBeforeAStoredOneIsRefused(t *testing.T) {
	r := newRig(t)
	r.apply(create("c1", "alice"))
	stored := send("c1", "alice", "stored", "k2")
	stored.Gateway, stored.Deadline = "gw-a", time.Now().Add(time.Hour)
	r.apply(stored)
	early := send("c2", "alice", "expired", "k1") // c2 does not exist: no change either way
	early.Gateway, early.Deadline = "gw-a", time.Now().Add(-time.Minute)
	out := r.apply(early)
	if out[0].Result.ErrCode != chat.CodeUnavailable {
		t.Fatalf("the expired command: %+v, want unavailable", out[0].Result)
	}
}

// refuseCounter counts Refuse calls.
type refuseCounter struct {
	chat.Store
	n int
}

func (s *refuseCounter) Refuse(ctx context.Context, p int, gw string, d time.Time) (bool, error) {
	s.n++
	return s.Store.Refuse(ctx, p, gw, d)
}

// TestCatchingUpFencesOncePerGateway: an owner working through a backlog
// of expired commands fences a gateway once, up to what is expired by its
// clock, not once per batch.
func TestCatchingUpFencesOncePerGateway(t *testing.T) {
	r := newRig(t)
	r.apply(create("c1", "alice"))
	st := &refuseCounter{Store: r.store}
	r.seq = New(r.log, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 3 {
		c := send("c1", "alice", "late", fmt.Sprint("late-", i))
		c.Gateway, c.Deadline = "gw-x", time.Now().Add(-time.Minute+time.Duration(i)*time.Second)
		if out := r.apply(c); out[0].Result.ErrCode != chat.CodeUnavailable {
			t.Fatalf("batch %d: %+v, want unavailable", i, out[0].Result)
		}
	}
	if st.n != 1 {
		t.Fatalf("%d fences for three batches of one gateway, want 1", st.n)
	}
}

// gatedLog holds every events append until the test lets it through (nil)
// or fails it (an error), once gated is set.
type gatedLog struct {
	chat.Log
	gated   sync.Mutex
	on      bool
	gate    chan error
	waiting chan struct{} // one value per append that reached the gate
}

func (g *gatedLog) Append(ctx context.Context, topic string, recs ...*chat.Record) error {
	g.gated.Lock()
	on := g.on
	g.gated.Unlock()
	if on && topic == chat.TopicEvents {
		g.waiting <- struct{}{}
		if err := <-g.gate; err != nil {
			return err
		}
	}
	return g.Log.Append(ctx, topic, recs...)
}

// heldHandle hands recs to the sequencer in a ctx whose batch may be held
// (chat.HoldCommit), as the Kafka log does, and returns the hold.
func heldHandle(t *testing.T, s *Sequencer, recs []chat.Record) *chat.CommitHold {
	t.Helper()
	h := chat.NewCommitHold()
	if err := s.handle(chat.WithCommitHold(context.Background(), h.Hold), 0, recs); err != nil {
		t.Fatalf("handle: %v", err)
	}
	if !h.Held() {
		t.Fatal("the sequencer did not hold a batch with events to append")
	}
	return h
}

func released(t *testing.T, h *chat.CommitHold) error {
	t.Helper()
	select {
	case err := <-h.Done():
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the held batch was not released")
		return nil
	}
}

func TestEventsAppendRunsBesideTheNextBatchAndInOrder(t *testing.T) {
	r := newRig(t)
	g := &gatedLog{Log: r.log, gate: make(chan error), waiting: make(chan struct{}, 8)}
	r.seq = New(g, r.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.apply(create("c1", "alice"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seqs []int64
	ready := make(chan struct{})
	go func() {
		_ = r.log.Subscribe(ctx, chat.TopicEvents, func() { close(ready) }, func(_ int, rs []chat.Record) {
			for _, rec := range rs {
				s, _ := record.DecodeSequenced(rec.Value)
				mu.Lock()
				for _, ev := range s.Events {
					seqs = append(seqs, ev.Seq)
				}
				mu.Unlock()
			}
		})
	}()
	<-ready
	g.gated.Lock()
	g.on = true
	g.gated.Unlock()

	// Both batches are stored and handed back while the first one's
	// events are still on their way: the second waits for them.
	h1 := heldHandle(t, r.seq, r.records(send("c1", "alice", "one", "")))
	h2 := heldHandle(t, r.seq, r.records(send("c1", "alice", "two", "")))
	<-g.waiting // the first batch's append
	select {
	case <-g.waiting:
		t.Fatal("the second batch's append started before the first one's ended")
	case <-time.After(50 * time.Millisecond):
	}
	select {
	case err := <-h1.Done():
		t.Fatalf("the first batch was released (%v) before its events were appended", err)
	default:
	}
	g.gate <- nil
	<-g.waiting
	g.gate <- nil
	if err := released(t, h1); err != nil {
		t.Fatal(err)
	}
	if err := released(t, h2); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		mu.Lock()
		got := append([]int64(nil), seqs...)
		mu.Unlock()
		if len(got) >= 2 && (got[0] != 2 || got[1] != 3) {
			t.Fatalf("events log seqs %v; want [2 3]", got)
		}
		if len(got) != 2 {
			return fmt.Errorf("events log seqs %v; want [2 3]", got)
		}
		return nil
	})

	// A failed append fails its batch and the one after it: the Log then
	// commits neither, and hands both out again.
	h3 := heldHandle(t, r.seq, r.records(send("c1", "alice", "three", "")))
	h4 := heldHandle(t, r.seq, r.records(send("c1", "alice", "four", "")))
	<-g.waiting
	failure := chat.Errorf(chat.CodeUnavailable, "events log down")
	g.gate <- failure
	if err := released(t, h3); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Fatalf("the batch whose append failed was released with %v; want unavailable", err)
	}
	if err := released(t, h4); err == nil {
		t.Fatal("the batch after a failed append was released with nil; its events would be committed behind a gap")
	}
}

func TestReplayedDuplicateSendStillAnswersItsMessage(t *testing.T) {
	r := newRig(t)
	// The retry of k1 stores nothing (its dedup record answers it); the
	// send after it stores an event, so handling the batch again (its
	// events append failed, or its owner died before the commit of its
	// offsets) finds every command at or below the stored position.
	recs := r.records(create("c1", "alice"), send("c1", "alice", "x", "k1"), send("c1", "alice", "x", "k1"), send("c1", "alice", "y", ""))
	first := r.handle(recs)
	again := r.handle(recs)
	for _, out := range [][]chat.Sequenced{first, again} {
		m := out[2].Result.Message
		if m == nil || m.ID != first[1].Result.Message.ID || out[2].Result.ErrCode != "" {
			t.Fatalf("the duplicate send answered %+v; want the original message %s", out[2].Result, first[1].Result.Message.ID)
		}
	}
}

// TestABatchWithNothingToAppendIsNotHeld: a batch whose every record is
// skipped (undecodable, say a newer version during a rolling upgrade) has
// no events to append, so it must not take the commit hold: nothing would
// release it, and the Log would never commit the partition again nor give
// it up.
func TestABatchWithNothingToAppendIsNotHeld(t *testing.T) {
	r := newRig(t)
	h := chat.NewCommitHold()
	recs := []chat.Record{{Key: "c1", Value: []byte("{not a command"), Partition: 0}}
	if err := r.seq.handle(chat.WithCommitHold(context.Background(), h.Hold), 0, recs); err != nil {
		t.Fatalf("handle: %v", err)
	}
	if h.Held() {
		t.Fatal("a batch with nothing to append was held; nothing releases it")
	}
}

// dedupCountingStore counts the dedup reads of the Store.
type dedupCountingStore struct {
	chat.Store
	mu     sync.Mutex
	reads  int
	whole  int // reads of a sender's every record (SenderDedups)
	mships int // membership reads
}

func (s *dedupCountingStore) Dedup(ctx context.Context, cid, sender, clientID string) (string, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.Store.Dedup(ctx, cid, sender, clientID)
}

func (s *dedupCountingStore) Dedups(ctx context.Context, cid, sender string, ids []string) (map[string]string, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.Store.Dedups(ctx, cid, sender, ids)
}

func (s *dedupCountingStore) SenderDedups(ctx context.Context, cid, sender string, limit int) (map[string]string, bool, error) {
	s.mu.Lock()
	s.reads++
	s.whole++
	s.mu.Unlock()
	return s.Store.SenderDedups(ctx, cid, sender, limit)
}

func (s *dedupCountingStore) Membership(ctx context.Context, cid, uid string) (chat.Membership, error) {
	s.mu.Lock()
	s.mships++
	s.mu.Unlock()
	return s.Store.Membership(ctx, cid, uid)
}

func (s *dedupCountingStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// TestDedupsOfConversationsCreatedInTheEpochAreNotRead: a conversation
// the sequencer found missing after taking the partition has no dedup
// record but those of the sends it applied itself, so its sends read
// none from the Store, and a retried client_id is still answered with
// the original message. Another owner, which did not see the
// conversation born, reads them again and still deduplicates.
func TestDedupsOfConversationsCreatedInTheEpochAreNotRead(t *testing.T) {
	r := newRig(t)
	counting := &dedupCountingStore{Store: r.store}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.seq = New(r.log, counting, discard)
	r.apply(create("cnv_d", "alice", "bob"))
	first := r.apply(send("cnv_d", "alice", "one", "k1"), send("cnv_d", "bob", "two", "k2"))
	again := r.apply(send("cnv_d", "alice", "one again", "k1"), send("cnv_d", "alice", "three", "k3"))
	if n := counting.count(); n != 0 {
		t.Fatalf("%d dedup reads for a conversation born in the epoch, want 0", n)
	}
	if again[0].Result.Message == nil || again[0].Result.Message.ID != first[0].Result.Message.ID || len(again[0].Events) != 0 {
		t.Fatalf("a retried client_id: %+v, want the original message %s and no event", again[0].Result, first[0].Result.Message.ID)
	}
	if again[1].Result.Message == nil || again[1].Result.Message.Seq != first[1].Result.Message.Seq+1 {
		t.Fatalf("a new client_id after a retry: %+v", again[1].Result)
	}

	other := &dedupCountingStore{Store: r.store}
	r.seq = New(r.log, other, discard)
	out := r.apply(send("cnv_d", "bob", "two again", "k2"), send("cnv_d", "bob", "four", "k4"))
	if other.count() == 0 {
		t.Fatal("a new owner read no dedup record of a conversation it did not see born")
	}
	if out[0].Result.Message == nil || out[0].Result.Message.ID != first[1].Result.Message.ID || len(out[0].Events) != 0 {
		t.Fatalf("a retried client_id at a new owner: %+v, want the original message", out[0].Result)
	}
	if out[1].Result.Message == nil || len(out[1].Events) != 1 {
		t.Fatalf("a new send at a new owner: %+v", out[1].Result)
	}
}

// TestCreateReadsNoMembershipRow: a conversation being created has no
// membership row yet, so creating it reads none from the Store, and its
// members' rows are written and answered as new.
func TestCreateReadsNoMembershipRow(t *testing.T) {
	r := newRig(t)
	counting := &dedupCountingStore{Store: r.store}
	r.seq = New(r.log, counting, slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := r.apply(create("cnv_m", "alice", "bob", "carol"), send("cnv_m", "bob", "hi", "k1"))
	if out[0].Result.ErrCode != "" || out[1].Result.Message == nil {
		t.Fatalf("create and send: %+v, %+v", out[0].Result, out[1].Result)
	}
	counting.mu.Lock()
	n := counting.mships
	counting.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d membership reads for a conversation being created, want 0", n)
	}
	for _, uid := range []string{"alice", "bob", "carol"} {
		m, err := r.store.Membership(t.Context(), "cnv_m", uid)
		if err != nil || !m.Active {
			t.Fatalf("%s's stored membership: %+v, %v", uid, m, err)
		}
	}
	if m, _ := r.store.Membership(t.Context(), "cnv_m", "bob"); m.ReadSeq != 4 {
		t.Fatalf("bob's read position %d after his send, want 4", m.ReadSeq)
	}
}

// TestDedupCacheStaysWithinItsBudget: past its budget of cached dedup
// records, the sequencer forgets a partition's (and reads them from the
// Store again), and a retried client_id is still answered with its
// original message either way.
func TestDedupCacheStaysWithinItsBudget(t *testing.T) {
	r := newRig(t)
	counting := &dedupCountingStore{Store: r.store}
	r.seq = New(r.log, counting, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.seq.dedupBudget = 3
	r.apply(create("cnv_b", "alice"), create("cnv_b2", "alice"))
	other := r.apply(send("cnv_b2", "alice", "0", "k0"))
	first := r.apply(send("cnv_b", "alice", "1", "k1"))
	if counting.count() != 0 || r.seq.dedupTotal != 2 {
		t.Fatalf("within the budget: %d reads, %d cached; want 0 and 2", counting.count(), r.seq.dedupTotal)
	}
	r.apply(send("cnv_b", "alice", "3", "k3"), send("cnv_b", "alice", "4", "k4"))
	if r.seq.dedupTotal > 3 {
		t.Fatalf("%d dedup records cached, over the budget of 3", r.seq.dedupTotal)
	}
	if k, _ := r.seq.knownState(0, "cnv_b"); k.dedups != nil {
		t.Fatalf("the conversation's dedup records are still known complete past the budget: %v", k.dedups)
	}
	again := r.apply(send("cnv_b", "alice", "1 again", "k1"))
	if counting.count() == 0 {
		t.Fatal("no dedup read once the cache gave the conversation up")
	}
	if again[0].Result.Message == nil || again[0].Result.Message.ID != first[0].Result.Message.ID || len(again[0].Events) != 0 {
		t.Fatalf("a retried client_id past the budget: %+v, want the original message", again[0].Result)
	}
	// The partition's other conversation gave its records up too: its
	// retry is looked up, not taken for new.
	again = r.apply(send("cnv_b2", "alice", "0 again", "k0"))
	if again[0].Result.Message == nil || again[0].Result.Message.ID != other[0].Result.Message.ID || len(again[0].Events) != 0 {
		t.Fatalf("a retried client_id of another conversation past the budget: %+v, want the original message", again[0].Result)
	}
}

// TestAFullDedupCacheReadsNoSenderWhole: while the cached dedup records
// are at their budget (here held by another conversation), a sender of an
// older conversation is not read whole (its records could not be kept,
// and would be read again at every batch): its sends are looked up by
// client_id, and a retry still gets its original message.
func TestAFullDedupCacheReadsNoSenderWhole(t *testing.T) {
	r := newRig(t)
	r.apply(create("cnv_old", "alice"))
	first := r.apply(send("cnv_old", "alice", "one", "a1"))
	counting := &dedupCountingStore{Store: r.store}
	r.seq = New(r.log, counting, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.seq.dedupBudget = 3
	r.apply(create("cnv_fill", "zoe"), send("cnv_fill", "zoe", "1", "z1"), send("cnv_fill", "zoe", "2", "z2"), send("cnv_fill", "zoe", "3", "z3"))
	if r.seq.dedupTotal != 3 {
		t.Fatalf("%d dedup records cached, want the budget of 3 held by cnv_fill", r.seq.dedupTotal)
	}
	for i := range 3 {
		out := r.apply(send("cnv_old", "alice", "one again", "a1"), send("cnv_old", "alice", "new", fmt.Sprintf("n%d", i)))
		if out[0].Result.Message == nil || out[0].Result.Message.ID != first[0].Result.Message.ID || len(out[0].Events) != 0 {
			t.Fatalf("batch %d: a retry while the cache is full: %+v, want the original message", i, out[0].Result)
		}
		if out[1].Result.Message == nil || len(out[1].Events) == 0 {
			t.Fatalf("batch %d: a new send while the cache is full was not applied: %+v", i, out[1].Result)
		}
	}
	if counting.whole != 0 {
		t.Fatalf("%d whole reads of a sender's records while the cache was full, want 0", counting.whole)
	}
	if counting.count() == 0 {
		t.Fatal("no dedup lookup for the sends while the cache was full")
	}
}

// TestDedupsOfAnOlderConversationAreReadOncePerEpoch: a sequencer that
// did not see a conversation born reads a sender's dedup records once,
// whole, and answers that sender's later sends of the epoch without a
// read, a retried client_id still with its original message. A sender
// with more records than it reads at once is looked up send by send.
func TestDedupsOfAnOlderConversationAreReadOncePerEpoch(t *testing.T) {
	r := newRig(t)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.apply(create("cnv_o", "alice", "bob"))
	first := r.apply(send("cnv_o", "alice", "one", "a1"), send("cnv_o", "bob", "two", "b1"), send("cnv_o", "bob", "three", "b2"))

	counting := &dedupCountingStore{Store: r.store}
	r.seq = New(r.log, counting, discard)
	r.seq.senderDedups = 1 // alice has 1 record: read whole; bob has 2: too many
	out := r.apply(send("cnv_o", "alice", "one again", "a1"), send("cnv_o", "bob", "two again", "b1"))
	if out[0].Result.Message == nil || out[0].Result.Message.ID != first[0].Result.Message.ID || len(out[0].Events) != 0 {
		t.Fatalf("alice's retry at a new owner: %+v, want the original message", out[0].Result)
	}
	if out[1].Result.Message == nil || out[1].Result.Message.ID != first[1].Result.Message.ID || len(out[1].Events) != 0 {
		t.Fatalf("bob's retry at a new owner: %+v, want the original message", out[1].Result)
	}
	if counting.whole != 2 {
		t.Fatalf("%d whole reads of a sender's records in the first batch, want 2 (alice and bob)", counting.whole)
	}
	reads := counting.count()
	out = r.apply(send("cnv_o", "alice", "new", "a2"), send("cnv_o", "alice", "one yet again", "a1"))
	if counting.count() != reads {
		t.Fatalf("%d more dedup reads for a sender read whole in the epoch, want 0", counting.count()-reads)
	}
	if len(out[0].Events) != 1 || out[1].Result.Message == nil || out[1].Result.Message.ID != first[0].Result.Message.ID || len(out[1].Events) != 0 {
		t.Fatalf("alice's new send and retry: %+v, %+v", out[0], out[1].Result)
	}
	out = r.apply(send("cnv_o", "bob", "three again", "b2"))
	if counting.count() != reads+1 || counting.whole != 2 {
		t.Fatalf("bob's send: %d reads, %d whole; want 1 send-by-send read and no whole one", counting.count()-reads, counting.whole-2)
	}
	if out[0].Result.Message == nil || out[0].Result.Message.ID != first[2].Result.Message.ID || len(out[0].Events) != 0 {
		t.Fatalf("bob's second retry: %+v, want the original message", out[0].Result)
	}
}

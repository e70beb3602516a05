package cassandra

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// sharedStore opens a store in a keyspace of its own for one test.
func sharedStore(t *testing.T) *Store {
	t.Helper()
	ks := testKeyspace(t)
	s := openTest(t, ks)
	t.Cleanup(func() {
		dropKeyspace(t, s, ks)
		s.Close()
	})
	return s
}

var testEpoch = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// createChange creates conversation cid with members, one member.added
// event each, at command offset off (and the next ones, 256 events each).
func createChange(cid string, off int64, members ...string) chat.Change {
	conv := chat.Conversation{ID: cid, Kind: chat.KindGroup, CreatedBy: members[0], CreatedAt: testEpoch, Members: members}
	ch := chat.Change{}
	for i, m := range members {
		conv.LastSeq++
		conv.LastPosition = chat.Position(off+int64(i/256), i%256)
		conv.LastActivity = testEpoch
		ch.Events = append(ch.Events, chat.Event{Type: chat.EventMemberAdded, ConversationID: cid, Seq: conv.LastSeq,
			EventID: chat.NewID("evt"), At: testEpoch, Actor: members[0], UserID: m, Position: conv.LastPosition})
		ch.Memberships = append(ch.Memberships, chat.Membership{ConversationID: cid, UserID: m, Active: true, JoinedPosition: conv.LastPosition})
	}
	snap := conv
	for i := range ch.Events {
		if len(members) <= 200 { // snapshots of huge groups would make a huge test
			ch.Events[i].Conversation = &snap
		}
	}
	ch.Conversation = conv
	return ch
}

// sendChange sends text in conversation conv (the state after prev) at
// command offset off.
func sendChange(prev chat.Conversation, off int64, sender, text string) (chat.Change, chat.Message) {
	conv := prev
	conv.LastSeq++
	conv.LastPosition = chat.Position(off, 0)
	conv.LastActivity = testEpoch.Add(time.Duration(off) * time.Millisecond)
	m := chat.Message{ID: chat.NewID("msg"), ConversationID: conv.ID, Seq: conv.LastSeq, SenderID: sender, Text: text, CreatedAt: conv.LastActivity, Version: 1}
	m.Normalize()
	mc := m
	ev := chat.Event{Type: chat.EventMessageCreated, ConversationID: conv.ID, Seq: conv.LastSeq, EventID: chat.NewID("evt"),
		At: conv.LastActivity, Actor: sender, Message: &mc, Position: conv.LastPosition}
	return chat.Change{Conversation: conv, PrevSeq: prev.LastSeq, Events: []chat.Event{ev}, Messages: []chat.Message{m}}, m
}

// own takes partition p for s.
func own(t *testing.T, s *Store, p int) int64 {
	t.Helper()
	e, err := s.Own(t.Context(), p)
	if err != nil {
		t.Fatalf("Own(%d): %v", p, err)
	}
	return e
}

// claimOnly does what a writer that crashes right after its claim did:
// the batch is decided, recorded and claimed, but written nowhere else.
func claimOnly(t *testing.T, s *Store, p int, epoch int64, changes ...chat.Change) {
	t.Helper()
	po := s.partition(p)
	po.mu.Lock()
	defer po.mu.Unlock()
	if po.epoch != epoch {
		t.Fatalf("the store holds epoch %d, not %d", po.epoch, epoch)
	}
	accepted, err := s.decide(t.Context(), po, changes)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.claim(t.Context(), p, po, accepted); err != nil {
		t.Fatal(err)
	}
}

// TestBatchClaimedByACrashedWriterIsFinishedByTheNextOwner: a sequencer
// that dies after its claim leaves a half-written batch; the partition's
// next owner (another process) finds it in Own and writes it, so its
// reads see the commands applied and it does not apply them again.
func TestBatchClaimedByACrashedWriterIsFinishedByTheNextOwner(t *testing.T) {
	a := sharedStore(t)
	ctx := t.Context()
	ea := own(t, a, 0)
	create := createChange("cnv_crash", 0, "alice", "bob")
	other := createChange("cnv_crash_2", 1, "carol")
	if err := a.Commit(ctx, 0, ea, other.Conversation.LastPosition, []chat.Change{create, other}); err != nil {
		t.Fatal(err)
	}
	send, msg := sendChange(create.Conversation, 2, "alice", "claimed, then the writer died")
	send2, msg2 := sendChange(other.Conversation, 3, "carol", "in the same batch")
	claimOnly(t, a, 0, ea, send, send2)
	if c, err := a.Conversation(ctx, "cnv_crash"); err != nil || c.LastSeq != create.Conversation.LastSeq {
		t.Fatalf("before the next Own: last seq %d, %v; the claimed batch should not be written yet", c.LastSeq, err)
	}

	b := openTest(t, a.ks)
	defer b.Close()
	eb := own(t, b, 0)
	if eb <= ea {
		t.Fatalf("the next owner's epoch %d is not above %d", eb, ea)
	}
	for _, want := range []struct {
		cid string
		seq int64
		msg chat.Message
	}{{"cnv_crash", send.Conversation.LastSeq, msg}, {"cnv_crash_2", send2.Conversation.LastSeq, msg2}} {
		c, err := b.Conversation(ctx, want.cid)
		if err != nil || c.LastSeq != want.seq {
			t.Errorf("%s after Own: last seq %d, %v; want %d", want.cid, c.LastSeq, err, want.seq)
		}
		if m, err := b.Message(ctx, want.cid, want.msg.ID); err != nil || m.Text != want.msg.Text {
			t.Errorf("%s: the claimed message after Own: %+v, %v", want.cid, m, err)
		}
	}
	// The crashed writer, back, is fenced; the new owner goes on.
	late, _ := sendChange(send.Conversation, 4, "bob", "from the old owner")
	if err := a.Commit(ctx, 0, ea, late.Conversation.LastPosition, []chat.Change{late}); !chat.IsConflict(err) {
		t.Errorf("the old owner's commit: %v, want a conflict", err)
	}
	if err := b.Commit(ctx, 0, eb, late.Conversation.LastPosition, []chat.Change{late}); err != nil {
		t.Fatalf("the new owner's commit: %v", err)
	}
	evs, err := b.Events(ctx, "cnv_crash", 0, 100)
	if err != nil || len(evs) != int(late.Conversation.LastSeq) {
		t.Fatalf("events: %d, %v", len(evs), err)
	}
	// Owning again, with the batch finished and a newer one written over
	// the same rows, changes nothing.
	own(t, a, 0)
	if c, err := a.Conversation(ctx, "cnv_crash"); err != nil || c.LastSeq != late.Conversation.LastSeq {
		t.Errorf("after another Own: last seq %d, %v", c.LastSeq, err)
	}
}

// TestStaleOwnerInAnotherProcessWritesNothing: two stores on one
// keyspace, as two sequencers around a rebalance; the one whose epoch is
// older cannot write even a change that is right on the stored state.
func TestStaleOwnerInAnotherProcessWritesNothing(t *testing.T) {
	a := sharedStore(t)
	ctx := t.Context()
	ea := own(t, a, 3)
	create := createChange("cnv_two", 0, "alice", "bob")
	if err := a.Commit(ctx, 3, ea, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, a.ks)
	defer b.Close()
	eb := own(t, b, 3)
	send, msg := sendChange(create.Conversation, 1, "alice", "zombie")
	if err := a.Commit(ctx, 3, ea, send.Conversation.LastPosition, []chat.Change{send}); !chat.IsConflict(err) {
		t.Fatalf("stale owner: %v, want a conflict", err)
	}
	if _, err := b.Message(ctx, "cnv_two", msg.ID); !chat.IsNotFound(err) {
		t.Errorf("the stale owner's message is stored (%v)", err)
	}
	// The stale store lost the partition: even the same epoch again is
	// refused without asking Cassandra.
	if err := a.Commit(ctx, 3, ea, send.Conversation.LastPosition, []chat.Change{send}); !chat.IsConflict(err) {
		t.Errorf("stale owner, again: %v, want a conflict", err)
	}
	if err := b.Commit(ctx, 3, eb, send.Conversation.LastPosition, []chat.Change{send}); err != nil {
		t.Fatal(err)
	}
	if c, err := a.Conversation(ctx, "cnv_two"); err != nil || c.LastSeq != send.Conversation.LastSeq {
		t.Errorf("conversation after the new owner's commit: %d, %v", c.LastSeq, err)
	}
}

// TestSendThenEditInOneBatchKeepsTheEdit: the rows of one batch carry
// growing timestamps, so a message written twice in a batch keeps its
// later version whatever its text compares as.
func TestSendThenEditInOneBatchKeepsTheEdit(t *testing.T) {
	s := sharedStore(t)
	ctx := t.Context()
	e := own(t, s, 0)
	create := createChange("cnv_edit", 0, "alice")
	send, msg := sendChange(create.Conversation, 1, "alice", "zzz, sorts last")
	edited := msg
	edited.Text, edited.Version = "aaa, sorts first", 2
	conv := send.Conversation
	conv.LastSeq++
	conv.LastPosition = chat.Position(2, 0)
	ed := edited
	edit := chat.Change{Conversation: conv, PrevSeq: send.Conversation.LastSeq, Messages: []chat.Message{edited},
		Events: []chat.Event{{Type: chat.EventMessageUpdated, ConversationID: "cnv_edit", Seq: conv.LastSeq, EventID: chat.NewID("evt"),
			At: testEpoch, Actor: "alice", Message: &ed, Position: conv.LastPosition}}}
	if err := s.Commit(ctx, 0, e, conv.LastPosition, []chat.Change{create, send, edit}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Message(ctx, "cnv_edit", msg.ID); err != nil || m.Text != edited.Text {
		t.Errorf("message after send and edit in one batch: %q, %v", m.Text, err)
	}
}

func TestChangeLargerThanABatchIsWrittenWhole(t *testing.T) {
	s := sharedStore(t)
	ctx := t.Context()
	members := make([]string, 120)
	for i := range members {
		members[i] = fmt.Sprintf("user_%03d_%s", i, strings.Repeat("x", 20))
	}
	create := createChange("cnv_big", 0, members...)
	if err := s.Commit(ctx, 0, own(t, s, 0), create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	evs, err := s.Events(ctx, "cnv_big", 0, 1000)
	if err != nil || len(evs) != len(members) {
		t.Fatalf("Events: %d, %v; want %d", len(evs), err, len(members))
	}
	if got := len(evs[len(evs)-1].Conversation.Members); got != len(members) {
		t.Errorf("snapshot in the last event has %d members", got)
	}
	c, err := s.Conversation(ctx, "cnv_big")
	if err != nil || c.LastSeq != int64(len(members)) {
		t.Errorf("Conversation: %+v, %v", c.LastSeq, err)
	}
	ms, err := s.Memberships(ctx, members[77])
	if err != nil || len(ms) != 1 {
		t.Errorf("Memberships: %v, %v", ms, err)
	}
}

func TestEventsAndMessagesCrossBuckets(t *testing.T) {
	s := sharedStore(t)
	ctx := t.Context()
	// A conversation whose log already reaches past one bucket: members
	// fill most of bucket 0 cheaply, then messages cross into bucket 1.
	members := make([]string, bucketSize-3)
	for i := range members {
		members[i] = fmt.Sprintf("u%d", i)
	}
	create := createChange("cnv_buckets", 0, members...)
	if err := s.Commit(ctx, 0, own(t, s, 0), create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	conv := create.Conversation
	var msgs []chat.Message
	for i := range 6 { // seqs 4094 … 4099
		ch, m := sendChange(conv, int64(100+i), "u0", fmt.Sprintf("m%d", i))
		if err := s.Commit(ctx, 0, own(t, s, 0), ch.Conversation.LastPosition, []chat.Change{ch}); err != nil {
			t.Fatal(err)
		}
		conv, msgs = ch.Conversation, append(msgs, m)
	}
	evs, err := s.Events(ctx, "cnv_buckets", bucketSize-5, 100)
	if err != nil || len(evs) != 8 || evs[0].Seq != bucketSize-4 || evs[7].Seq != bucketSize+3 {
		t.Fatalf("Events across buckets: %d events, %v", len(evs), err)
	}
	evs, err = s.EventsAfter(ctx, "cnv_buckets", create.Conversation.LastPosition, conv.LastPosition, 100)
	if err != nil || len(evs) != 6 || evs[0].Seq != bucketSize-2 {
		t.Fatalf("EventsAfter across buckets: %d events, %v", len(evs), err)
	}
	got, more, err := s.Messages(ctx, "cnv_buckets", chat.MessagePage{Limit: 4})
	if err != nil || len(got) != 4 || !more || got[0].ID != msgs[2].ID || got[3].ID != msgs[5].ID {
		t.Errorf("newest messages across buckets: %d, %v, %v", len(got), more, err)
	}
	got, more, err = s.Messages(ctx, "cnv_buckets", chat.MessagePage{After: msgs[0].Seq, Limit: 10})
	if err != nil || len(got) != 5 || more || got[0].ID != msgs[1].ID {
		t.Errorf("messages after, across buckets: %d, %v, %v", len(got), more, err)
	}
}

// BenchmarkCommitSend measures one send committed on its own, the
// sequencer's slowest case (no batching of changes per Commit).
func BenchmarkCommitSend(b *testing.B) {
	ks := testKeyspace(b)
	s := openTest(b, ks)
	b.Cleanup(func() {
		dropKeyspace(b, s, ks)
		s.Close()
	})
	ctx := context.Background()
	epoch, err := s.Own(ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	create := createChange("cnv_bench", 0, "alice", "bob")
	if err := s.Commit(ctx, 0, epoch, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		b.Fatal(err)
	}
	conv := create.Conversation
	b.ResetTimer()
	for i := range b.N {
		ch, _ := sendChange(conv, int64(i+1), "alice", "hello there")
		if err := s.Commit(ctx, 0, epoch, ch.Conversation.LastPosition, []chat.Change{ch}); err != nil {
			b.Fatal(err)
		}
		conv = ch.Conversation
	}
}

// TestRecordedButUnclaimedBatchIsNeverWritten: a writer that dies between
// recording a batch and claiming it leaves the record over its epoch's
// previous, finished batch; the next owner finishes what the partition's
// row names as claimed and must not write the unclaimed record.
func TestRecordedButUnclaimedBatchIsNeverWritten(t *testing.T) {
	a := sharedStore(t)
	ctx := t.Context()
	ea := own(t, a, 2)
	create := createChange("cnv_unclaimed", 0, "alice")
	if err := a.Commit(ctx, 2, ea, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	send, msg := sendChange(create.Conversation, 1, "alice", "recorded, never claimed")
	raw, err := json.Marshal(claimedBatch{Intents: []*intent{{Change: record.Change{Change: send}, TS: time.Now().UnixMicro(), LastPosition: send.Conversation.LastPosition}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.q(ctx, `INSERT INTO {partition_claims} (partition, epoch, ref, body) VALUES (?, ?, ?, ?)`,
		2, ea, newBatchRef(ea, time.Now().UnixMicro()), string(raw)).Exec(); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, a.ks)
	defer b.Close()
	own(t, b, 2)
	if _, err := b.Message(ctx, "cnv_unclaimed", msg.ID); !chat.IsNotFound(err) {
		t.Errorf("the unclaimed batch was written (%v)", err)
	}
	if c, err := b.Conversation(ctx, "cnv_unclaimed"); err != nil || c.LastSeq != create.Conversation.LastSeq {
		t.Errorf("conversation after Own: last seq %d, %v; want %d", c.LastSeq, err, create.Conversation.LastSeq)
	}
}

package cassandra

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
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

// claimOnly does what a writer that crashes right after its claim did:
// the change is recorded and claimed (pending) but written nowhere else.
func claimOnly(t *testing.T, s *Store, ch chat.Change) {
	t.Helper()
	claimWith(t, s, ch, true)
}

// claimWith claims ch, recorded in claimed_changes or, as earlier
// versions did, inline in the pending column.
func claimWith(t *testing.T, s *Store, ch chat.Change, recorded bool) {
	t.Helper()
	ts := time.Now().UnixMicro() // a claim's last_ts is its intent's TS
	raw, err := json.Marshal(intent{Change: ch, TS: ts,
		LastPosition: ch.Conversation.LastPosition, LastActivity: ch.Conversation.LastActivity})
	if err != nil {
		t.Fatal(err)
	}
	pending := string(raw)
	if recorded {
		ref := newIntentRef(ts)
		if err := s.q(t.Context(), `INSERT INTO {claimed_changes} (conversation_id, ref, body) VALUES (?, ?, ?)`, ch.Conversation.ID, ref, pending).Exec(); err != nil {
			t.Fatal(err)
		}
		pending = pendingPrefix + ref
	}
	applied, err := s.q(t.Context(), `UPDATE {conversations} SET last_seq = ?, last_ts = ?, pending = ? WHERE id = ? IF last_seq = ? AND pending = null`,
		ch.Conversation.LastSeq, ts, pending, ch.Conversation.ID, ch.PrevSeq).MapScanCAS(map[string]any{})
	if err != nil || !applied {
		t.Fatalf("claim: applied %v, %v", applied, err)
	}
}

func TestChangeClaimedByACrashedWriterIsFinishedByItsReplay(t *testing.T) {
	s := sharedStore(t)
	ctx := t.Context()
	create := createChange("cnv_crash", 0, "alice", "bob")
	if err := s.Commit(ctx, 0, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	send, m := sendChange(create.Conversation, 1, "alice", "claimed, then the writer died")
	claimOnly(t, s, send)

	// A plain read shows the settled state and writes nothing …
	c, err := s.Conversation(ctx, "cnv_crash")
	if err != nil || c.LastSeq != create.Conversation.LastSeq {
		t.Fatalf("a claimed change is visible to a plain read before it is written: %+v, %v", c, err)
	}
	// … a writer's read finishes the claimed change first: a new
	// partition owner must see the state after it, or it would apply the
	// claimed commands again, with new ids (what the store keeps and what
	// the events log carries would then differ).
	c, err = s.FreshConversation(ctx, "cnv_crash")
	if err != nil || c.LastSeq != send.Conversation.LastSeq || c.LastPosition != send.Conversation.LastPosition {
		t.Fatalf("a claimed change must be finished by a read: %+v, %v", c, err)
	}
	if got, err := s.Message(ctx, "cnv_crash", m.ID); err != nil || got.Text != m.Text {
		t.Fatalf("message after the read finished the claim: %+v, %v", got, err)
	}
	// A sequencer that applies the same command again anyway: a replay.
	if err := s.Commit(ctx, 0, send.Conversation.LastPosition, []chat.Change{send}); err != nil {
		t.Fatalf("replay of the claimed change: %v", err)
	}
	c, err = s.Conversation(ctx, "cnv_crash")
	if err != nil || c.LastSeq != send.Conversation.LastSeq || c.LastPosition != send.Conversation.LastPosition {
		t.Errorf("conversation after the replay: %+v, %v", c, err)
	}
	if got, err := s.Message(ctx, "cnv_crash", m.ID); err != nil || got.Text != m.Text {
		t.Errorf("message after the replay: %+v, %v", got, err)
	}
	evs, err := s.Events(ctx, "cnv_crash", 0, 100)
	if err != nil || len(evs) != 3 || evs[2].EventID != send.Events[0].EventID {
		t.Errorf("events after the replay: %d, %v", len(evs), err)
	}
}

func TestChangeClaimedByACrashedWriterWinsOverAStaleOne(t *testing.T) {
	s := sharedStore(t)
	ctx := t.Context()
	create := createChange("cnv_crash2", 0, "alice")
	if err := s.Commit(ctx, 0, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	claimed, m := sendChange(create.Conversation, 1, "alice", "claimed first")
	claimOnly(t, s, claimed)
	other, _ := sendChange(create.Conversation, 2, "alice", "built on the same state")
	if err := s.Commit(ctx, 0, other.Conversation.LastPosition, []chat.Change{other}); !chat.IsConflict(err) {
		t.Fatalf("a change at the claimed seq: %v, want a conflict", err)
	}
	if got, err := s.Message(ctx, "cnv_crash2", m.ID); err != nil || got.Text != m.Text {
		t.Errorf("the claimed change was not finished: %+v, %v", got, err)
	}
	next, _ := sendChange(claimed.Conversation, 3, "alice", "after")
	if err := s.Commit(ctx, 0, next.Conversation.LastPosition, []chat.Change{next}); err != nil {
		t.Errorf("the next change: %v", err)
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
	if err := s.Commit(ctx, 0, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
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
	if err := s.Commit(ctx, 0, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	conv := create.Conversation
	var msgs []chat.Message
	for i := range 6 { // seqs 4094 … 4099
		ch, m := sendChange(conv, int64(100+i), "u0", fmt.Sprintf("m%d", i))
		if err := s.Commit(ctx, 0, ch.Conversation.LastPosition, []chat.Change{ch}); err != nil {
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
	create := createChange("cnv_bench", 0, "alice", "bob")
	if err := s.Commit(ctx, 0, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		b.Fatal(err)
	}
	conv := create.Conversation
	b.ResetTimer()
	for i := range b.N {
		ch, _ := sendChange(conv, int64(i+1), "alice", "hello there")
		if err := s.Commit(ctx, 0, ch.Conversation.LastPosition, []chat.Change{ch}); err != nil {
			b.Fatal(err)
		}
		conv = ch.Conversation
	}
}

// TestChangeClaimedInlineByAnOlderVersionIsFinished: rows written before
// changes were recorded apart hold the change in the pending column
// itself; such a claim is still finished.
func TestChangeClaimedInlineByAnOlderVersionIsFinished(t *testing.T) {
	s := sharedStore(t)
	ctx := t.Context()
	create := createChange("cnv_inline", 0, "alice")
	if err := s.Commit(ctx, 0, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	send, m := sendChange(create.Conversation, 1, "alice", "claimed inline")
	claimWith(t, s, send, false)
	c, err := s.FreshConversation(ctx, "cnv_inline")
	if err != nil || c.LastSeq != send.Conversation.LastSeq {
		t.Fatalf("an inline claim must be finished by a fresh read: %+v, %v", c, err)
	}
	if got, err := s.Message(ctx, "cnv_inline", m.ID); err != nil || got.Text != m.Text {
		t.Fatalf("message of the inline claim: %+v, %v", got, err)
	}
}

// TestSettledChangeLeavesNoRecord: a change's record in claimed_changes
// goes once the change is settled, so the log is not kept twice.
func TestSettledChangeLeavesNoRecord(t *testing.T) {
	s := sharedStore(t)
	ctx := t.Context()
	create := createChange("cnv_records", 0, "alice")
	send, _ := sendChange(create.Conversation, 1, "alice", "hello")
	for _, ch := range []chat.Change{create, send} {
		if err := s.Commit(ctx, 0, ch.Conversation.LastPosition, []chat.Change{ch}); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.q(ctx, `SELECT count(*) FROM {claimed_changes}`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("records left after settled changes: %d, %v", n, err)
	}
	// A recorded claim that a crashed writer left is finished, and its
	// record goes too.
	next, _ := sendChange(send.Conversation, 2, "alice", "claimed, then the writer died")
	claimOnly(t, s, next)
	if c, err := s.FreshConversation(ctx, "cnv_records"); err != nil || c.LastSeq != next.Conversation.LastSeq {
		t.Fatalf("fresh read: %+v, %v", c, err)
	}
	if err := s.q(ctx, `SELECT count(*) FROM {claimed_changes}`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("records left after a finished claim: %d, %v", n, err)
	}
}

// TestClaimWithoutItsRecordIsReported: a pending claim whose record is
// gone (it outlived its TTL unfinished) is an error a reader reports, not
// a change silently dropped or a loop; two claims at one timestamp never
// share a record.
func TestClaimWithoutItsRecordIsReported(t *testing.T) {
	if newIntentRef(42) == newIntentRef(42) {
		t.Fatal("two records of one timestamp share a name")
	}
	s := sharedStore(t)
	ctx := t.Context()
	create := createChange("cnv_lost", 0, "alice")
	if err := s.Commit(ctx, 0, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	send, _ := sendChange(create.Conversation, 1, "alice", "its record expires")
	claimOnly(t, s, send)
	if err := s.q(ctx, `TRUNCATE {claimed_changes}`).Exec(); err != nil {
		t.Fatal(err)
	}
	_, err := s.FreshConversation(ctx, "cnv_lost")
	if err == nil || !strings.Contains(err.Error(), "no record") {
		t.Fatalf("fresh read of a claim without its record: %v", err)
	}
}

// TestSerialReadFinishesAClaim: the serial read the sequencer makes before
// refusing an expired command sees and finishes a pending claim too.
func TestSerialReadFinishesAClaim(t *testing.T) {
	s := sharedStore(t)
	ctx := t.Context()
	create := createChange("cnv_serial", 0, "alice")
	if err := s.Commit(ctx, 0, create.Conversation.LastPosition, []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	send, m := sendChange(create.Conversation, 1, "alice", "claimed")
	claimOnly(t, s, send)
	c, err := s.SerialConversation(ctx, "cnv_serial")
	if err != nil || c.LastSeq != send.Conversation.LastSeq {
		t.Fatalf("serial read: %+v, %v", c, err)
	}
	if got, err := s.Message(ctx, "cnv_serial", m.ID); err != nil || got.Text != m.Text {
		t.Fatalf("message of the finished claim: %+v, %v", got, err)
	}
}

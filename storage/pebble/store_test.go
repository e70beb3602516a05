package pebble

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
)

func openAt(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	chattest.TestStore(t, func(t *testing.T) (chat.Store, func() chat.Store) {
		dir := t.TempDir()
		cur := openAt(t, dir)
		t.Cleanup(func() {
			if err := cur.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		reopen := func() chat.Store {
			if err := cur.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			cur = openAt(t, dir)
			return cur
		}
		return cur, reopen
	})
}

func TestKeysSortAsTuples(t *testing.T) {
	// Each key must sort before the next.
	ordered := [][]byte{
		evKey("a", 1),
		evKey("a", 2),
		evKey("a", 256),
		evKey("a", 1<<40),
		evKey("a\x00", 0),
		evKey("a\x00b", 0),
		evKey("a\x01", 0),
		evKey("ab", 0),
		evKey("b", 0),
		evPosKey("a", 0), // table "evpos" sorts after "ev"
	}
	for i := 1; i < len(ordered); i++ {
		if bytes.Compare(ordered[i-1], ordered[i]) >= 0 {
			t.Errorf("key %d (%q) does not sort before key %d (%q)", i-1, ordered[i-1], i, ordered[i])
		}
	}
	// A conversation's prefix holds its own keys only.
	p := evPrefix("a")
	for _, k := range [][]byte{evKey("a\x00", 1), evKey("ab", 1), evPosKey("a", 1)} {
		if bytes.HasPrefix(k, p) {
			t.Errorf("key %q is inside the prefix of conversation a", k)
		}
	}
	if k := evKey("a", 7); !bytes.HasPrefix(k, p) || bytes.Compare(k, prefixEnd(p)) >= 0 {
		t.Errorf("key %q is outside the prefix range of conversation a", k)
	}
	if got := trailingUint(msgEvKey("c", "m", 42)); got != 42 {
		t.Errorf("trailing seq %d, want 42", got)
	}
}

func TestDeletedTextIsGoneFromEveryValue(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, t.TempDir())
	defer s.Close()
	at := time.Now().UTC()
	conv := chat.Conversation{ID: "cnv_x", Kind: chat.KindGroup, CreatedBy: "alice", CreatedAt: at, Members: []string{"alice"}}
	msg := chat.Message{ID: "msg_1", ConversationID: "cnv_x", Seq: 2, SenderID: "alice", Text: "top secret", CreatedAt: at, Version: 1}
	c1 := conv
	c1.LastSeq, c1.LastPosition = 2, 513
	create := chat.Change{Conversation: c1, Events: []chat.Event{
		{Type: chat.EventMemberAdded, ConversationID: "cnv_x", Seq: 1, UserID: "alice", Position: 256},
		{Type: chat.EventMessageCreated, ConversationID: "cnv_x", Seq: 2, Message: &msg, Position: 513},
	}, Messages: []chat.Message{msg}}
	tomb := msg
	tomb.Text, tomb.Deleted, tomb.Version = "", true, 2
	c2 := conv
	c2.LastSeq, c2.LastPosition = 3, 768
	del := chat.Change{Conversation: c2, PrevSeq: 2, Events: []chat.Event{
		{Type: chat.EventMessageDeleted, ConversationID: "cnv_x", Seq: 3, MessageID: "msg_1", Position: 768},
	}, Messages: []chat.Message{tomb}}
	epoch, err := s.Own(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, 0, epoch, 513, []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, 0, epoch, 768, []chat.Change{del}); err != nil {
		t.Fatal(err)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
		if strings.Contains(string(it.Value()), "top secret") {
			t.Errorf("key %q still holds the deleted text: %s", it.Key(), it.Value())
		}
		if bytes.HasPrefix(it.Key(), tuple(tableMsgEv)) {
			t.Errorf("the message's event index outlived the deletion: %q", it.Key())
		}
	}
	if n == 0 {
		t.Fatal("the scan saw nothing")
	}
}

func TestInconsistentChangeIsInvalid(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, t.TempDir())
	defer s.Close()
	good := func() chat.Change {
		return chat.Change{
			Conversation: chat.Conversation{ID: "cnv_x", LastSeq: 1},
			Events:       []chat.Event{{Type: chat.EventMemberAdded, ConversationID: "cnv_x", Seq: 1, Position: 256}},
			Memberships:  []chat.Membership{{ConversationID: "cnv_x", UserID: "alice", Active: true}},
		}
	}
	epoch, err := s.Own(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(*chat.Change){
		"no conversation id":            func(c *chat.Change) { c.Conversation.ID = "" },
		"last_seq does not match":       func(c *chat.Change) { c.Conversation.LastSeq = 5 },
		"event seq gap":                 func(c *chat.Change) { c.Events[0].Seq = 2 },
		"event of another conversation": func(c *chat.Change) { c.Events[0].ConversationID = "cnv_y" },
		"no position":                   func(c *chat.Change) { c.Events[0].Position = 0 },
		"membership elsewhere":          func(c *chat.Change) { c.Memberships[0].ConversationID = "cnv_y" },
	} {
		ch := good()
		spoil(&ch)
		if err := s.Commit(ctx, 0, epoch, 256, []chat.Change{ch}); chat.ErrorCode(err) != chat.CodeInvalid {
			t.Errorf("%s: err %v, want invalid_request", name, err)
		}
	}
	if err := s.Commit(ctx, 0, epoch, 256, []chat.Change{good()}); err != nil {
		t.Fatalf("the unspoilt change: %v", err)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Ping(ctx); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Ping after Close: %v", err)
	}
	if _, err := s.Conversation(ctx, "cnv_x"); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Conversation after Close: %v", err)
	}
	if err := s.Commit(ctx, 0, 1, 0, nil); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Commit after Close: %v", err)
	}
}

func TestOpenNeedsADir(t *testing.T) {
	if _, err := Open(context.Background(), Config{}); err == nil {
		t.Fatal("Open without a dir succeeded")
	}
}

// benchChanges builds n sends, spread over convs conversations that already
// exist, continuing from seqs and offset.
func benchChanges(n int, convs []chat.Conversation, offset *int64, text string) ([]chat.Change, int64) {
	changes := make([]chat.Change, 0, n)
	var head int64
	for i := range n {
		c := &convs[i%len(convs)]
		prev := c.LastSeq
		c.LastSeq++
		pos := chat.Position(*offset, 0)
		*offset++
		c.LastPosition, c.LastActivity = pos, time.Now().UTC()
		m := chat.Message{
			ID: chat.NewID("msg"), ConversationID: c.ID, Seq: c.LastSeq, SenderID: "alice",
			ClientID: fmt.Sprintf("c-%d", *offset), Text: text, CreatedAt: c.LastActivity, Version: 1,
		}
		m.Normalize()
		mc := m
		changes = append(changes, chat.Change{
			Conversation: *c,
			PrevSeq:      prev,
			Events: []chat.Event{{
				Type: chat.EventMessageCreated, ConversationID: c.ID, Seq: c.LastSeq, EventID: chat.NewID("evt"),
				At: c.LastActivity, Actor: "alice", Message: &mc, Position: pos,
			}},
			Messages: []chat.Message{m},
			Dedups:   []chat.Dedup{{ConversationID: c.ID, SenderID: "alice", ClientID: m.ClientID, MessageID: m.ID}},
		})
		head = pos
	}
	return changes, head
}

// BenchmarkCommit measures synced Commits of sends: one change per Commit
// (a quiet partition) and 100 changes per Commit (a busy partition's
// batch, over 16 conversations).
func BenchmarkCommit(b *testing.B) {
	text := strings.Repeat("x", 100)
	for _, tc := range []struct {
		name           string
		changes, convs int
	}{
		{"changes=1", 1, 1},
		{"changes=100", 100, 16},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			s := openAt(b, b.TempDir())
			defer s.Close()
			convs := make([]chat.Conversation, tc.convs)
			for i := range convs {
				convs[i] = chat.Conversation{ID: fmt.Sprintf("cnv_bench_%02d", i), Kind: chat.KindGroup, Members: []string{"alice", "bob"}}
			}
			var offset int64
			commits := 0
			epoch, err := s.Own(ctx, 0)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				changes, head := benchChanges(tc.changes, convs, &offset, text)
				if err := s.Commit(ctx, 0, epoch, head, changes); err != nil {
					b.Fatal(err)
				}
				commits++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(commits*tc.changes), "ns/change")
			last := slices.MaxFunc(convs, func(x, y chat.Conversation) int { return int(x.LastSeq - y.LastSeq) })
			if got, err := s.Conversation(ctx, last.ID); err != nil || got.LastSeq != last.LastSeq {
				b.Fatalf("after the benchmark: %v, %v", got.LastSeq, err)
			}
		})
	}
}

// TestConversationReadsAreIndependentAndCurrent: repeated reads of an
// unchanged conversation (answered from the decoded cache) are equal deep
// copies, so changing one answer changes no later one; and a Commit is
// seen by the next read.
func TestConversationReadsAreIndependentAndCurrent(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, t.TempDir())
	defer s.Close()
	at := time.Now().UTC().Truncate(time.Millisecond)
	reply := "msg_0"
	msg := chat.Message{ID: "msg_1", ConversationID: "cnv_x", Seq: 2, SenderID: "alice", Text: "hi", CreatedAt: at, Version: 1,
		ReplyTo: &reply, Attachments: []chat.Attachment{{ID: "att_1"}}, Reactions: map[string][]string{"+1": {"bob"}}}
	conv := chat.Conversation{ID: "cnv_x", Kind: chat.KindGroup, CreatedBy: "alice", CreatedAt: at, Members: []string{"alice", "bob"},
		MemberCount: 2, LastSeq: 2, LastMessage: &msg, Tally: &chat.Tally{Messages: 1, Deletions: []chat.Deletion{{At: 1, Seq: 1}}}, LastPosition: 513}
	create := chat.Change{Conversation: conv, Events: []chat.Event{
		{Type: chat.EventMemberAdded, ConversationID: "cnv_x", Seq: 1, UserID: "alice", Position: 256},
		{Type: chat.EventMessageCreated, ConversationID: "cnv_x", Seq: 2, Message: &msg, Position: 513},
	}, Messages: []chat.Message{msg}}
	epoch, err := s.Own(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, 0, epoch, 513, []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	var first chat.Conversation
	for range 2 { // the first read decodes, the second finds it kept
		if first, err = s.Conversation(ctx, "cnv_x"); err != nil {
			t.Fatal(err)
		}
	}
	first.Members[0] = "mallory"
	first.Tally.Deletions[0].Seq = 99
	first.LastMessage.Text = "changed"
	first.LastMessage.Attachments[0].ID = "att_x"
	*first.LastMessage.ReplyTo = "msg_x"
	first.LastMessage.Reactions["+1"][0] = "eve"
	second, err := s.Conversation(ctx, "cnv_x")
	if err != nil {
		t.Fatal(err)
	}
	if second.Members[0] != "alice" || second.Tally.Deletions[0].Seq != 1 || second.LastMessage.Text != "hi" ||
		second.LastMessage.Attachments[0].ID != "att_1" || *second.LastMessage.ReplyTo != "msg_0" || second.LastMessage.Reactions["+1"][0] != "bob" {
		t.Fatalf("a read shares state with an earlier answer: %+v, last message %+v", second, *second.LastMessage)
	}
	next := conv
	next.Title, next.LastSeq, next.LastPosition = "renamed", 3, 768
	rename := chat.Change{Conversation: next, PrevSeq: 2, Events: []chat.Event{
		{Type: chat.EventConversationUpdated, ConversationID: "cnv_x", Seq: 3, Position: 768},
	}}
	if err := s.Commit(ctx, 0, epoch, 768, []chat.Change{rename}); err != nil {
		t.Fatal(err)
	}
	third, err := s.Conversation(ctx, "cnv_x")
	if err != nil {
		t.Fatal(err)
	}
	if third.Title != "renamed" || third.LastSeq != 3 {
		t.Fatalf("read after a Commit: title %q, last seq %d; want renamed, 3", third.Title, third.LastSeq)
	}
}

// TestOverlappingFlushesWaitForEightSublevels: memtables that each span
// the whole key space (sends spread over many conversations) stack up in
// L0 and compact only at 8 sublevels, not the library's 2, and then do.
func TestOverlappingFlushesWaitForEightSublevels(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	flush := func(round int) {
		t.Helper()
		b := s.db.NewBatch()
		for k := range 100 {
			b.Set(fmt.Appendf(nil, "k%03d/%02d", k, round), []byte("v"), nil)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	const compactAt = l0CompactionThreshold / 2
	for round := range compactAt - 1 {
		flush(round)
	}
	// A compaction is picked right after the flush that reaches the
	// sublevels; none may start below them.
	for range 20 {
		if m := s.db.Metrics(); m.Compact.Count+m.Compact.NumInProgress > 0 {
			t.Fatalf("compacted at %d L0 sublevels", m.Levels[0].Sublevels)
		}
		time.Sleep(10 * time.Millisecond) // the poll for a compaction that must not come
	}
	if got := s.db.Metrics().Levels[0].Sublevels; got != compactAt-1 {
		t.Fatalf("%d L0 sublevels after %d overlapping flushes", got, compactAt-1)
	}
	flush(compactAt)
	deadline := time.Now().Add(10 * time.Second)
	for m := s.db.Metrics(); m.Compact.Count+m.Compact.NumInProgress == 0; m = s.db.Metrics() {
		if time.Now().After(deadline) {
			t.Fatalf("no compaction at %d L0 sublevels", s.db.Metrics().Levels[0].Sublevels)
		}
		time.Sleep(10 * time.Millisecond) // the poll for the compaction
	}
}

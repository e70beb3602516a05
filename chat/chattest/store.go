package chattest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// TestStore is the contract suite of chat.Store. Every Store adapter runs
// it; each subtest gets a fresh store from open.
//
// open returns a new, empty Store and reopen. reopen closes the Store that
// is currently open (the one open returned, or the one the previous reopen
// returned) and opens a new Store on the same data, which it returns. An
// adapter that keeps nothing across Close returns a nil reopen; the
// durability subtest is then skipped. open and reopen report their own
// failures with t.Fatal, and open arranges (t.Cleanup) for whichever Store
// is open at the end of the subtest to be closed. The suite never calls
// Close itself.
//
// Times are compared at millisecond precision, in UTC; nil and empty
// slices and maps are equal; the conversation snapshot inside an event is
// compared without its internal LastPosition and LastActivity (they are not
// part of the event's JSON). Everything else must read back exactly as it
// was committed.
//
// Besides what chat.Store's doc states, the suite pins these behaviours:
//   - a Change replays a stored one when its events' seqs are stored with
//     the same positions; a Change whose seqs are stored with other
//     positions (a stale sequencer's different command) is a conflict, so a
//     fenced writer never mistakes its change for a replay;
//   - a Commit that fails with a conflict leaves the conflicting Change,
//     and the head of a single-change Commit, unwritten;
//   - committing a deleted message (its tombstone) also scrubs the text and
//     attachments from every stored event that carries that message
//     (message.created, message.updated), in the same atomic write, so the
//     text appears in nothing the Store returns any more;
//   - Events, EventsAfter and Messages of an unknown conversation, and
//     Memberships of an unknown user, are empty, not errors;
//   - Members lists the users whose latest membership row in the
//     conversation is active, whatever order they joined in; a membership
//     update that neither joins nor leaves (a read position) changes
//     nothing;
//   - a call with a done context (cancelled, or past its deadline) fails
//     with chat.CodeUnavailable;
//   - Messages includes tombstones; with After set it pages forward from
//     After, otherwise backward from Before (or from the newest), and
//     always returns ascending seq order.
func TestStore(t *testing.T, open func(t *testing.T) (s chat.Store, reopen func() chat.Store)) {
	t.Helper()
	for _, tc := range storeCases {
		t.Run(tc.name, func(t *testing.T) {
			s, reopen := open(t)
			tc.run(t, s, reopen)
		})
	}
}

type storeCase struct {
	name string
	run  func(t *testing.T, s chat.Store, reopen func() chat.Store)
}

var storeCases = []storeCase{
	{"PingAnswers", storeTestPing},
	{"CreateReadsBackIdentically", storeTestCreate},
	{"StalePrevSeqConflictsAndWritesNothing", storeTestConflict},
	{"StaleOwnerIsRefusedAndWritesNothing", storeTestStaleOwner},
	{"RefusedDeadlinesAreNeverStored", storeTestRefuse},
	{"EpochsGrowAcrossPartitionsAndReopen", storeTestEpochs},
	{"ReplayedChangeIsNoOp", storeTestReplay},
	{"SeveralChangesInOneCommit", storeTestSeveralChanges},
	{"EventsPageBySeq", storeTestEventsPaging},
	{"EventsAfterKeepsPositionBounds", storeTestEventsAfter},
	{"MessagesPageBothWays", storeTestMessagesPaging},
	{"EditReplacesMessage", storeTestEdit},
	{"DeleteScrubsTextEverywhere", storeTestDelete},
	{"DeleteInSameCommitScrubsText", storeTestDeleteSameCommit},
	{"DedupFindsClientID", storeTestDedup},
	{"HeadsNeverGoBack", storeTestHeads},
	{"MetaIsSetIfAbsent", storeTestMeta},
	{"LeftMembershipsAreListed", storeTestLeftMemberships},
	{"MembersPageInUserIDOrder", storeTestMembers},
	{"MissingThingsAreNotFound", storeTestNotFound},
	{"DataSurvivesReopen", storeTestReopen},
	{"ConcurrentCommitsAndReads", storeTestConcurrent},
	{"CompetingCommitsOneWins", storeTestCompeting},
	{"ProfileNameSetBeatsClaimed", storeTestProfiles},
	{"SettingsArePerUserAndSurviveCommits", storeTestSettings},
	{"DevicesArePerUser", storeTestDevices},
	{"DoneContextIsUnavailable", storeTestDoneContext},
}

// storeEpoch is a whole millisecond, so times survive millisecond stores.
var storeEpoch = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

// storeWorld hands out command offsets per partition, so positions grow
// within a partition as they do with a real log, and command times.
type storeWorld struct {
	mu      sync.Mutex
	offsets map[int]int64
	ticks   int64
}

func newStoreWorld() *storeWorld { return &storeWorld{offsets: map[int]int64{}} }

func (w *storeWorld) next(partition int) (int64, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	off := w.offsets[partition]
	w.offsets[partition] = off + 1
	w.ticks++
	return off, storeEpoch.Add(time.Duration(w.ticks) * time.Millisecond)
}

// storeConv builds the Changes a sequencer would build for one
// conversation and tracks the state they lead to. Each operation assumes
// its Change will be committed; fork gives a second, independent builder
// (a stale sequencer).
type storeConv struct {
	w         *storeWorld
	partition int
	conv      chat.Conversation
	msgs      map[string]chat.Message
	mships    map[string]chat.Membership
	events    []chat.Event
}

func (w *storeWorld) conversation(id string, partition int) *storeConv {
	return &storeConv{
		w:         w,
		partition: partition,
		conv:      chat.Conversation{ID: id},
		msgs:      map[string]chat.Message{},
		mships:    map[string]chat.Membership{},
	}
}

func (c *storeConv) fork() *storeConv {
	f := *c
	f.conv.Members = slices.Clone(c.conv.Members)
	f.msgs = make(map[string]chat.Message, len(c.msgs))
	for k, v := range c.msgs {
		f.msgs[k] = v
	}
	f.mships = make(map[string]chat.Membership, len(c.mships))
	for k, v := range c.mships {
		f.mships[k] = v
	}
	f.events = slices.Clone(c.events)
	return &f
}

func (c *storeConv) snapshot() *chat.Conversation {
	s := c.conv
	s.Members = slices.Clone(c.conv.Members)
	return &s
}

// messages returns the expected messages in seq order.
func (c *storeConv) messages() []chat.Message {
	out := make([]chat.Message, 0, len(c.msgs))
	for _, m := range c.msgs {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b chat.Message) int { return int(a.Seq - b.Seq) })
	return out
}

// storeCmd is one command being applied to a storeConv.
type storeCmd struct {
	c      *storeConv
	ch     chat.Change
	offset int64
	at     time.Time
	actor  string
}

func (c *storeConv) begin(actor string) *storeCmd {
	off, at := c.w.next(c.partition)
	return &storeCmd{c: c, ch: chat.Change{PrevSeq: c.conv.LastSeq}, offset: off, at: at, actor: actor}
}

func (x *storeCmd) emit(ev chat.Event) {
	conv := &x.c.conv
	conv.LastSeq++
	ev.ConversationID = conv.ID
	ev.Seq = conv.LastSeq
	ev.EventID = chat.NewID("evt")
	ev.At = x.at
	ev.Actor = x.actor
	ev.Partition = x.c.partition
	ev.Position = chat.Position(x.offset, len(x.ch.Events))
	conv.LastPosition = ev.Position
	conv.LastActivity = x.at
	x.ch.Events = append(x.ch.Events, ev)
}

func (x *storeCmd) putMessage(m chat.Message) {
	x.c.msgs[m.ID] = m
	x.ch.Messages = append(x.ch.Messages, m)
}

func (x *storeCmd) putMembership(m chat.Membership) {
	x.c.mships[m.UserID] = m
	x.ch.Memberships = append(x.ch.Memberships, m)
}

func (x *storeCmd) done() chat.Change {
	x.ch.Conversation = *x.c.snapshot()
	x.c.events = append(x.c.events, x.ch.Events...)
	return x.ch
}

func (c *storeConv) create(kind, title, creator string, others ...string) chat.Change {
	x := c.begin(creator)
	members := append([]string{creator}, others...)
	c.conv = chat.Conversation{ID: c.conv.ID, Kind: kind, Title: title, CreatedBy: creator, CreatedAt: x.at, Members: slices.Clone(members)}
	for _, m := range members {
		x.emit(chat.Event{Type: chat.EventMemberAdded, UserID: m})
		x.putMembership(chat.Membership{ConversationID: c.conv.ID, UserID: m, Active: true, JoinedPosition: c.conv.LastPosition})
	}
	snap := c.snapshot()
	for i := range x.ch.Events {
		x.ch.Events[i].Conversation = snap
	}
	return x.done()
}

func (c *storeConv) send(sender, clientID, text string, atts ...chat.Attachment) (chat.Change, chat.Message) {
	x := c.begin(sender)
	m := chat.Message{
		ID:             chat.NewID("msg"),
		ConversationID: c.conv.ID,
		Seq:            c.conv.LastSeq + 1,
		SenderID:       sender,
		ClientID:       clientID,
		Text:           text,
		Attachments:    atts,
		CreatedAt:      x.at,
		Version:        1,
	}
	m.Normalize()
	x.putMessage(m)
	mc := m
	x.emit(chat.Event{Type: chat.EventMessageCreated, Message: &mc})
	if clientID != "" {
		x.ch.Dedups = append(x.ch.Dedups, chat.Dedup{ConversationID: c.conv.ID, SenderID: sender, ClientID: clientID, MessageID: m.ID})
	}
	return x.done(), m
}

func (c *storeConv) edit(mid, text string) chat.Change {
	old := c.msgs[mid]
	x := c.begin(old.SenderID)
	n := old
	n.Text = text
	at := x.at
	n.EditedAt = &at
	n.Version++
	x.putMessage(n)
	nc := n
	x.emit(chat.Event{Type: chat.EventMessageUpdated, Message: &nc})
	return x.done()
}

func (c *storeConv) react(mid, uid, emoji string) chat.Change {
	old := c.msgs[mid]
	x := c.begin(uid)
	n := old
	n.Reactions = make(map[string][]string, len(old.Reactions)+1)
	for k, v := range old.Reactions {
		n.Reactions[k] = slices.Clone(v)
	}
	n.Reactions[emoji] = append(n.Reactions[emoji], uid)
	x.putMessage(n)
	x.emit(chat.Event{Type: chat.EventReactionAdded, MessageID: mid, Emoji: emoji, UserID: uid})
	return x.done()
}

func (c *storeConv) delete(mid string) chat.Change {
	old := c.msgs[mid]
	x := c.begin(old.SenderID)
	n := old
	n.Text = ""
	n.Attachments = []chat.Attachment{}
	n.Reactions = map[string][]string{}
	n.Deleted = true
	n.Version++
	x.putMessage(n)
	x.emit(chat.Event{Type: chat.EventMessageDeleted, MessageID: mid})
	// The store scrubs the events that carry the message; so does the
	// expected log (with copies: earlier Changes share the pointers).
	for i := range c.events {
		if m := c.events[i].Message; m != nil && m.ID == mid {
			scrubbed := *m
			scrubbed.Text, scrubbed.Attachments = "", nil
			c.events[i].Message = &scrubbed
		}
	}
	return x.done()
}

func (c *storeConv) add(uid string) chat.Change {
	x := c.begin(c.conv.CreatedBy)
	c.conv.Members = append(slices.Clone(c.conv.Members), uid)
	x.emit(chat.Event{Type: chat.EventMemberAdded, UserID: uid})
	x.ch.Events[len(x.ch.Events)-1].Conversation = c.snapshot()
	ms := c.mships[uid]
	ms.ConversationID, ms.UserID = c.conv.ID, uid
	ms.Active, ms.JoinedPosition, ms.LeftPosition = true, c.conv.LastPosition, 0
	x.putMembership(ms)
	return x.done()
}

func (c *storeConv) remove(uid string) chat.Change {
	x := c.begin(c.conv.CreatedBy)
	c.conv.Members = slices.DeleteFunc(slices.Clone(c.conv.Members), func(m string) bool { return m == uid })
	x.emit(chat.Event{Type: chat.EventMemberRemoved, UserID: uid})
	ms := c.mships[uid]
	ms.Active, ms.LeftPosition = false, c.conv.LastPosition
	x.putMembership(ms)
	return x.done()
}

// storeHeadOf is the head a sequencer passes with changes.
// storeEpochs caches the epoch each store took of each partition, so a
// test commits as one owner unless it takes the partition again.
var storeEpochs sync.Map // storeEpochKey -> int64

type storeEpochKey struct {
	s chat.Store
	p int
}

// storeOwner returns the epoch s holds of partition p, taking it first.
func storeOwner(t *testing.T, s chat.Store, p int) int64 {
	t.Helper()
	if e, ok := storeEpochs.Load(storeEpochKey{s, p}); ok {
		return e.(int64)
	}
	return storeTakeOver(t, s, p)
}

// storeTakeOver takes partition p again, as a new owner after a rebalance.
func storeTakeOver(t *testing.T, s chat.Store, p int) int64 {
	t.Helper()
	e, err := s.Own(t.Context(), p)
	if err != nil {
		t.Fatalf("Own(%d): %v", p, err)
	}
	if e <= 0 {
		t.Fatalf("Own(%d) = %d, want a positive epoch", p, e)
	}
	storeEpochs.Store(storeEpochKey{s, p}, e)
	return e
}

func storeHeadOf(changes []chat.Change) int64 {
	var head int64
	for _, ch := range changes {
		for _, ev := range ch.Events {
			head = max(head, ev.Position)
		}
	}
	return head
}

func storeCommit(t *testing.T, s chat.Store, partition int, changes ...chat.Change) {
	t.Helper()
	if err := s.Commit(t.Context(), partition, storeOwner(t, s, partition), storeHeadOf(changes), changes); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// storeCanonTime keeps milliseconds in UTC: the precision every store keeps.
func storeCanonTime(tm time.Time) time.Time {
	if tm.IsZero() {
		return time.Time{}
	}
	return time.UnixMilli(tm.UnixMilli()).UTC()
}

func storeCanonConversation(c chat.Conversation) chat.Conversation {
	c.CreatedAt = storeCanonTime(c.CreatedAt)
	c.LastActivity = storeCanonTime(c.LastActivity)
	if len(c.Members) == 0 {
		c.Members = nil
	}
	return c
}

func storeCanonMessage(m chat.Message) chat.Message {
	m.CreatedAt = storeCanonTime(m.CreatedAt)
	if m.EditedAt != nil {
		e := storeCanonTime(*m.EditedAt)
		m.EditedAt = &e
	}
	if m.ReplyTo != nil {
		r := *m.ReplyTo
		m.ReplyTo = &r
	}
	if len(m.Attachments) == 0 {
		m.Attachments = nil
	}
	if len(m.Reactions) == 0 {
		m.Reactions = nil
	}
	return m
}

func storeCanonEvent(e chat.Event) chat.Event {
	e.At = storeCanonTime(e.At)
	if e.Message != nil {
		m := storeCanonMessage(*e.Message)
		e.Message = &m
	}
	if e.Conversation != nil {
		c := storeCanonConversation(*e.Conversation)
		c.LastPosition, c.LastActivity = 0, time.Time{}
		e.Conversation = &c
	}
	return e
}

func storeCanonMembership(m chat.Membership) chat.Membership { return m }

func storeCanonSlice[T any](in []T, canon func(T) T) []T {
	if len(in) == 0 {
		return nil
	}
	out := make([]T, len(in))
	for i := range in {
		out[i] = canon(in[i])
	}
	return out
}

// storeCanon brings a value the store returned, or one the suite expects,
// to the form they are compared in.
func storeCanon(v any) any {
	switch v := v.(type) {
	case chat.Conversation:
		return storeCanonConversation(v)
	case chat.Message:
		return storeCanonMessage(v)
	case chat.Event:
		return storeCanonEvent(v)
	case []chat.Message:
		return storeCanonSlice(v, storeCanonMessage)
	case []chat.Event:
		return storeCanonSlice(v, storeCanonEvent)
	case []chat.Membership:
		out := storeCanonSlice(v, storeCanonMembership)
		slices.SortFunc(out, func(a, b chat.Membership) int { return strings.Compare(a.ConversationID, b.ConversationID) })
		return out
	}
	return v
}

func storeShow(v any) string {
	switch v := v.(type) {
	case chat.Conversation:
		return fmt.Sprintf("%+v", v)
	case chat.Message, chat.Event:
		b, _ := json.Marshal(v)
		return string(b)
	case []chat.Message:
		var sb strings.Builder
		for _, m := range v {
			sb.WriteString("\n\t")
			sb.WriteString(storeShow(m))
		}
		return fmt.Sprintf("%d messages:%s", len(v), sb.String())
	case []chat.Event:
		var sb strings.Builder
		for _, e := range v {
			sb.WriteString("\n\t")
			sb.WriteString(storeShow(e))
		}
		return fmt.Sprintf("%d events:%s", len(v), sb.String())
	}
	return fmt.Sprintf("%+v", v)
}

// storeExpect reports a difference between what the store returned and
// what the suite expects.
func storeExpect[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	g, w := storeCanon(got), storeCanon(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\ngot  %s\nwant %s", what, storeShow(g), storeShow(w))
	}
}

const storeAll = 100_000

// storeDump renders everything the store returns about cids, uids and
// partitions, to compare the whole readable state before and after.
func storeDump(t *testing.T, s chat.Store, cids, uids []string, partitions int) string {
	t.Helper()
	ctx := t.Context()
	var b strings.Builder
	for _, cid := range cids {
		c, err := s.Conversation(ctx, cid)
		switch {
		case chat.IsNotFound(err):
			fmt.Fprintf(&b, "conversation %s: not found\n", cid)
		case err != nil:
			t.Fatalf("Conversation(%s): %v", cid, err)
		default:
			fmt.Fprintf(&b, "conversation %s\n", storeShow(storeCanon(c)))
		}
		evs, err := s.Events(ctx, cid, 0, storeAll)
		if err != nil {
			t.Fatalf("Events(%s): %v", cid, err)
		}
		fmt.Fprintf(&b, "events %s\n", storeShow(storeCanon(evs)))
		msgs, more, err := s.Messages(ctx, cid, chat.MessagePage{Limit: storeAll})
		if err != nil {
			t.Fatalf("Messages(%s): %v", cid, err)
		}
		fmt.Fprintf(&b, "messages (more %v) %s\n", more, storeShow(storeCanon(msgs)))
	}
	for _, uid := range uids {
		ms, err := s.Memberships(ctx, uid)
		if err != nil {
			t.Fatalf("Memberships(%s): %v", uid, err)
		}
		fmt.Fprintf(&b, "memberships of %s %s\n", uid, storeShow(storeCanon(ms)))
	}
	heads, err := s.Heads(ctx, partitions)
	if err != nil {
		t.Fatalf("Heads: %v", err)
	}
	fmt.Fprintf(&b, "heads %v\n", heads)
	return b.String()
}

func storeSameDump(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: the store's state changed\nbefore:\n%s\nafter:\n%s", what, want, got)
	}
}

// storeCheckConversation checks everything the store returns about c
// against what c expects.
func storeCheckConversation(t *testing.T, s chat.Store, c *storeConv) {
	t.Helper()
	ctx := t.Context()
	got, err := s.Conversation(ctx, c.conv.ID)
	if err != nil {
		t.Fatalf("Conversation(%s): %v", c.conv.ID, err)
	}
	storeExpect(t, "Conversation", got, c.conv)
	evs, err := s.Events(ctx, c.conv.ID, 0, storeAll)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	storeExpect(t, "Events", evs, c.events)
	evs, err = s.EventsAfter(ctx, c.conv.ID, 0, math.MaxInt64, storeAll)
	if err != nil {
		t.Fatalf("EventsAfter: %v", err)
	}
	storeExpect(t, "EventsAfter", evs, c.events)
	msgs, more, err := s.Messages(ctx, c.conv.ID, chat.MessagePage{Limit: storeAll})
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	storeExpect(t, "Messages", msgs, c.messages())
	if more {
		t.Errorf("Messages: has_more with every message returned")
	}
	for _, want := range c.msgs {
		got, err := s.Message(ctx, c.conv.ID, want.ID)
		if err != nil {
			t.Fatalf("Message(%s): %v", want.ID, err)
		}
		storeExpect(t, "Message "+want.ID, got, want)
	}
	for uid, want := range c.mships {
		got, err := s.Membership(ctx, c.conv.ID, uid)
		if err != nil {
			t.Fatalf("Membership(%s, %s): %v", c.conv.ID, uid, err)
		}
		storeExpect(t, "Membership "+uid, got, want)
	}
}

func storeTestPing(t *testing.T, s chat.Store, _ func() chat.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func storeTestCreate(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_create", 3)
	ch := c.create(chat.KindGroup, "Ops", "alice", "bob", "carol")
	storeCommit(t, s, 3, ch)

	storeCheckConversation(t, s, c)
	got, err := s.Conversation(ctx, c.conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastSeq != 3 || got.LastPosition != ch.Events[2].Position || !got.LastActivity.Equal(ch.Events[2].At) {
		t.Errorf("internal fields: last_seq %d position %d activity %v", got.LastSeq, got.LastPosition, got.LastActivity)
	}
	for _, uid := range []string{"alice", "bob", "carol"} {
		ms, err := s.Memberships(ctx, uid)
		if err != nil {
			t.Fatalf("Memberships(%s): %v", uid, err)
		}
		storeExpect(t, "Memberships "+uid, ms, []chat.Membership{c.mships[uid]})
	}
	evs, err := s.Events(ctx, c.conv.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.Partition != 3 || ev.Position != chat.Position(0, i) {
			t.Errorf("event %d: partition %d position %d, want 3 and %d", ev.Seq, ev.Partition, ev.Position, chat.Position(0, i))
		}
	}
	heads, err := s.Heads(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Heads", heads, []int64{0, 0, 0, ch.Events[2].Position})
}

func storeTestConflict(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_fence", 0)
	storeCommit(t, s, 0, c.create(chat.KindGroup, "", "alice", "bob"))
	stale := c.fork()
	ch, _ := c.send("alice", "a-1", "hello")
	storeCommit(t, s, 0, ch)

	cids, uids := []string{"cnv_fence", "cnv_nothing"}, []string{"alice", "bob", "carol"}
	before := storeDump(t, s, cids, uids, 1)

	behind, staleMsg := stale.send("bob", "b-1", "stale hello")
	ahead := c.fork()
	aheadCh, aheadMsg := ahead.send("bob", "b-2", "from the future")
	aheadCh.PrevSeq += 5
	aheadCh.Conversation.LastSeq += 5
	for i := range aheadCh.Events {
		aheadCh.Events[i].Seq += 5
	}
	nothing := w.conversation("cnv_nothing", 0)
	nothing.create(chat.KindGroup, "", "carol")
	orphan, orphanMsg := nothing.send("carol", "c-1", "no conversation")
	recreate := w.conversation("cnv_fence", 0).create(chat.KindGroup, "again", "carol")

	for _, tc := range []struct {
		name string
		ch   chat.Change
		mid  string
		dd   chat.Dedup
	}{
		{"PrevSeq behind the stored LastSeq", behind, staleMsg.ID, behind.Dedups[0]},
		{"PrevSeq ahead of the stored LastSeq", aheadCh, aheadMsg.ID, aheadCh.Dedups[0]},
		{"PrevSeq above zero for an unknown conversation", orphan, orphanMsg.ID, orphan.Dedups[0]},
		{"create over an existing conversation", recreate, "", chat.Dedup{}},
	} {
		err := s.Commit(ctx, 0, storeOwner(t, s, 0), storeHeadOf([]chat.Change{tc.ch}), []chat.Change{tc.ch})
		if !chat.IsConflict(err) {
			t.Errorf("%s: err %v, want a conflict", tc.name, err)
		}
		storeSameDump(t, tc.name, storeDump(t, s, cids, uids, 1), before)
		if tc.mid != "" {
			if _, err := s.Message(ctx, tc.ch.Conversation.ID, tc.mid); !chat.IsNotFound(err) {
				t.Errorf("%s: the refused message is stored (err %v)", tc.name, err)
			}
			if _, err := s.Dedup(ctx, tc.dd.ConversationID, tc.dd.SenderID, tc.dd.ClientID); !chat.IsNotFound(err) {
				t.Errorf("%s: the refused dedup record is stored (err %v)", tc.name, err)
			}
		}
	}

	// The fenced writer is refused; the current one goes on.
	next, _ := c.send("bob", "b-3", "still here")
	storeCommit(t, s, 0, next)
	storeCheckConversation(t, s, c)
}

// storeTestStaleOwner: a writer whose partition was taken by a newer
// owner (a stale sequencer after a rebalance) is refused with CodeConflict
// and writes nothing, even a change that is right on the stored state;
// the newer owner goes on from the state the stale one saw.
func storeTestStaleOwner(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_zombie", 1)
	other := w.conversation("cnv_bystander", 2)
	old := storeTakeOver(t, s, 1)
	storeCommit(t, s, 1, c.create(chat.KindGroup, "", "alice", "bob"))
	storeCommit(t, s, 2, other.create(chat.KindGroup, "", "carol"))

	cids, uids := []string{"cnv_zombie", "cnv_bystander"}, []string{"alice", "bob", "carol"}
	before := storeDump(t, s, cids, uids, 3)
	newer := storeTakeOver(t, s, 1)
	if newer <= old {
		t.Fatalf("Own after epoch %d gave %d, want more", old, newer)
	}
	storeSameDump(t, "taking the partition", storeDump(t, s, cids, uids, 3), before)

	// The stale owner's change is built on the current state, so only
	// the epoch can refuse it.
	zombie := c.fork()
	zch, zmsg := zombie.send("alice", "z-1", "from the zombie")
	for _, epoch := range []int64{old, 0, newer + 1} {
		err := s.Commit(ctx, 1, epoch, storeHeadOf([]chat.Change{zch}), []chat.Change{zch})
		if !chat.IsConflict(err) {
			t.Errorf("commit with epoch %d after epoch %d was taken: err %v, want a conflict", epoch, newer, err)
		}
		storeSameDump(t, fmt.Sprintf("epoch %d refused", epoch), storeDump(t, s, cids, uids, 3), before)
	}
	if _, err := s.Message(ctx, "cnv_zombie", zmsg.ID); !chat.IsNotFound(err) {
		t.Errorf("the stale owner's message is stored (err %v)", err)
	}
	if _, err := s.Dedup(ctx, "cnv_zombie", "alice", "z-1"); !chat.IsNotFound(err) {
		t.Errorf("the stale owner's dedup record is stored (err %v)", err)
	}

	// The new owner applies the same command from the same state, and
	// taking another partition leaves partition 1's owner alone.
	ch, _ := c.send("alice", "z-1", "from the new owner")
	storeTakeOver(t, s, 3)
	if err := s.Commit(ctx, 1, newer, storeHeadOf([]chat.Change{ch}), []chat.Change{ch}); err != nil {
		t.Fatalf("the new owner's commit: %v", err)
	}
	storeCheckConversation(t, s, c)
	storeCheckConversation(t, s, other)
	if err := s.Commit(ctx, 1, old, storeHeadOf([]chat.Change{zch}), []chat.Change{zch}); !chat.IsConflict(err) {
		t.Errorf("the stale owner after the new owner's commit: err %v, want a conflict", err)
	}
	storeCheckConversation(t, s, c)
}

// storeTestRefuse: Refuse fences a gateway's commands by deadline, per
// partition, against every later Commit, whatever its epoch, and tells
// whether a change at or after that deadline was stored already (then it
// changes nothing). A refused change is a conflict and writes nothing;
// other gateways and partitions are not concerned; a floor never goes
// down.
func storeTestRefuse(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	from := func(ch chat.Change, gw string, ms int) chat.Change {
		ch.Gateway, ch.Deadline = gw, at(ms)
		return ch
	}
	refuse := func(p int, gw string, ms int, want bool) {
		t.Helper()
		got, err := s.Refuse(ctx, p, gw, at(ms))
		if err != nil || got != want {
			t.Fatalf("Refuse(%d, %s, +%dms) = %v, %v; want %v", p, gw, ms, got, err, want)
		}
	}
	c := w.conversation("cnv_refuse", 4)
	storeCommit(t, s, 4, c.create(chat.KindGroup, "", "alice", "bob"))
	ch, _ := c.send("alice", "a-1", "in time")
	storeCommit(t, s, 4, from(ch, "gw-a", 1000))

	// Stored at +1000 ms: too late to refuse up to there.
	refuse(4, "gw-a", 1000, false)
	refuse(4, "gw-a", 500, false)
	if r, err := s.Refusals(ctx, 4); err != nil || len(r) != 0 {
		t.Fatalf("Refusals after refusing nothing: %v, %v", r, err)
	}
	refuse(4, "gw-a", 2000, true)
	refuse(4, "gw-a", 1900, true) // below the floor: refused already
	if r, err := s.Refusals(ctx, 4); err != nil || !storeCanonTime(r["gw-a"]).Equal(at(2000)) || len(r) != 1 {
		t.Fatalf("Refusals = %v, %v; want gw-a at +2000ms", r, err)
	}

	cids, uids := []string{"cnv_refuse"}, []string{"alice", "bob"}
	before := storeDump(t, s, cids, uids, 5)
	for _, ms := range []int{2000, 1500} {
		late, msg := c.fork().send("bob", fmt.Sprint("b-", ms), "refused")
		late = from(late, "gw-a", ms)
		// The writer takes the partition again after each refusal, as
		// a sequencer does after a failed Commit.
		err := s.Commit(ctx, 4, storeTakeOver(t, s, 4), storeHeadOf([]chat.Change{late}), []chat.Change{late})
		if !chat.IsConflict(err) {
			t.Errorf("a change of gw-a at +%dms after its floor +2000ms: err %v, want a conflict", ms, err)
		}
		storeSameDump(t, "refused change", storeDump(t, s, cids, uids, 5), before)
		if _, err := s.Message(ctx, "cnv_refuse", msg.ID); !chat.IsNotFound(err) {
			t.Errorf("the refused message is stored (err %v)", err)
		}
	}
	storeTakeOver(t, s, 4)

	// Another gateway, a later deadline and another partition go on.
	ch, _ = c.send("bob", "b-3", "other gateway")
	storeCommit(t, s, 4, from(ch, "gw-b", 1500))
	ch, _ = c.send("bob", "b-4", "after the floor")
	storeCommit(t, s, 4, from(ch, "gw-a", 2001))
	refuse(4, "gw-a", 2001, false)
	d := w.conversation("cnv_elsewhere", 5)
	storeCommit(t, s, 5, d.create(chat.KindGroup, "", "carol"))
	ch, _ = d.send("carol", "c-1", "elsewhere")
	storeCommit(t, s, 5, from(ch, "gw-a", 1000))
	storeCheckConversation(t, s, c)
	storeCheckConversation(t, s, d)

	// A refusal after the writer took the partition: a change of another
	// gateway still commits with the same epoch; a refused one is a
	// conflict wrapping ErrRefused, and the epoch stays the writer's.
	epoch := storeTakeOver(t, s, 4)
	refuse(4, "gw-c", 5000, true)
	ch, _ = c.send("bob", "b-5", "refused elsewhere")
	ch = from(ch, "gw-d", 5000)
	if err := s.Commit(ctx, 4, epoch, storeHeadOf([]chat.Change{ch}), []chat.Change{ch}); err != nil {
		t.Fatalf("another gateway's change after a refusal since Own: %v", err)
	}
	refuse(4, "gw-d", 6000, true)
	late, _ := c.fork().send("bob", "b-6", "refused")
	late = from(late, "gw-d", 5500)
	err := s.Commit(ctx, 4, epoch, storeHeadOf([]chat.Change{late}), []chat.Change{late})
	if !chat.IsConflict(err) || !errors.Is(err, chat.ErrRefused) {
		t.Fatalf("a change refused since Own: err %v, want a conflict wrapping ErrRefused", err)
	}
	ch, _ = c.send("bob", "b-7", "the epoch holds")
	ch = from(ch, "gw-d", 6001)
	if err := s.Commit(ctx, 4, epoch, storeHeadOf([]chat.Change{ch}), []chat.Change{ch}); err != nil {
		t.Fatalf("the same epoch after a refused change: %v", err)
	}
	storeCheckConversation(t, s, c)

	// A partition nobody owns yet can be refused, and its first owner is
	// held to it.
	refuse(9, "gw-a", 3000, true)
	e := w.conversation("cnv_unowned", 9)
	storeCommit(t, s, 9, e.create(chat.KindGroup, "", "dave"))
	late, _ = e.fork().send("dave", "d-1", "refused")
	late = from(late, "gw-a", 3000)
	if err := s.Commit(ctx, 9, storeOwner(t, s, 9), storeHeadOf([]chat.Change{late}), []chat.Change{late}); !chat.IsConflict(err) {
		t.Errorf("a change at the floor of a partition refused before it was owned: err %v, want a conflict", err)
	}
	storeTakeOver(t, s, 9)
	storeCheckConversation(t, s, e)
	if _, err := s.Refuse(ctx, 9, "", at(1)); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Errorf("Refuse without a gateway: %v, want invalid", err)
	}
}

// storeTestEpochs: every Own of a partition gives a higher epoch, also
// after a restart; partitions have their own epochs.
func storeTestEpochs(t *testing.T, s chat.Store, reopen func() chat.Store) {
	ctx := t.Context()
	var last int64
	for range 3 {
		e, err := s.Own(ctx, 5)
		if err != nil {
			t.Fatal(err)
		}
		if e <= last {
			t.Fatalf("Own gave %d after %d", e, last)
		}
		last = e
	}
	if _, err := s.Own(ctx, -1); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Errorf("Own(-1): %v, want invalid", err)
	}
	if e, err := s.Own(ctx, 6); err != nil || e <= 0 {
		t.Errorf("Own of another partition: %d, %v", e, err)
	}
	if reopen == nil {
		return
	}
	s = reopen()
	e, err := s.Own(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if e <= last {
		t.Errorf("Own after reopen gave %d, not above %d", e, last)
	}
	w := newStoreWorld()
	c := w.conversation("cnv_after_reopen", 5)
	create := c.create(chat.KindGroup, "", "alice")
	if err := s.Commit(ctx, 5, last, storeHeadOf([]chat.Change{create}), []chat.Change{create}); !chat.IsConflict(err) {
		t.Errorf("commit with the epoch from before the restart: %v, want a conflict", err)
	}
	if err := s.Commit(ctx, 5, e, storeHeadOf([]chat.Change{create}), []chat.Change{create}); err != nil {
		t.Fatal(err)
	}
	storeCheckConversation(t, s, c)
}

func storeTestReplay(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_replay", 1)
	create := c.create(chat.KindGroup, "", "alice", "bob")
	storeCommit(t, s, 1, create)
	m1, msg1 := c.send("alice", "a-1", "one")
	m2, _ := c.send("bob", "b-1", "two")
	storeCommit(t, s, 1, m1, m2)

	cids, uids := []string{"cnv_replay"}, []string{"alice", "bob"}
	before := storeDump(t, s, cids, uids, 2)
	storeCommit(t, s, 1, create)
	storeSameDump(t, "create replayed", storeDump(t, s, cids, uids, 2), before)
	storeCommit(t, s, 1, m1, m2)
	storeSameDump(t, "two sends replayed", storeDump(t, s, cids, uids, 2), before)

	// A sequencer that applies the same command again makes new event ids;
	// the stored events stay.
	again := m1
	again.Events = slices.Clone(m1.Events)
	again.Events[0].EventID = chat.NewID("evt")
	again.Messages = []chat.Message{msg1}
	again.Messages[0].Text = "one, again"
	storeCommit(t, s, 1, again)
	storeSameDump(t, "send replayed with new event ids", storeDump(t, s, cids, uids, 2), before)

	// Replays mixed with a new change: the new one is written once.
	m3, _ := c.send("alice", "a-3", "three")
	storeCommit(t, s, 1, m2, m3)
	storeCommit(t, s, 1, m1, m2, m3)
	storeCheckConversation(t, s, c)
	if mid, err := s.Dedup(ctx, "cnv_replay", "alice", "a-1"); err != nil || mid != msg1.ID {
		t.Errorf("Dedup after replays: %q, %v; want %q", mid, err, msg1.ID)
	}
}

func storeTestSeveralChanges(t *testing.T, s chat.Store, _ func() chat.Store) {
	w := newStoreWorld()
	a := w.conversation("cnv_a", 2)
	b := w.conversation("cnv_b", 2)
	var changes []chat.Change
	changes = append(changes, a.create(chat.KindGroup, "A", "alice", "bob"))
	ch, ma := a.send("alice", "a-1", "first in a")
	changes = append(changes, ch)
	changes = append(changes, b.create(chat.KindDirect, "", "bob", "carol"))
	ch, mb := b.send("carol", "", "first in b")
	changes = append(changes, ch)
	changes = append(changes, a.edit(ma.ID, "first in a, edited"))
	changes = append(changes, a.react(ma.ID, "bob", "👍"))
	changes = append(changes, b.react(mb.ID, "bob", "🎉"))
	changes = append(changes, a.add("carol"))
	storeCommit(t, s, 2, changes...)

	storeCheckConversation(t, s, a)
	storeCheckConversation(t, s, b)
	ms, err := s.Memberships(t.Context(), "carol")
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Memberships carol", ms, []chat.Membership{a.mships["carol"], b.mships["carol"]})
	heads, err := s.Heads(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Heads", heads, []int64{0, 0, storeHeadOf(changes)})
}

func storeTestEventsPaging(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_events", 0)
	storeCommit(t, s, 0, c.create(chat.KindGroup, "", "alice", "bob"))
	for i := range 8 {
		ch, _ := c.send("alice", "", fmt.Sprintf("message %d", i))
		storeCommit(t, s, 0, ch)
	}
	all := c.events
	if len(all) != 10 {
		t.Fatalf("setup: %d events", len(all))
	}
	for _, tc := range []struct {
		after int64
		limit int
		want  []chat.Event
	}{
		{0, 3, all[0:3]},
		{3, 3, all[3:6]},
		{6, 4, all[6:10]},
		{9, 5, all[9:]},
		{10, 5, nil},
		{50, 5, nil},
		{0, 100, all},
		{4, 1, all[4:5]},
	} {
		got, err := s.Events(ctx, c.conv.ID, tc.after, tc.limit)
		if err != nil {
			t.Fatalf("Events(after %d, limit %d): %v", tc.after, tc.limit, err)
		}
		storeExpect(t, fmt.Sprintf("Events(after %d, limit %d)", tc.after, tc.limit), got, tc.want)
	}
	got, err := s.Events(ctx, "cnv_unknown", 0, 10)
	if err != nil || len(got) != 0 {
		t.Errorf("Events of an unknown conversation: %d events, err %v; want none", len(got), err)
	}
}

func storeTestEventsAfter(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_pos", 5)
	other := w.conversation("cnv_pos_other", 5)
	storeCommit(t, s, 5, c.create(chat.KindGroup, "", "alice", "bob", "carol"))
	storeCommit(t, s, 5, other.create(chat.KindGroup, "", "alice"))
	for i := range 4 {
		ch, _ := c.send("alice", "", fmt.Sprintf("m%d", i))
		och, _ := other.send("alice", "", fmt.Sprintf("o%d", i))
		storeCommit(t, s, 5, ch, och)
	}
	all := c.events // 3 member.added at one command, then 4 sends
	pos := func(i int) int64 { return all[i].Position }
	for _, tc := range []struct {
		name        string
		after, upTo int64
		limit       int
		want        []chat.Event
	}{
		{"everything", 0, math.MaxInt64, 100, all},
		{"after is exclusive, upTo inclusive", pos(2), pos(5), 100, all[3:6]},
		{"one position", pos(3) - 1, pos(3), 100, all[3:4]},
		{"upTo between positions", pos(1), pos(4) + 1, 100, all[2:5]},
		{"after between positions", pos(3) + 1, pos(6), 100, all[4:7]},
		{"limit", 0, math.MaxInt64, 2, all[0:2]},
		{"limit inside the window", pos(0), pos(6), 3, all[1:4]},
		{"empty window", pos(3), pos(3), 100, nil},
		{"upTo below after", pos(5), pos(2), 100, nil},
		{"after the newest", pos(6), math.MaxInt64, 100, nil},
		{"before the first", 0, pos(0) - 1, 100, nil},
	} {
		got, err := s.EventsAfter(ctx, c.conv.ID, tc.after, tc.upTo, tc.limit)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		storeExpect(t, "EventsAfter: "+tc.name, got, tc.want)
	}
	got, err := s.EventsAfter(ctx, "cnv_unknown", 0, math.MaxInt64, 10)
	if err != nil || len(got) != 0 {
		t.Errorf("EventsAfter of an unknown conversation: %d events, err %v; want none", len(got), err)
	}
}

func storeTestMessagesPaging(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_history", 0)
	storeCommit(t, s, 0, c.create(chat.KindGroup, "", "alice", "bob"))
	var ids []string
	for i := range 10 {
		ch, m := c.send("alice", "", fmt.Sprintf("message %d", i))
		storeCommit(t, s, 0, ch)
		ids = append(ids, m.ID)
		if i%3 == 1 { // reactions put gaps between the message seqs
			storeCommit(t, s, 0, c.react(m.ID, "bob", "👀"))
		}
	}
	msgs := c.messages()
	if len(msgs) != 10 {
		t.Fatalf("setup: %d messages", len(msgs))
	}
	seq := func(i int) int64 { return msgs[i].Seq }
	for _, tc := range []struct {
		name     string
		page     chat.MessagePage
		want     []chat.Message
		wantMore bool
	}{
		{"newest page", chat.MessagePage{Limit: 3}, msgs[7:], true},
		{"newest page is everything", chat.MessagePage{Limit: 10}, msgs, false},
		{"newest page larger than history", chat.MessagePage{Limit: 50}, msgs, false},
		{"before", chat.MessagePage{Before: seq(5), Limit: 3}, msgs[2:5], true},
		{"before reaches the oldest exactly", chat.MessagePage{Before: seq(3), Limit: 3}, msgs[0:3], false},
		{"before a short page", chat.MessagePage{Before: seq(2), Limit: 3}, msgs[0:2], false},
		{"before the oldest", chat.MessagePage{Before: seq(0), Limit: 3}, nil, false},
		{"before a seq that is no message", chat.MessagePage{Before: seq(2) + 1, Limit: 2}, msgs[1:3], true},
		{"after", chat.MessagePage{After: seq(2), Limit: 3}, msgs[3:6], true},
		{"after reaches the newest exactly", chat.MessagePage{After: seq(6), Limit: 3}, msgs[7:], false},
		{"after a short page", chat.MessagePage{After: seq(7), Limit: 3}, msgs[8:], false},
		{"after the newest", chat.MessagePage{After: seq(9), Limit: 3}, nil, false},
		{"after a seq that is no message", chat.MessagePage{After: 1, Limit: 100}, msgs, false},
		{"after, limit one", chat.MessagePage{After: seq(0), Limit: 1}, msgs[1:2], true},
	} {
		got, more, err := s.Messages(ctx, c.conv.ID, tc.page)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		storeExpect(t, "Messages: "+tc.name, got, tc.want)
		if more != tc.wantMore {
			t.Errorf("Messages: %s: has_more %v, want %v", tc.name, more, tc.wantMore)
		}
	}
	got, more, err := s.Messages(ctx, "cnv_unknown", chat.MessagePage{Limit: 10})
	if err != nil || len(got) != 0 || more {
		t.Errorf("Messages of an unknown conversation: %d, %v, %v; want none", len(got), more, err)
	}
}

func storeTestEdit(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_edit", 0)
	storeCommit(t, s, 0, c.create(chat.KindGroup, "", "alice", "bob"))
	ch, m := c.send("alice", "a-1", "teh first")
	storeCommit(t, s, 0, ch)
	storeCommit(t, s, 0, c.edit(m.ID, "the first"))
	storeCommit(t, s, 0, c.edit(m.ID, "the first!"))

	got, err := s.Message(ctx, c.conv.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != "the first!" || got.Version != 3 || got.EditedAt == nil || got.Seq != m.Seq {
		t.Errorf("edited message: %s", storeShow(got))
	}
	msgs, _, err := s.Messages(ctx, c.conv.ID, chat.MessagePage{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("an edit doubled the message: %s", storeShow(msgs))
	}
	storeCheckConversation(t, s, c)
}

// storeFindSecrets returns those of secrets that appear in anything the
// store returns about conversation cid.
func storeFindSecrets(t *testing.T, s chat.Store, cid string, mids []string, secrets ...string) []string {
	t.Helper()
	ctx := t.Context()
	var seen []any
	evs, err := s.Events(ctx, cid, 0, storeAll)
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, evs)
	evs, err = s.EventsAfter(ctx, cid, 0, math.MaxInt64, storeAll)
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, evs)
	msgs, _, err := s.Messages(ctx, cid, chat.MessagePage{Limit: storeAll})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, msgs)
	msgs, _, err = s.Messages(ctx, cid, chat.MessagePage{After: 0, Before: math.MaxInt64, Limit: storeAll})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, msgs)
	for _, mid := range mids {
		m, err := s.Message(ctx, cid, mid)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, m)
	}
	var text strings.Builder
	for _, v := range seen {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(b)
		fmt.Fprintf(&text, "%+v", v)
	}
	var found []string
	for _, secret := range secrets {
		if strings.Contains(text.String(), secret) {
			found = append(found, secret)
		}
	}
	return found
}

var storeSecrets = []string{"0451", "secret-plan", "att_plan"}

// storeCheckScrubbed checks the deleted message and the events about it.
func storeCheckScrubbed(t *testing.T, s chat.Store, c *storeConv, mid string) {
	t.Helper()
	ctx := t.Context()
	got, err := s.Message(ctx, c.conv.ID, mid)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Deleted || got.Text != "" || len(got.Attachments) != 0 || got.Seq != c.msgs[mid].Seq {
		t.Errorf("tombstone: %s", storeShow(got))
	}
	evs, err := s.Events(ctx, c.conv.ID, 0, storeAll)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(c.events) {
		t.Fatalf("%d events, want %d: deleting must not remove events", len(evs), len(c.events))
	}
	var carried int
	for i, ev := range evs {
		want := c.events[i]
		if ev.Seq != want.Seq || ev.Type != want.Type || ev.Position != want.Position || ev.EventID != want.EventID {
			t.Errorf("event %d changed: %s", want.Seq, storeShow(ev))
		}
		if ev.Message == nil || ev.Message.ID != mid {
			storeExpect(t, fmt.Sprintf("event %d (not about the deleted message)", want.Seq), ev, want)
			continue
		}
		carried++
		if ev.Message.Text != "" || len(ev.Message.Attachments) != 0 {
			t.Errorf("event %d still carries the deleted message's content: %s", ev.Seq, storeShow(ev))
		}
		scrubbed := *want.Message
		scrubbed.Text, scrubbed.Attachments = "", nil
		storeExpect(t, fmt.Sprintf("event %d's message apart from text and attachments", ev.Seq), *ev.Message, scrubbed)
	}
	if carried == 0 {
		t.Errorf("no event carries message %s any more", mid)
	}
}

func storeDeleteFixture(c *storeConv) (changes []chat.Change, doomed, kept chat.Message) {
	changes = append(changes, c.create(chat.KindGroup, "", "alice", "bob"))
	ch, doomed := c.send("alice", "a-1", "the launch code is 0451",
		chat.Attachment{ID: "att_plan", Name: "secret-plan.pdf", ContentType: "application/pdf", Size: 1234})
	changes = append(changes, ch)
	ch, kept = c.send("bob", "b-1", "keep me around")
	changes = append(changes, ch)
	changes = append(changes, c.edit(doomed.ID, "the launch code is 0451, really"))
	changes = append(changes, c.react(doomed.ID, "bob", "😱"))
	changes = append(changes, c.delete(doomed.ID))
	return changes, doomed, kept
}

func storeTestDelete(t *testing.T, s chat.Store, _ func() chat.Store) {
	w := newStoreWorld()
	c := w.conversation("cnv_delete", 0)
	changes, doomed, kept := storeDeleteFixture(c)
	for _, ch := range changes[:len(changes)-1] {
		storeCommit(t, s, 0, ch)
	}
	mids := []string{doomed.ID, kept.ID}
	if found := storeFindSecrets(t, s, c.conv.ID, mids, storeSecrets...); len(found) != len(storeSecrets) {
		t.Fatalf("before the deletion, only %q of %q are returned", found, storeSecrets)
	}
	storeCommit(t, s, 0, changes[len(changes)-1])

	storeCheckScrubbed(t, s, c, doomed.ID)
	if found := storeFindSecrets(t, s, c.conv.ID, mids, storeSecrets...); len(found) > 0 {
		t.Errorf("deleted content %q is still returned", found)
	}
	got, err := s.Message(t.Context(), c.conv.ID, kept.ID)
	if err != nil || got.Text != "keep me around" {
		t.Errorf("the other message changed: %s, %v", storeShow(got), err)
	}
	msgs, _, err := s.Messages(t.Context(), c.conv.ID, chat.MessagePage{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Messages lists the tombstone in place", msgs, c.messages())

	// Replaying the deletion changes nothing.
	storeCommit(t, s, 0, changes[len(changes)-1])
	storeCheckScrubbed(t, s, c, doomed.ID)
}

func storeTestDeleteSameCommit(t *testing.T, s chat.Store, _ func() chat.Store) {
	w := newStoreWorld()
	c := w.conversation("cnv_delete_batch", 4)
	changes, doomed, kept := storeDeleteFixture(c)
	storeCommit(t, s, 4, changes...)
	storeCheckScrubbed(t, s, c, doomed.ID)
	if found := storeFindSecrets(t, s, c.conv.ID, []string{doomed.ID, kept.ID}, storeSecrets...); len(found) > 0 {
		t.Errorf("deleted content %q is still returned", found)
	}
}

func storeTestDedup(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	a := w.conversation("cnv_dedup_a", 0)
	b := w.conversation("cnv_dedup_b", 0)
	storeCommit(t, s, 0, a.create(chat.KindGroup, "", "alice", "bob"), b.create(chat.KindGroup, "", "alice"))
	ch1, m1 := a.send("alice", "same-client-id", "one")
	ch2, m2 := a.send("bob", "same-client-id", "two")
	ch3, _ := a.send("alice", "", "no client id")
	storeCommit(t, s, 0, ch1, ch2, ch3)

	for _, tc := range []struct {
		cid, sender, client, want string
	}{
		{a.conv.ID, "alice", "same-client-id", m1.ID},
		{a.conv.ID, "bob", "same-client-id", m2.ID},
		{a.conv.ID, "alice", "other-client-id", ""},
		{a.conv.ID, "carol", "same-client-id", ""},
		{b.conv.ID, "alice", "same-client-id", ""},
		{"cnv_unknown", "alice", "same-client-id", ""},
	} {
		got, err := s.Dedup(ctx, tc.cid, tc.sender, tc.client)
		switch {
		case tc.want == "" && !chat.IsNotFound(err):
			t.Errorf("Dedup(%s, %s, %s): %q, %v; want not_found", tc.cid, tc.sender, tc.client, got, err)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("Dedup(%s, %s, %s): %q, %v; want %q", tc.cid, tc.sender, tc.client, got, err, tc.want)
		}
		many, err := s.Dedups(ctx, tc.cid, tc.sender, []string{"not-this-one", tc.client})
		want := map[string]string{}
		if tc.want != "" {
			want[tc.client] = tc.want
		}
		if err != nil || !maps.Equal(many, want) {
			t.Errorf("Dedups(%s, %s, [not-this-one %s]): %v, %v; want %v", tc.cid, tc.sender, tc.client, many, err, want)
		}
	}
	// Many at once (more than one query's worth on Cassandra), and none.
	var ids []string
	want := map[string]string{}
	var changes []chat.Change
	for i := range 150 {
		id := fmt.Sprintf("bulk-%03d", i)
		ids = append(ids, id)
		if i%3 == 0 {
			ch, m := b.send("alice", id, "bulk")
			changes = append(changes, ch)
			want[id] = m.ID
		}
	}
	storeCommit(t, s, 1, changes...)
	if got, err := s.Dedups(ctx, b.conv.ID, "alice", ids); err != nil || !maps.Equal(got, want) {
		t.Errorf("Dedups of 150 client_ids: %d found, %v; want %d", len(got), err, len(want))
	}
	if got, err := s.Dedups(ctx, b.conv.ID, "alice", nil); err != nil || len(got) != 0 {
		t.Errorf("Dedups of none: %v, %v", got, err)
	}

	// A sender's records at once: all of them when they fit the limit,
	// else that many of them and false.
	for _, tc := range []struct {
		name, cid, sender string
		limit             int
		want              map[string]string
		complete          bool
	}{
		{"alice in a", a.conv.ID, "alice", 10, map[string]string{"same-client-id": m1.ID}, true},
		{"bob in a", a.conv.ID, "bob", 1, map[string]string{"same-client-id": m2.ID}, true},
		{"carol in a", a.conv.ID, "carol", 1, map[string]string{}, true},
		{"an unknown conversation", "cnv_unknown", "alice", 5, map[string]string{}, true},
		{"alice in b, at the limit", b.conv.ID, "alice", len(want), want, true},
	} {
		got, complete, err := s.SenderDedups(ctx, tc.cid, tc.sender, tc.limit)
		if err != nil || complete != tc.complete || !maps.Equal(got, tc.want) {
			t.Errorf("SenderDedups, %s: %d records, complete %v, %v; want %d, %v", tc.name, len(got), complete, err, len(tc.want), tc.complete)
		}
	}
	got, complete, err := s.SenderDedups(ctx, b.conv.ID, "alice", len(want)-1)
	if err != nil || complete || len(got) != len(want)-1 {
		t.Errorf("SenderDedups under the limit: %d records, complete %v, %v; want %d, false", len(got), complete, err, len(want)-1)
	}
	for id, mid := range got {
		if want[id] != mid {
			t.Errorf("SenderDedups under the limit: %s -> %s, want %s", id, mid, want[id])
		}
	}
	if _, _, err := s.SenderDedups(ctx, b.conv.ID, "alice", 0); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Errorf("SenderDedups with limit 0: %v; want invalid", err)
	}
}

func storeTestHeads(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	a := w.conversation("cnv_heads_a", 2)
	a2 := w.conversation("cnv_heads_a2", 2)
	b := w.conversation("cnv_heads_b", 5)
	heads, err := s.Heads(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Heads of an empty store", heads, make([]int64, 8))

	createA := a.create(chat.KindGroup, "", "alice")
	storeCommit(t, s, 2, createA, a2.create(chat.KindGroup, "", "bob"))
	early, _ := a2.send("bob", "", "sequenced first, committed last")
	late, _ := a.send("alice", "", "sequenced last, committed first")
	storeCommit(t, s, 2, late)
	high := storeHeadOf([]chat.Change{late})
	storeCommit(t, s, 5, b.create(chat.KindGroup, "", "carol"))
	headB := b.conv.LastPosition

	// A commit whose head is lower does not move the head back, nor does
	// a replay.
	storeCommit(t, s, 2, early)
	storeCommit(t, s, 2, createA)

	heads, err = s.Heads(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Heads", heads, []int64{0, 0, high, 0, 0, headB, 0, 0})
	heads, err = s.Heads(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Heads of fewer partitions", heads, []int64{0, 0, high})

	ch, _ := a.send("alice", "", "newest")
	storeCommit(t, s, 2, ch)
	heads, err = s.Heads(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	if heads[2] != a.conv.LastPosition {
		t.Errorf("head of partition 2 is %d, want %d", heads[2], a.conv.LastPosition)
	}
}

func storeTestMeta(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	for _, tc := range []struct{ key, value, want string }{
		{"deployment", "first", "first"},
		{"deployment", "second", "first"},
		{"partitions", "64", "64"},
		{"partitions", "8", "64"},
		{"deployment", "third", "first"},
	} {
		got, err := s.Meta(ctx, tc.key, tc.value)
		if err != nil || got != tc.want {
			t.Errorf("Meta(%s, %s): %q, %v; want %q", tc.key, tc.value, got, err, tc.want)
		}
	}

	const callers = 8
	got := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			v, err := s.Meta(ctx, "raced", fmt.Sprintf("value-%d", i))
			if err != nil {
				t.Errorf("Meta: %v", err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	if !strings.HasPrefix(got[0], "value-") {
		t.Fatalf("Meta returned %q", got[0])
	}
	for i, v := range got {
		if v != got[0] {
			t.Errorf("caller %d got %q, caller 0 got %q: set-if-absent has two winners", i, v, got[0])
		}
	}
}

func storeTestLeftMemberships(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	left := w.conversation("cnv_left", 1)
	stays := w.conversation("cnv_stays", 1)
	back := w.conversation("cnv_back", 1)
	storeCommit(t, s, 1,
		left.create(chat.KindGroup, "", "alice", "bob", "carol"),
		stays.create(chat.KindGroup, "", "bob"),
		back.create(chat.KindGroup, "", "alice", "bob"))
	storeCommit(t, s, 1, left.remove("bob"), back.remove("bob"))
	storeCommit(t, s, 1, back.add("bob"))

	ms, err := s.Memberships(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Memberships of bob", ms, []chat.Membership{left.mships["bob"], stays.mships["bob"], back.mships["bob"]})
	m, err := s.Membership(ctx, left.conv.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if m.Active || m.LeftPosition != left.conv.LastPosition || m.JoinedPosition == 0 {
		t.Errorf("left membership: %+v", m)
	}
	m, err = s.Membership(ctx, back.conv.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Active || m.LeftPosition != 0 || m.JoinedPosition != back.conv.LastPosition {
		t.Errorf("rejoined membership: %+v", m)
	}
	c, err := s.Conversation(ctx, left.conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.HasMember("bob") {
		t.Errorf("bob left but is listed: %v", c.Members)
	}
	storeCheckConversation(t, s, left)
	storeCheckConversation(t, s, back)
	ms, err = s.Memberships(ctx, "nobody")
	if err != nil || len(ms) != 0 {
		t.Errorf("Memberships of an unknown user: %v, %v; want none", ms, err)
	}
}

func storeTestMembers(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_members", 2)
	other := w.conversation("cnv_other", 2)
	storeCommit(t, s, 2, c.create(chat.KindGroup, "", "mallory", "bob", "alice", "dave"), other.create(chat.KindGroup, "", "zed"))
	storeCommit(t, s, 2, c.add("carol"), c.add("erin"), c.remove("bob"))
	storeCommit(t, s, 2, c.remove("dave"))
	storeCommit(t, s, 2, c.add("dave"))
	// A read position moves: the membership row is written, nobody joins.
	x := c.begin("alice")
	x.emit(chat.Event{Type: chat.EventReadUpdated, UserID: "alice", ReadSeq: 1})
	ms := c.mships["alice"]
	ms.ReadSeq = 1
	x.putMembership(ms)
	storeCommit(t, s, 2, x.done())

	want := []string{"alice", "carol", "dave", "erin", "mallory"}
	all, err := s.Members(ctx, c.conv.ID, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Members", all, want)
	var paged []string
	after := ""
	for range 10 {
		page, err := s.Members(ctx, c.conv.ID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("page of limit 2 has %d members", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	storeExpect(t, "Members paged by 2", paged, want)
	page, err := s.Members(ctx, c.conv.ID, "bob", 2) // after a user who left
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Members after bob", page, []string{"carol", "dave"})
	for _, q := range []struct{ cid, after string }{{c.conv.ID, "mallory"}, {c.conv.ID, "zzz"}, {"cnv_missing", ""}} {
		page, err := s.Members(ctx, q.cid, q.after, 10)
		if err != nil || len(page) != 0 {
			t.Errorf("Members(%s, after %q) = %v, %v; want none", q.cid, q.after, page, err)
		}
	}
	page, err = s.Members(ctx, other.conv.ID, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Members of another conversation", page, []string{"zed"})
	if _, err := s.Members(ctx, c.conv.ID, "", 0); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Errorf("Members with limit 0: %v, want invalid_request", err)
	}
}

func storeTestNotFound(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_exists", 0)
	storeCommit(t, s, 0, c.create(chat.KindGroup, "", "alice"))
	ch, m := c.send("alice", "a-1", "hi")
	storeCommit(t, s, 0, ch)

	checks := map[string]func() error{
		"Conversation of an unknown id": func() error { _, err := s.Conversation(ctx, "cnv_missing"); return err },
		"Message of an unknown id":      func() error { _, err := s.Message(ctx, c.conv.ID, "msg_missing"); return err },
		"Message of another conversation": func() error {
			_, err := s.Message(ctx, "cnv_missing", m.ID)
			return err
		},
		"Membership of a non-member":            func() error { _, err := s.Membership(ctx, c.conv.ID, "bob"); return err },
		"Membership in an unknown conversation": func() error { _, err := s.Membership(ctx, "cnv_missing", "alice"); return err },
		"Dedup of an unknown client_id":         func() error { _, err := s.Dedup(ctx, c.conv.ID, "alice", "a-2"); return err },
	}
	for name, check := range checks {
		if err := check(); !chat.IsNotFound(err) {
			t.Errorf("%s: err %v, want not_found", name, err)
		}
	}
}

func storeTestReopen(t *testing.T, s chat.Store, reopen func() chat.Store) {
	if reopen == nil {
		t.Skip("the adapter keeps nothing across Close")
	}
	ctx := t.Context()
	w := newStoreWorld()
	a := w.conversation("cnv_durable_a", 0)
	b := w.conversation("cnv_durable_b", 3)
	changes, doomed, _ := storeDeleteFixture(a)
	storeCommit(t, s, 0, changes...)
	storeCommit(t, s, 3, b.create(chat.KindGroup, "B", "bob", "carol"))
	storeCommit(t, s, 3, b.remove("carol"))
	if _, err := s.Meta(ctx, "deployment", "d1"); err != nil {
		t.Fatal(err)
	}
	stale := a.fork()
	cids, uids := []string{a.conv.ID, b.conv.ID}, []string{"alice", "bob", "carol"}
	before := storeDump(t, s, cids, uids, 4)

	s = reopen()
	storeSameDump(t, "after reopen", storeDump(t, s, cids, uids, 4), before)
	storeCheckConversation(t, s, a)
	storeCheckConversation(t, s, b)
	storeCheckScrubbed(t, s, a, doomed.ID)
	if v, err := s.Meta(ctx, "deployment", "d2"); err != nil || v != "d1" {
		t.Errorf("Meta after reopen: %q, %v; want d1", v, err)
	}
	if mid, err := s.Dedup(ctx, a.conv.ID, "alice", "a-1"); err != nil || mid != doomed.ID {
		t.Errorf("Dedup after reopen: %q, %v", mid, err)
	}
	// Writing goes on, and fencing holds across restarts.
	ch, _ := a.send("bob", "", "after the restart")
	storeCommit(t, s, 0, ch)
	staleCh, _ := stale.send("alice", "", "stale")
	if err := s.Commit(ctx, 0, storeOwner(t, s, 0), storeHeadOf([]chat.Change{staleCh}), []chat.Change{staleCh}); !chat.IsConflict(err) {
		t.Errorf("stale commit after reopen: %v, want a conflict", err)
	}
	storeCommit(t, s, 0, changes...) // replays after a restart are no-ops
	storeCheckConversation(t, s, a)

	s = reopen()
	storeCheckConversation(t, s, a)
}

func storeTestConcurrent(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	const writers, sends, partitions = 4, 15, 2
	w := newStoreWorld()
	convs := make([]*storeConv, writers)
	ids := make([]string, writers)
	for i := range convs {
		ids[i] = fmt.Sprintf("cnv_concurrent_%d", i)
		convs[i] = w.conversation(ids[i], i%partitions)
	}
	heads := make([]int64, writers)
	epochs := make([]int64, partitions)
	for p := range epochs {
		epochs[p] = storeOwner(t, s, p)
	}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			seen := make([]int64, partitions)
			for {
				select {
				case <-stop:
					return
				default:
				}
				hs, err := s.Heads(ctx, partitions)
				if err != nil {
					t.Errorf("Heads: %v", err)
					return
				}
				for p, h := range hs {
					if h < seen[p] {
						t.Errorf("head of partition %d went back from %d to %d", p, seen[p], h)
					}
					seen[p] = h
				}
				for _, id := range ids {
					c, err := s.Conversation(ctx, id)
					if chat.IsNotFound(err) {
						continue
					}
					if err != nil {
						t.Errorf("Conversation: %v", err)
						return
					}
					evs, err := s.Events(ctx, id, 0, storeAll)
					if err != nil {
						t.Errorf("Events: %v", err)
						return
					}
					if int64(len(evs)) < c.LastSeq {
						t.Errorf("%s: %d events after reading last_seq %d", id, len(evs), c.LastSeq)
					}
					for i, ev := range evs {
						if ev.Seq != int64(i+1) {
							t.Errorf("%s: event %d has seq %d: a gap or a partial commit", id, i, ev.Seq)
							break
						}
					}
					if _, _, err := s.Messages(ctx, id, chat.MessagePage{Limit: 5}); err != nil {
						t.Errorf("Messages: %v", err)
					}
				}
			}
		})
	}

	var writing sync.WaitGroup
	for i, c := range convs {
		writing.Go(func() {
			create := c.create(chat.KindGroup, "", "alice", "bob")
			if err := s.Commit(ctx, c.partition, epochs[c.partition], storeHeadOf([]chat.Change{create}), []chat.Change{create}); err != nil {
				t.Errorf("Commit: %v", err)
				return
			}
			for k := range sends {
				ch, _ := c.send("alice", fmt.Sprintf("c-%d", k), fmt.Sprintf("message %d", k))
				head := storeHeadOf([]chat.Change{ch})
				if err := s.Commit(ctx, c.partition, epochs[c.partition], head, []chat.Change{ch}); err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
				heads[i] = head
			}
		})
	}
	writing.Wait()
	close(stop)
	readers.Wait()
	if t.Failed() {
		return
	}

	want := make([]int64, partitions)
	for i, c := range convs {
		want[c.partition] = max(want[c.partition], heads[i])
		storeCheckConversation(t, s, c)
	}
	got, err := s.Heads(ctx, partitions)
	if err != nil {
		t.Fatal(err)
	}
	storeExpect(t, "Heads after concurrent commits", got, want)
}

func storeTestCompeting(t *testing.T, s chat.Store, _ func() chat.Store) {
	ctx := t.Context()
	w := newStoreWorld()
	c := w.conversation("cnv_race", 0)
	storeCommit(t, s, 0, c.create(chat.KindGroup, "", "alice", "bob"))
	const rivals = 4
	for round := range 5 {
		forks := make([]*storeConv, rivals)
		changes := make([]chat.Change, rivals)
		for i := range forks {
			forks[i] = c.fork()
			changes[i], _ = forks[i].send("alice", fmt.Sprintf("r%d-%d", round, i), fmt.Sprintf("rival %d", i))
		}
		errs := make([]error, rivals)
		epoch := storeOwner(t, s, 0)
		var wg sync.WaitGroup
		for i := range rivals {
			wg.Go(func() {
				errs[i] = s.Commit(ctx, 0, epoch, storeHeadOf(changes[i:i+1]), changes[i:i+1])
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: rivals %d and %d both committed seq %d", round, winner, i, changes[i].Events[0].Seq)
			case err == nil:
				winner = i
			case !chat.IsConflict(err):
				t.Fatalf("round %d: rival %d: %v, want a conflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no rival committed", round)
		}
		c = forks[winner]
		for i := range forks {
			if i == winner {
				continue
			}
			dd := changes[i].Dedups[0]
			if _, err := s.Dedup(ctx, dd.ConversationID, dd.SenderID, dd.ClientID); !chat.IsNotFound(err) {
				t.Errorf("round %d: a losing rival's dedup record is stored (%v)", round, err)
			}
		}
	}
	storeCheckConversation(t, s, c)
}

// storeTestProfiles: a profile's name is the latest claimed one until the
// user sets one; a later claim never replaces a set name; ids without a
// profile are absent; profiles survive a reopen.
func storeTestProfiles(t *testing.T, s chat.Store, reopen func() chat.Store) {
	ctx := t.Context()
	sfx := fmt.Sprintf("%d", time.Now().UnixNano())
	ann, bob, ghost := "ann-"+sfx, "bob-"+sfx, "ghost-"+sfx
	users := func(st chat.Store, want map[string]chat.User) {
		t.Helper()
		got, err := st.Users(ctx, []string{ann, bob, ghost, ann})
		if err != nil {
			t.Fatalf("Users: %v", err)
		}
		storeExpect(t, "Users", got, want)
	}
	users(s, map[string]chat.User{})
	for _, step := range []struct {
		uid, name string
		claimed   bool
	}{
		{ann, "Ann", true},
		{ann, "Ann L", true},
		{bob, "Bob", true},
		{bob, "Robert", false},
		{bob, "Bobby", true},
	} {
		if err := s.SetUserName(ctx, step.uid, step.name, step.claimed); err != nil {
			t.Fatalf("SetUserName(%s, %s, %v): %v", step.uid, step.name, step.claimed, err)
		}
	}
	want := map[string]chat.User{ann: {ID: ann, Name: "Ann L"}, bob: {ID: bob, Name: "Robert"}}
	users(s, want)
	if err := s.SetUserName(ctx, ann, "Ann Set", false); err != nil {
		t.Fatal(err)
	}
	want[ann] = chat.User{ID: ann, Name: "Ann Set"}
	users(s, want)
	if err := s.SetUserName(ctx, "", "x", true); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Errorf("SetUserName with an empty id: %v, want invalid_request", err)
	}
	if reopen != nil {
		users(reopen(), want)
	}
}

// storeTestSettings: a member's settings read back per user, are replaced
// by the next put, and are untouched by Commits that rewrite the member's
// membership row (a read position, a send).
func storeTestSettings(t *testing.T, s chat.Store, reopen func() chat.Store) {
	ctx := t.Context()
	got, err := s.Settings(ctx, "alice")
	if err != nil || len(got) != 0 {
		t.Fatalf("Settings of a user without any: %v, %v; want empty", got, err)
	}
	w := newStoreWorld()
	a := w.conversation("cnv_settings", 1)
	storeCommit(t, s, 1, a.create(chat.KindGroup, "S", "alice", "bob"))
	cid := a.conv.ID
	if err := s.PutSettings(ctx, "alice", cid, chat.ConversationSettings{Muted: true}); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	if err := s.PutSettings(ctx, "bob", "cnv_other", chat.ConversationSettings{Muted: true}); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	// A Commit rewriting alice's membership row must leave the setting be.
	sent, _ := a.send("alice", "c1", "hello")
	storeCommit(t, s, 1, sent)
	want := map[string]chat.ConversationSettings{cid: {Muted: true}}
	if got, err := s.Settings(ctx, "alice"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Settings(alice) after a send: %v, %v; want %v", got, err, want)
	}
	if got, err := s.Settings(ctx, "bob"); err != nil || !reflect.DeepEqual(got, map[string]chat.ConversationSettings{"cnv_other": {Muted: true}}) {
		t.Errorf("Settings(bob): %v, %v", got, err)
	}
	if err := s.PutSettings(ctx, "alice", cid, chat.ConversationSettings{}); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	want = map[string]chat.ConversationSettings{cid: {}}
	if got, err := s.Settings(ctx, "alice"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Settings(alice) after unmuting: %v, %v; want %v", got, err, want)
	}
	if reopen != nil {
		if err := s.PutSettings(ctx, "carol", cid, chat.ConversationSettings{Muted: true}); err != nil {
			t.Fatalf("PutSettings: %v", err)
		}
		s = reopen()
		if got, err := s.Settings(ctx, "carol"); err != nil || !got[cid].Muted {
			t.Errorf("Settings(carol) after reopen: %v, %v; want muted", got, err)
		}
	}
}

// storeTestDevices: devices are per user (the same id under two users is
// two devices), PutDevice tells new from replaced and keeps CreatedAt,
// Devices lists in id order, DeleteDevice of a missing one is not_found,
// and at most MaxDevicesPerUser new ones are taken.
func storeTestDevices(t *testing.T, s chat.Store, reopen func() chat.Store) {
	ctx := t.Context()
	if got, err := s.Devices(ctx, "alice"); err != nil || len(got) != 0 {
		t.Fatalf("Devices of a user without any: %v, %v; want empty", got, err)
	}
	web := chat.Device{ID: "phone", UserID: "alice", Kind: chat.DeviceWebPush, Endpoint: "https://push.example.com/a",
		Keys: &chat.WebPushKeys{P256DH: "key", Auth: "auth"}, CreatedAt: storeEpoch, UpdatedAt: storeEpoch}
	hook := chat.Device{ID: "laptop", UserID: "alice", Kind: chat.DeviceWebhook, Platform: chat.PlatformFCM, Token: "tok",
		CreatedAt: storeEpoch, UpdatedAt: storeEpoch}
	bobs := chat.Device{ID: "phone", UserID: "bob", Kind: chat.DeviceWebhook, Platform: chat.PlatformAPNs, Token: "bob-token",
		CreatedAt: storeEpoch, UpdatedAt: storeEpoch}
	for _, d := range []chat.Device{web, hook, bobs} {
		created, err := s.PutDevice(ctx, d)
		if err != nil || !created {
			t.Fatalf("PutDevice(%s/%s): %v, %v; want created", d.UserID, d.ID, created, err)
		}
	}
	later := storeEpoch.Add(time.Hour)
	replaced := web
	replaced.Endpoint, replaced.CreatedAt, replaced.UpdatedAt = "https://push.example.com/b", later, later
	created, err := s.PutDevice(ctx, replaced)
	if err != nil || created {
		t.Fatalf("PutDevice again: %v, %v; want replaced", created, err)
	}
	replaced.CreatedAt = storeEpoch // kept from the first registration
	got, err := s.Devices(ctx, "alice")
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if want := []chat.Device{hook, replaced}; !devicesEqual(got, want) {
		t.Errorf("Devices(alice):\n got %+v\nwant %+v", got, want)
	}
	if got, err := s.Devices(ctx, "bob"); err != nil || !devicesEqual(got, []chat.Device{bobs}) {
		t.Errorf("Devices(bob): %+v, %v", got, err)
	}
	if err := s.DeleteDevice(ctx, "bob", "laptop"); !chat.IsNotFound(err) {
		t.Errorf("DeleteDevice of another user's id: %v, want not_found", err)
	}
	if err := s.DeleteDevice(ctx, "alice", "phone"); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	if err := s.DeleteDevice(ctx, "alice", "phone"); !chat.IsNotFound(err) {
		t.Errorf("DeleteDevice twice: %v, want not_found", err)
	}
	if got, err := s.Devices(ctx, "bob"); err != nil || len(got) != 1 {
		t.Errorf("Devices(bob) after alice deleted her phone: %+v, %v", got, err)
	}
	if created, err := s.PutDevice(ctx, web); err != nil || !created {
		t.Errorf("PutDevice after delete: %v, %v; want created", created, err)
	}

	for i := range chat.MaxDevicesPerUser {
		d := chat.Device{ID: fmt.Sprintf("d%03d", i), UserID: "dave", Kind: chat.DeviceWebhook, Platform: chat.PlatformOther, Token: "t", CreatedAt: storeEpoch, UpdatedAt: storeEpoch}
		if _, err := s.PutDevice(ctx, d); err != nil {
			t.Fatalf("PutDevice %d: %v", i, err)
		}
	}
	over := chat.Device{ID: "one-too-many", UserID: "dave", Kind: chat.DeviceWebhook, Platform: chat.PlatformOther, Token: "t", CreatedAt: storeEpoch, UpdatedAt: storeEpoch}
	if _, err := s.PutDevice(ctx, over); chat.ErrorCode(err) != chat.CodeConflict {
		t.Errorf("PutDevice beyond %d: %v, want conflict", chat.MaxDevicesPerUser, err)
	}
	again := chat.Device{ID: "d000", UserID: "dave", Kind: chat.DeviceWebhook, Platform: chat.PlatformOther, Token: "t2", CreatedAt: storeEpoch, UpdatedAt: storeEpoch}
	if created, err := s.PutDevice(ctx, again); err != nil || created {
		t.Errorf("replacing a device at the limit: %v, %v; want replaced", created, err)
	}
	if reopen != nil {
		s = reopen()
		if got, err := s.Devices(ctx, "bob"); err != nil || !devicesEqual(got, []chat.Device{bobs}) {
			t.Errorf("Devices(bob) after reopen: %+v, %v", got, err)
		}
	}
}

func devicesEqual(a, b []chat.Device) bool {
	norm := func(ds []chat.Device) []chat.Device {
		out := make([]chat.Device, len(ds))
		for i, d := range ds {
			d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC().Truncate(time.Millisecond), d.UpdatedAt.UTC().Truncate(time.Millisecond)
			out[i] = d
		}
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

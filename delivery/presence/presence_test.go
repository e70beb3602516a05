package presence

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/internal/testutil"
)

// fakeDir is a Directory over in-memory conversations that counts reads.
type fakeDir struct {
	mu    sync.Mutex
	rooms map[string]*fakeRoom

	conversations, room, isMember, members atomic.Int64
	// down makes every read fail, as a Store that is down.
	down atomic.Bool
}

type fakeRoom struct {
	seq     int64
	members []string
}

func newFakeDir() *fakeDir { return &fakeDir{rooms: map[string]*fakeRoom{}} }

func (d *fakeDir) set(cid string, seq int64, members ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rooms[cid] = &fakeRoom{seq: seq, members: members}
}

func (d *fakeDir) Conversations(_ context.Context, user string) ([]string, error) {
	d.conversations.Add(1)
	if d.down.Load() {
		return nil, chat.Errorf(chat.CodeUnavailable, "down")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for cid, r := range d.rooms {
		if slices.Contains(r.members, user) {
			out = append(out, cid)
		}
	}
	return out, nil
}

func (d *fakeDir) Room(_ context.Context, cid string, max int) (Room, error) {
	d.room.Add(1)
	if d.down.Load() {
		return Room{}, chat.Errorf(chat.CodeUnavailable, "down")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.rooms[cid]
	if r == nil {
		return Room{}, chat.ErrNotFound
	}
	out := Room{Seq: r.seq, Count: len(r.members)}
	if out.Count <= max {
		out.Members = slices.Clone(r.members)
	}
	return out, nil
}

func (d *fakeDir) IsMember(_ context.Context, cid, uid string) (bool, error) {
	d.isMember.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.rooms[cid]
	return r != nil && slices.Contains(r.members, uid), nil
}

func (d *fakeDir) Members(_ context.Context, cid, after string, limit int) ([]string, error) {
	d.members.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.rooms[cid]
	if r == nil {
		return nil, nil
	}
	ms := slices.Clone(r.members)
	sort.Strings(ms)
	var out []string
	for _, m := range ms {
		if m > after && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

// fakeOut is a Deliverer whose every user has one connection: it counts
// deliveries and keeps the presence events each user got.
type fakeOut struct {
	mu         sync.Mutex
	connected  map[string]bool
	got        map[string][]string // user -> "who:online" in order
	deliveries int
}

func newFakeOut() *fakeOut { return &fakeOut{connected: map[string]bool{}, got: map[string][]string{}} }

func (o *fakeOut) connect(u string) {
	o.mu.Lock()
	o.connected[u] = true
	o.mu.Unlock()
}

func (o *fakeOut) Ephemeral(users []string, e chat.Ephemeral) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, u := range users {
		if o.connected[u] {
			o.deliveries++
			o.got[u] = append(o.got[u], fmt.Sprintf("%s:%v", e.UserID, *e.Online))
		}
	}
}

func (o *fakeOut) events(u string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.got[u])
}

func (o *fakeOut) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.deliveries
}

// fakeWatcher is a connection that watches.
type fakeWatcher struct {
	user string
	mu   sync.Mutex
	got  []string
}

func (w *fakeWatcher) UserID() string { return w.user }
func (w *fakeWatcher) Presence(e chat.Ephemeral) {
	w.mu.Lock()
	w.got = append(w.got, fmt.Sprintf("%s:%v", e.UserID, *e.Online))
	w.mu.Unlock()
}
func (w *fakeWatcher) n() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.got)
}
func (w *fakeWatcher) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.got
	w.got = nil
	return g
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start runs a tracker on an in-process log until the test ends, and
// waits until it reads its own records.
func start(t *testing.T, cfg Config, dir Directory, out Deliverer) (*Tracker, *memlog.Log) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	tr := New(cfg, "gw-test", lg, dir, out, quiet)
	done := make(chan struct{})
	go func() { defer close(done); _ = tr.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; lg.Close() })
	eventually(t, "the tracker reads its own records", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		_, ok := tr.seen[tr.id]
		return ok
	})
	return tr, lg
}

// eventually waits until f holds (testutil.Eventually, with a name).
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() error {
		if !f() {
			return fmt.Errorf("waiting until %s", what)
		}
		return nil
	})
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func member(typ, cid, uid string, seq int64) op {
	return op{kind: opMember, ev: chat.Event{Type: typ, ConversationID: cid, UserID: uid, Seq: seq}}
}

// TestIndexFollowsMembershipEvents: the contacts of a user come from the
// index, which follows member.added/removed events, drops a conversation's
// member list once it grows past the cut-off, reads it again once it
// shrinks back, and copes with events older than what it read.
func TestIndexFollowsMembershipEvents(t *testing.T) {
	ctx := context.Background()
	dir := newFakeDir()
	dir.set("small", 1, "alice", "bob")
	dir.set("big", 1, "alice", "u1", "u2", "u3")
	tr := New(Config{MaxMembers: 3}, "gw", nil, dir, newFakeOut(), quiet)
	apply := func(ops ...op) {
		t.Helper()
		if failed := tr.applyOps(ctx, ops); len(failed) > 0 {
			t.Fatalf("failed ops: %v", failed)
		}
	}
	contacts := func(u string) []string { return sorted(tr.idx.contacts(u)) }
	check := func(step, u string, want ...string) {
		t.Helper()
		if got := contacts(u); !slices.Equal(got, sorted(want)) {
			t.Fatalf("%s: contacts of %s = %v, want %v", step, u, got, want)
		}
	}

	tr.Connected("alice")
	apply(tr.takeOps()...)
	check("loaded", "bob", "bob", "alice")
	check("loaded", "u1", "u1") // the big room gives no contacts

	dir.set("small", 2, "alice", "bob", "carol")
	apply(member(chat.EventMemberAdded, "small", "carol", 2))
	check("carol joined", "carol", "carol", "alice")

	dir.set("small", 3, "alice", "bob", "carol", "dave")
	apply(member(chat.EventMemberAdded, "small", "dave", 3))
	check("grew past the cut-off", "bob", "bob")
	apply(member(chat.EventMemberAdded, "small", "dave", 3)) // a replayed duplicate
	if r := tr.idx.rooms["small"]; r.count != 4 {
		t.Fatalf("a duplicate event counted again: %d members", r.count)
	}

	dir.set("small", 4, "alice", "bob", "carol")
	apply(member(chat.EventMemberRemoved, "small", "dave", 4))
	check("shrank to the cut-off", "bob", "bob", "alice")

	// A conversation created with two local users: its read (seq 2)
	// already holds the second member.added, which must still count.
	tr.Connected("erin")
	apply(tr.takeOps()...)
	dir.set("new", 2, "alice", "erin")
	apply(member(chat.EventMemberAdded, "new", "alice", 1), member(chat.EventMemberAdded, "new", "erin", 2))
	check("created with two local users", "alice", "alice", "erin")
	check("created with two local users", "erin", "erin", "alice")

	dir.set("small", 5, "bob", "carol")
	apply(member(chat.EventMemberRemoved, "small", "alice", 5))
	check("alice left", "bob", "bob")
	if _, ok := tr.idx.rooms["small"]; ok {
		t.Fatal("a conversation no local user is in stays indexed")
	}

	tr.idx.unloadUser("alice")
	tr.idx.unloadUser("erin")
	if len(tr.idx.rooms) != 0 || len(tr.idx.byMember) != 0 || len(tr.idx.users) != 0 {
		t.Fatalf("index not empty after every user left: %d rooms, %d members, %d users", len(tr.idx.rooms), len(tr.idx.byMember), len(tr.idx.users))
	}
}

// TestConnectingABigRoomCostsLinearly: n members of one room connecting
// cost n presence deliveries (each to its own connection), n reads of a
// user's conversations and one read of the room. The code before this
// package told every member of every conversation of each user that came
// online: n(n+1)/2 deliveries, and n reads of the room's whole member
// list. A room under the cut-off still tells its members, as before.
func TestConnectingABigRoomCostsLinearly(t *testing.T) {
	for _, tc := range []struct {
		members, max   int
		wantDeliveries func(n int) int
	}{
		{1000, 100, func(n int) int { return n }},
		{2000, 100, func(n int) int { return n }},
		{50, 100, func(n int) int { return n * (n + 1) / 2 }},
	} {
		t.Run(fmt.Sprintf("%d members, max %d", tc.members, tc.max), func(t *testing.T) {
			dir := newFakeDir()
			users := make([]string, tc.members)
			for i := range users {
				users[i] = fmt.Sprintf("u%05d", i)
			}
			dir.set("room", 1, users...)
			out := newFakeOut()
			tr, _ := start(t, Config{MaxMembers: tc.max, Window: 50 * time.Millisecond}, dir, out)
			for _, u := range users {
				out.connect(u)
				tr.Connected(u)
				if tc.members <= tc.max {
					// Let each announcement go out before the next user
					// connects, as when connects are spread over seconds.
					eventually(t, u+" hears of itself", func() bool { return len(out.events(u)) > 0 })
				}
			}
			for _, u := range users {
				eventually(t, u+" hears of itself", func() bool { return len(out.events(u)) > 0 })
			}
			n := tc.members
			if got, want := out.count(), tc.wantDeliveries(n); got != want {
				t.Fatalf("%d presence deliveries, want %d", got, want)
			}
			// A marker user connected last is loaded last (loads are
			// queued in order): once its conversations are read, every
			// read of the others has been made, so a count above n+1
			// would be a read too many.
			tr.Connected("marker")
			eventually(t, "the marker's conversations are read", func() bool { return dir.conversations.Load() >= int64(n)+1 })
			if got := dir.conversations.Load(); got != int64(n)+1 {
				t.Fatalf("%d reads of a user's conversations, want %d (and the marker's)", got-1, n)
			}
			if got := dir.room.Load(); got != 1 {
				t.Fatalf("%d reads of the room, want 1", got)
			}
			t.Logf("%d members: %d deliveries, %d room reads (the code before: %d deliveries, %d member-list reads)", n, out.count(), dir.room.Load(), n*(n+1)/2, n)
		})
	}
}

// appendRecords writes ephemeral records as another gateway would.
func appendRecords(t *testing.T, lg chat.Log, recs ...record) {
	t.Helper()
	var rs []*chat.Record
	for _, r := range recs {
		b, _ := json.Marshal(r)
		rs = append(rs, &chat.Record{Key: r.Gateway, Value: b})
	}
	if err := lg.Append(context.Background(), chat.TopicEphemeral, rs...); err != nil {
		t.Fatal(err)
	}
}

// TestChangesAreCoalescedPerUser: the first change of a user goes out at
// once; online→offline→online within the window says nothing more, and
// a burst that ends in another state says that state once, at the
// window's end.
func TestChangesAreCoalescedPerUser(t *testing.T) {
	dir := newFakeDir()
	dir.set("dm", 1, "alice", "bob")
	out := newFakeOut()
	window := 300 * time.Millisecond
	tr, lg := start(t, Config{Window: window}, dir, out)
	out.connect("alice")
	tr.Connected("alice")
	eventually(t, "alice hears of herself", func() bool { return len(out.events("alice")) == 1 })

	on := func(kind string) record { return record{Kind: kind, Gateway: "gw-other", User: "bob"} }
	appendRecords(t, lg, on("online"), on("offline"), on("online"))
	eventually(t, "alice hears of bob", func() bool { return len(out.events("alice")) == 2 })
	// A wait on the clock, as the event is the clock's: the coalescing
	// window ends (anything it held would go out then).
	time.Sleep(2 * window)
	if got := out.events("alice"); !slices.Equal(got, []string{"alice:true", "bob:true"}) {
		t.Fatalf("online, offline, online in one window: alice got %v, want one bob:true", got)
	}

	appendRecords(t, lg, on("offline"), on("online"), on("offline"))
	eventually(t, "alice hears bob left", func() bool { return len(out.events("alice")) == 3 })
	time.Sleep(2 * window) // the window ends, as above
	if got := out.events("alice"); !slices.Equal(got, []string{"alice:true", "bob:true", "bob:false"}) {
		t.Fatalf("offline, online, offline: alice got %v, want one more bob:false", got)
	}
}

// TestWatch: a watcher gets the current state of the users it names that
// share a conversation with it, then their changes; strangers are
// ignored; a new list replaces the old; an empty list stops; more than
// MaxWatch ids are refused.
func TestWatch(t *testing.T) {
	dir := newFakeDir()
	dir.set("big", 1, "alice", "u1", "u2", "u3")
	dir.set("elsewhere", 1, "zed", "u1")
	dir.set("marker-room", 1, "mia", "marker")
	out := newFakeOut()
	tr, lg := start(t, Config{MaxMembers: 3, Window: 10 * time.Millisecond}, dir, out)
	ctx := context.Background()
	w := &fakeWatcher{user: "alice"}
	out.connect("alice")
	tr.Connected("alice")

	ids := make([]string, MaxWatch+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("x%d", i)
	}
	if err := tr.Watch(ctx, w, ids); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Fatalf("%d ids: %v, want invalid_request", len(ids), err)
	}
	if err := tr.Watch(ctx, w, []string{"u1", "zed", "u2", "u1", "bad id!"}); err != nil {
		t.Fatal(err)
	}
	if got := w.take(); !slices.Equal(got, []string{"u1:false", "u2:false"}) {
		t.Fatalf("initial states %v, want u1 and u2 offline (zed shares nothing)", got)
	}
	gw := func(kind, u string) record { return record{Kind: kind, Gateway: "gw-other", User: u} }
	appendRecords(t, lg, gw("online", "zed"), gw("online", "u1"))
	eventually(t, "the watcher hears of u1", func() bool { return w.n() > 0 })
	if got := w.take(); !slices.Equal(got, []string{"u1:true"}) {
		t.Fatalf("after zed and u1 came online: %v", got)
	}

	if err := tr.Watch(ctx, w, []string{"u3"}); err != nil {
		t.Fatal(err)
	}
	if got := w.take(); !slices.Equal(got, []string{"u3:false"}) {
		t.Fatalf("replaced list: %v", got)
	}
	appendRecords(t, lg, gw("offline", "u1"), gw("online", "u3"))
	eventually(t, "the watcher hears of u3", func() bool { return w.n() > 0 })
	if got := w.take(); !slices.Equal(got, []string{"u3:true"}) {
		t.Fatalf("after the list was replaced, u1 left and u3 came: %v", got)
	}

	if err := tr.Watch(ctx, w, nil); err != nil {
		t.Fatal(err)
	}
	// Another watcher of a marker user, whose change is announced after
	// u3's (announcements go out in record order): once mia hears of the
	// marker, u3's change has been announced, and alice must not have
	// heard of it.
	mia := &fakeWatcher{user: "mia"}
	if err := tr.Watch(ctx, mia, []string{"marker"}); err != nil {
		t.Fatal(err)
	}
	mia.take()
	appendRecords(t, lg, gw("offline", "u3"), gw("online", "marker"))
	eventually(t, "the marker's change is announced", func() bool { return mia.n() > 0 })
	if tr.Online("u3") {
		t.Fatal("u3 still online after its offline record")
	}
	if got := w.take(); len(got) != 0 {
		t.Fatalf("an empty list did not stop: %v", got)
	}
	if err := tr.Watch(ctx, mia, nil); err != nil {
		t.Fatal(err)
	}
	tr.wmu.Lock()
	defer tr.wmu.Unlock()
	if len(tr.watchers) != 0 || len(tr.watching) != 0 {
		t.Fatal("watch state left after an empty list")
	}
}

// TestOnlineMembersPages: online members in user-id order, limit at a
// time, with the id to continue after.
func TestOnlineMembersPages(t *testing.T) {
	dir := newFakeDir()
	var users []string
	for i := 0; i < 1200; i++ {
		users = append(users, fmt.Sprintf("u%04d", i))
	}
	dir.set("room", 1, users...)
	tr := New(Config{}, "gw", nil, dir, newFakeOut(), quiet)
	var want []string
	for i, u := range users {
		if i%3 == 0 {
			tr.where[u] = map[string]bool{"gw": true}
			want = append(want, u)
		}
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		page, next, err := tr.OnlineMembers(context.Background(), "room", after, 150)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 150 || pages > 10 {
			t.Fatalf("page of %d, page %d", len(page), pages)
		}
		got = append(got, page...)
		if next == "" {
			break
		}
		if next != page[len(page)-1] {
			t.Fatalf("next_after %q is not the page's last id %q", next, page[len(page)-1])
		}
		after = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d online members, want %d", len(got), len(want))
	}
}

// TestConfigFlag: --presence.max-members defaults to 100 and must be at
// least 1.
func TestConfigFlag(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil || c.MaxMembers != 100 || c.Validate() != nil {
		t.Fatalf("default: %d, %v", c.MaxMembers, c.Validate())
	}
	if err := fs.Parse([]string{"--presence.max-members", "0"}); err != nil || c.Validate() == nil {
		t.Fatalf("0 accepted: %v", err)
	}
}

// TestStoreDownDelaysTheIndexNotAnnouncements: while the Directory fails,
// changes are still announced (to the users themselves); once it answers,
// the index is loaded and contacts hear of changes again.
func TestStoreDownDelaysTheIndexNotAnnouncements(t *testing.T) {
	dir := newFakeDir()
	dir.set("dm", 1, "alice", "bob")
	dir.down.Store(true)
	out := newFakeOut()
	tr, lg := start(t, Config{Window: 10 * time.Millisecond}, dir, out)
	out.connect("alice")
	tr.Connected("alice")
	eventually(t, "alice hears of herself with the store down", func() bool { return len(out.events("alice")) == 1 })
	dir.down.Store(false)
	eventually(t, "alice's conversations are loaded", func() bool { return tr.idx.loaded("alice") })
	appendRecords(t, lg, record{Kind: "online", Gateway: "gw-other", User: "bob"})
	eventually(t, "alice hears of bob", func() bool { return len(out.events("alice")) == 2 })
	if got := out.events("alice"); !slices.Equal(got, []string{"alice:true", "bob:true"}) {
		t.Fatalf("alice got %v", got)
	}
}

// TestASilentGatewaysUsersGoOffline: a gateway that stops saying it is
// alive is taken for dead after four heartbeats, and its users go offline
// (the heartbeat is configurable, so this takes a fraction of a second,
// not the default's 12 s).
func TestASilentGatewaysUsersGoOffline(t *testing.T) {
	dir := newFakeDir()
	dir.set("dm", 1, "alice", "bob")
	out := newFakeOut()
	tr, lg := start(t, Config{Heartbeat: 20 * time.Millisecond, Window: 10 * time.Millisecond}, dir, out)
	appendRecords(t, lg, record{Kind: "alive", Gateway: "gw-other"}, record{Kind: "online", Gateway: "gw-other", User: "bob"})
	eventually(t, "bob is online on the other gateway", func() bool { return tr.Online("bob") })
	eventually(t, "the silent gateway's bob goes offline", func() bool { return !tr.Online("bob") })
}

// TestLeavePublishesOfflineAtOnce: a draining gateway's Leave takes its
// users offline on the other gateways at once, with neither the grace
// nor the heartbeat timeout (both an hour here) passing, and keeps online
// a user who is connected elsewhere too. Connections after Leave do not
// count.
func TestLeavePublishesOfflineAtOnce(t *testing.T) {
	dir := newFakeDir()
	dir.set("dm", 1, "alice", "bob", "carol")
	cfg := Config{Grace: time.Hour, Heartbeat: time.Hour, Window: 10 * time.Millisecond}
	other, lg := start(t, cfg, dir, newFakeOut())
	ctx, cancel := context.WithCancel(context.Background())
	draining := New(cfg, "gw-draining", lg, dir, newFakeOut(), quiet)
	done := make(chan struct{})
	go func() { defer close(done); _ = draining.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	draining.Connected("bob")
	draining.Connected("carol")
	other.Connected("carol") // carol has resumed on the other gateway already
	eventually(t, "bob and carol are online on the other gateway", func() bool { return other.Online("bob") && other.Online("carol") })
	draining.Disconnected("bob") // closed by the drain: would stay online for the grace

	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer lcancel()
	if err := draining.Leave(lctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	eventually(t, "bob is offline on the other gateway", func() bool { return !other.Online("bob") })
	if !other.Online("carol") {
		t.Fatal("carol, connected to the other gateway, went offline")
	}
	draining.Connected("dave") // slipped in during the drain: not announced
	time.Sleep(100 * time.Millisecond)
	if other.Online("dave") || draining.Online("dave") {
		t.Fatal("a connection counted after Leave")
	}
}

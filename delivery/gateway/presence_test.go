package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/delivery/presence"
	"github.com/parleychat/parley/delivery/sequencer"
	"github.com/parleychat/parley/internal/testutil"
	"github.com/parleychat/parley/storage/pebble"
)

// presenceEnv is one or more gateways, a sequencer, an in-process log and
// a Pebble store, for end-to-end presence tests.
type presenceEnv struct {
	t    *testing.T
	urls []string
	v    *auth.Verifier
}

func startPresenceEnv(t *testing.T, pc presence.Config, gateways int) *presenceEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	st, err := pebble.Open(ctx, pebble.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := auth.Open(auth.Config{Secret: "0123456789abcdef0123456789abcdef"})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{MaxConnsPerUser: 5, SendRate: 1000, SendBurst: 1000, QueueSize: 1024, CommandTimeout: 3 * time.Second, DevAuth: true, Presence: pc}
	e := &presenceEnv{t: t, v: v}
	done := make(chan struct{}, gateways+1)
	var srvs []*httptest.Server
	for i := 0; i < gateways; i++ {
		g := New(cfg, Deps{Log: lg, Store: st, Verifier: v, Logger: logger, GatewayID: fmt.Sprintf("gw%d", i)})
		go func() { _ = g.Run(ctx); done <- struct{}{} }()
		<-g.Hub().Ready()
		srv := httptest.NewServer(g.Handler())
		srvs = append(srvs, srv)
		e.urls = append(e.urls, srv.URL)
	}
	go func() { _ = sequencer.New(lg, st, logger).Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		for _, s := range srvs {
			s.CloseClientConnections()
			s.Close()
		}
		cancel()
		for i := 0; i < gateways+1; i++ {
			<-done
		}
		st.Close()
		lg.Close()
	})
	return e
}

func (e *presenceEnv) token(user string) string {
	tok, err := e.v.Issue(chat.User{ID: user}, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// do calls the first gateway's REST API as user.
func (e *presenceEnv) do(method, path, user string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.urls[0]+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token(user))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func (e *presenceEnv) group(creator string, members ...string) string {
	e.t.Helper()
	status, m := e.do("POST", "/v1/conversations", creator, map[string]any{"kind": "group", "title": "t", "members": members})
	if status != 201 {
		e.t.Fatalf("create group: %d %v", status, m)
	}
	return m["id"].(string)
}

// dial connects user to gateway i and waits for ready.
func (e *presenceEnv) dial(user string, gw ...int) *testWS {
	e.t.Helper()
	base := e.urls[0]
	if len(gw) > 0 {
		base = e.urls[gw[0]]
	}
	w := dialWS(e.t, base, e.token(user))
	w.next("ready")
	return w
}

func (w *testWS) close() { w.c.CloseNow() }

// waitPresence waits until the gateway (its /presence endpoint, asked by
// asker, a member of cid) has user online or offline as want: the grace
// and the coalescing are the server's, so the test waits on its state,
// not on a clock.
func (e *presenceEnv) waitPresence(cid, asker, user string, want bool) {
	e.t.Helper()
	testutil.Eventually(e.t, 15*time.Second, func() error {
		_, m := e.do("GET", "/v1/conversations/"+cid+"/presence", asker, nil)
		online, _ := m["online"].([]any)
		if slices.Contains(online, any(user)) != want {
			return fmt.Errorf("%s online: %v, want %v (%v)", user, !want, want, m)
		}
		return nil
	})
}

// barrier writes a ping and waits for its pong: the frames w sent before
// it have been handled, as a session handles its frames in order.
func (w *testWS) barrier(ref string) {
	w.t.Helper()
	w.write(map[string]string{"type": "ping", "ref": ref})
	if pong := w.next("pong"); pong["ref"] != ref {
		w.t.Fatalf("pong %v, want ref %s", pong, ref)
	}
}

// presenceUntil collects "user:online" of presence events until (and
// including) the one equal to stop.
func (w *testWS) presenceUntil(stop string) []string {
	w.t.Helper()
	var got []string
	for {
		m := w.next("presence")
		s := fmt.Sprintf("%v:%v", m["user_id"], m["online"])
		got = append(got, s)
		if s == stop {
			return got
		}
	}
}

func without(s []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(x string) bool { return slices.Contains(drop, x) })
}

// TestPresenceIsCoalescedPerUser: a user who goes online, offline, online
// and offline again within the window is announced twice (online at once,
// then its latest state at the window's end), not four times.
func TestPresenceIsCoalescedPerUser(t *testing.T) {
	// A long window, so that the four changes below (about a second of
	// work) fit in it even on a loaded CI machine.
	window := 10 * time.Second
	e := startPresenceEnv(t, presence.Config{MaxMembers: 3, Grace: 50 * time.Millisecond, Window: window}, 1)
	cid := e.group("alice", "bob", "carol")
	alice := e.dial("alice")
	alice.presenceUntil("alice:true")

	start := time.Now()
	b := e.dial("bob")
	if got := alice.presenceUntil("bob:true"); !slices.Equal(got, []string{"bob:true"}) {
		t.Fatalf("before bob:true alice got %v", got)
	}
	b.close()
	e.waitPresence(cid, "alice", "bob", false) // past the grace: offline
	b = e.dial("bob")
	e.waitPresence(cid, "alice", "bob", true)
	b.close()
	e.waitPresence(cid, "alice", "bob", false)
	if time.Since(start) > window {
		t.Fatalf("the four changes took %v, longer than the %v window this test needs", time.Since(start), window)
	}
	// The window ends and its latest state, bob:false, goes out: the
	// first presence event alice gets after bob:true.
	if got := without(alice.presenceUntil("bob:false"), "alice:true", "alice:false"); !slices.Equal(got, []string{"bob:false"}) {
		t.Fatalf("bob online, offline, online, offline in one window: alice got %v, want bob:false once", got)
	}
	// No second bob:false follows: carol, announced after it, is the
	// next event about anyone else.
	e.dial("carol")
	if got := without(alice.presenceUntil("carol:true"), "alice:true", "alice:false"); !slices.Equal(got, []string{"carol:true"}) {
		t.Fatalf("after bob's window alice got %v before carol:true", got)
	}
}

// TestPresenceAutomaticOnlyUpToMaxMembers: members of a conversation over
// --presence.max-members do not hear of each other's presence (each still
// hears of itself); a conversation that grows past the cut-off stops, and
// one that shrinks back starts again.
func TestPresenceAutomaticOnlyUpToMaxMembers(t *testing.T) {
	e := startPresenceEnv(t, presence.Config{MaxMembers: 3, Grace: 50 * time.Millisecond, Window: 100 * time.Millisecond}, 1)
	e.group("alice", "bob")
	e.group("alice", "carol", "dave", "erin") // 4 members: over the cut-off
	small := e.group("alice", "frank", "gina")
	alice := e.dial("alice")
	alice.presenceUntil("alice:true")

	carol := e.dial("carol")
	carol.presenceUntil("carol:true") // its own connections hear of it
	e.dial("bob")
	if got := alice.presenceUntil("bob:true"); !slices.Equal(got, []string{"bob:true"}) {
		t.Fatalf("alice got %v before bob:true; carol shares only a 4-member room with her", got)
	}

	frank := e.dial("frank")
	alice.presenceUntil("frank:true")
	if status, _ := e.do("PUT", "/v1/conversations/"+small+"/members/hank", "alice", nil); status != 201 {
		t.Fatalf("add hank: %d", status)
	}
	frank.close()
	e.waitPresence(small, "alice", "frank", false)
	e.dial("ivan") // shares nothing with alice
	erin := e.dial("erin")
	erin.presenceUntil("erin:true")
	e.do("PUT", "/v1/conversations/"+small+"/members/erin", "alice", nil) // 5 members now
	if status, _ := e.do("DELETE", "/v1/conversations/"+small+"/members/hank", "alice", nil); status != 204 {
		t.Fatalf("remove hank: %d", status)
	}
	if status, _ := e.do("DELETE", "/v1/conversations/"+small+"/members/erin", "alice", nil); status != 204 {
		t.Fatalf("remove erin: %d", status)
	}
	e.dial("frank") // the room is back to 3 members
	if got := alice.presenceUntil("frank:true"); !slices.Equal(got, []string{"frank:true"}) {
		t.Fatalf("alice got %v before frank:true; frank's leaving a 4-member room must not be announced", got)
	}
}

// TestPresenceWatch: in a big conversation a client names the users it
// shows: it gets their current state then their changes; strangers are
// ignored, each frame replaces the list, an empty list stops, and more
// than 256 ids is an error frame.
func TestPresenceWatch(t *testing.T) {
	e := startPresenceEnv(t, presence.Config{MaxMembers: 3, Grace: 50 * time.Millisecond, Window: 100 * time.Millisecond}, 1)
	e.group("alice", "bob")
	big := e.group("alice", "carol", "dave", "erin")
	e.group("zed", "yan")
	alice := e.dial("alice")
	alice.presenceUntil("alice:true")

	ids := make([]string, 257)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%d", i)
	}
	alice.write(map[string]any{"type": "presence.watch", "ref": "w0", "user_ids": ids})
	if m := alice.next("error"); m["ref"] != "w0" || m["error"].(map[string]any)["code"] != "invalid_request" {
		t.Fatalf("257 ids: %v", m)
	}

	alice.write(map[string]any{"type": "presence.watch", "user_ids": []string{"carol", "zed", "dave"}})
	if got := []string{alice.presenceUntil("carol:false")[0], alice.presenceUntil("dave:false")[0]}; !slices.Equal(got, []string{"carol:false", "dave:false"}) {
		t.Fatalf("current states: %v", got)
	}
	e.dial("zed")
	carol := e.dial("carol")
	if got := alice.presenceUntil("carol:true"); !slices.Equal(got, []string{"carol:true"}) {
		t.Fatalf("alice got %v before carol:true; zed shares nothing with her", got)
	}

	alice.write(map[string]any{"type": "presence.watch", "user_ids": []string{"dave"}})
	alice.presenceUntil("dave:false")
	carol.close()
	e.waitPresence(big, "alice", "carol", false) // carol goes offline, unwatched
	dave := e.dial("dave")
	if got := alice.presenceUntil("dave:true"); !slices.Equal(got, []string{"dave:true"}) {
		t.Fatalf("after replacing the list with dave, alice got %v before dave:true", got)
	}

	alice.write(map[string]any{"type": "presence.watch", "user_ids": []string{}})
	alice.barrier("after-empty-watch") // the empty list is in force
	dave.close()
	e.waitPresence(big, "alice", "dave", false) // dave goes offline, unwatched
	e.dial("bob")                               // a marker: bob shares a small room with alice
	if got := alice.presenceUntil("bob:true"); !slices.Equal(got, []string{"bob:true"}) {
		t.Fatalf("after an empty list, alice got %v before bob:true", got)
	}
}

// TestPresenceEndpointPages: GET …/presence pages the online members in
// user-id order; non-members get 404 and a bad limit 400.
func TestPresenceEndpointPages(t *testing.T) {
	e := startPresenceEnv(t, presence.Config{}, 1)
	cid := e.group("alice", "bob", "carol", "dave", "erin", "frank")
	for _, u := range []string{"alice", "carol", "erin", "frank"} {
		e.dial(u)
	}
	path := "/v1/conversations/" + cid + "/presence"
	testutil.Eventually(t, 15*time.Second, func() error {
		_, m := e.do("GET", path, "bob", nil)
		if fmt.Sprint(m["online"]) != "[alice carol erin frank]" || m["next_after"] != nil {
			return fmt.Errorf("online: %v", m)
		}
		return nil
	})
	status, m := e.do("GET", path+"?limit=2", "bob", nil)
	if status != 200 || fmt.Sprint(m["online"]) != "[alice carol]" || m["next_after"] != "carol" {
		t.Fatalf("first page: %d %v", status, m)
	}
	status, m = e.do("GET", path+"?limit=2&after=carol", "bob", nil)
	if status != 200 || fmt.Sprint(m["online"]) != "[erin frank]" || m["next_after"] != nil {
		t.Fatalf("second page: %d %v", status, m)
	}
	if status, m = e.do("GET", path+"?after=frank", "bob", nil); status != 200 || fmt.Sprint(m["online"]) != "[]" {
		t.Fatalf("past the end: %d %v", status, m)
	}
	if status, _ = e.do("GET", path, "zed", nil); status != 404 {
		t.Fatalf("non-member: %d", status)
	}
	if status, _ = e.do("GET", "/v1/conversations/nope/presence", "bob", nil); status != 404 {
		t.Fatalf("unknown conversation: %d", status)
	}
	for _, q := range []string{"0", "501", "x", "-1"} {
		status, m := e.do("GET", path+"?limit="+q, "bob", nil)
		if status != 400 || m["error"].(map[string]any)["code"] != "invalid_request" {
			t.Fatalf("limit=%s: %d %v", q, status, m)
		}
	}
}

// TestPresenceCrossesGateways: two gateways on one log: a user connected
// to one is announced to a contact on the other, and goes offline there
// after the grace.
func TestPresenceCrossesGateways(t *testing.T) {
	e := startPresenceEnv(t, presence.Config{Grace: 50 * time.Millisecond, Window: 50 * time.Millisecond}, 2)
	e.group("alice", "bob")
	alice := e.dial("alice", 0)
	alice.presenceUntil("alice:true")
	bob := e.dial("bob", 1)
	alice.presenceUntil("bob:true")
	bob.close()
	alice.presenceUntil("bob:false")
}

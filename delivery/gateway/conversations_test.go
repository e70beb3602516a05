package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/sequencer"
)

// countingStore counts the gateway's reads of messages.
type countingStore struct {
	chat.Store
	messages atomic.Int64
	// eventsRead counts the events EventsAfter returned.
	eventsRead atomic.Int64
}

func (s *countingStore) EventsAfter(ctx context.Context, cid string, after, upTo int64, limit int) ([]chat.Event, error) {
	evs, err := s.Store.EventsAfter(ctx, cid, after, upTo, limit)
	s.eventsRead.Add(int64(len(evs)))
	return evs, err
}

func (s *countingStore) Messages(ctx context.Context, cid string, page chat.MessagePage) ([]chat.Message, bool, error) {
	s.messages.Add(1)
	return s.Store.Messages(ctx, cid, page)
}

// restHarness is a gateway with an embedded store, log and sequencer,
// served over HTTP; the gateway reads the store through a countingStore.
type restHarness struct {
	t     testing.TB
	url   string
	store *countingStore
	v     *auth.Verifier
}

func newRESTHarness(t testing.TB) *restHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lg, st, v, logger := testEngines(t)
	cs := &countingStore{Store: st}
	cfg := Config{MaxConnsPerUser: 5, SendRate: 1e6, SendBurst: 1e6, QueueSize: 64, CommandTimeout: 10 * time.Second, DevAuth: true}
	g := New(cfg, Deps{Log: lg, Store: cs, Verifier: v, Logger: logger})
	go func() { _ = g.Run(ctx) }()
	go func() { _ = sequencer.New(lg, st, logger).Run(ctx) }()
	<-g.Hub().Ready()
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return &restHarness{t: t, url: srv.URL, store: cs, v: v}
}

// call makes a request as user and decodes a JSON answer into out (when
// not nil); it returns the status.
func (h *restHarness) call(user, method, path string, body, out any) int {
	h.t.Helper()
	tok, _ := h.v.Issue(chat.User{ID: user}, time.Hour)
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	if res.StatusCode >= 500 {
		h.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return res.StatusCode
}

func (h *restHarness) send(user, cid, text string) chat.Message {
	h.t.Helper()
	var m chat.Message
	if st := h.call(user, "POST", "/v1/conversations/"+cid+"/messages", map[string]string{"text": text}, &m); st != 201 {
		h.t.Fatalf("send: %d", st)
	}
	return m
}

// listed is GET /v1/conversations as user, by id, with the number of
// message reads it made.
func (h *restHarness) listed(user string) (map[string]map[string]any, int64) {
	h.t.Helper()
	before := h.store.messages.Load()
	var out struct {
		Conversations []map[string]any `json:"conversations"`
	}
	if st := h.call(user, "GET", "/v1/conversations", nil, &out); st != 200 {
		h.t.Fatalf("list: %d", st)
	}
	byID := map[string]map[string]any{}
	for _, c := range out.Conversations {
		byID[c["id"].(string)] = c
	}
	return byID, h.store.messages.Load() - before
}

// TestUnreadFollowsSendsReadsAndDeletesWithoutReadingMessages: unread is
// right for each member after others' sends, own sends (which move the
// sender's read position), reads in the middle and at the end, and
// deletes before and after a read position; last_message follows the
// newest message (its tombstone once deleted); and listing reads no
// message at all.
func TestUnreadFollowsSendsReadsAndDeletesWithoutReadingMessages(t *testing.T) {
	h := newRESTHarness(t)
	var conv chat.Conversation
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "u", "members": []string{"bob", "carol"}}, &conv); st != 201 {
		t.Fatalf("create: %d", st)
	}
	cid := conv.ID
	expect := func(step string, want map[string]int, lastText string, lastDeleted bool) {
		t.Helper()
		for user, n := range want {
			convs, reads := h.listed(user)
			c := convs[cid]
			if c == nil {
				t.Fatalf("%s: %s does not list the conversation", step, user)
			}
			if reads != 0 {
				t.Errorf("%s: listing for %s read messages %d times", step, user, reads)
			}
			if got := c["unread"].(float64); got != float64(n) {
				t.Errorf("%s: %s has %v unread, want %d", step, user, got, n)
			}
			lm, _ := c["last_message"].(map[string]any)
			switch {
			case lastText == "" && !lastDeleted && lm != nil:
				t.Errorf("%s: last_message %v, want null", step, lm)
			case (lastText != "" || lastDeleted) && (lm == nil || lm["text"] != lastText || lm["deleted"] != lastDeleted):
				t.Errorf("%s: last_message %v, want text %q deleted %v", step, lm, lastText, lastDeleted)
			}
			if c["muted"] != false || c["member_count"] != float64(3) {
				t.Errorf("%s: muted %v member_count %v", step, c["muted"], c["member_count"])
			}
		}
	}
	expect("new", map[string]int{"alice": 0, "bob": 0, "carol": 0}, "", false)
	m1 := h.send("bob", cid, "one")
	h.send("bob", cid, "two")
	m3 := h.send("bob", cid, "three")
	expect("bob sent three", map[string]int{"alice": 3, "bob": 0, "carol": 3}, "three", false)

	if st := h.call("alice", "POST", "/v1/conversations/"+cid+"/read", map[string]any{"seq": m1.Seq}, nil); st != 204 {
		t.Fatalf("read: %d", st)
	}
	expect("alice read the first", map[string]int{"alice": 2, "bob": 0, "carol": 3}, "three", false)

	if st := h.call("bob", "DELETE", "/v1/conversations/"+cid+"/messages/"+m3.ID, nil, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	expect("bob deleted the third", map[string]int{"alice": 1, "bob": 0, "carol": 2}, "", true)

	if st := h.call("bob", "DELETE", "/v1/conversations/"+cid+"/messages/"+m1.ID, nil, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	expect("bob deleted the first, which alice had read", map[string]int{"alice": 1, "bob": 0, "carol": 1}, "", true)

	h.send("alice", cid, "four")
	expect("alice answered", map[string]int{"alice": 0, "bob": 1, "carol": 2}, "four", false)

	var got chat.Conversation
	h.call("carol", "GET", "/v1/conversations/"+cid, nil, &got)
	if st := h.call("carol", "POST", "/v1/conversations/"+cid+"/read", map[string]any{"seq": got.LastSeq}, nil); st != 204 {
		t.Fatalf("read: %d", st)
	}
	expect("carol read all", map[string]int{"alice": 0, "bob": 1, "carol": 0}, "four", false)

	// A newcomer has every message not deleted to read.
	if st := h.call("alice", "PUT", "/v1/conversations/"+cid+"/members/dave", nil, nil); st != 201 {
		t.Fatalf("add dave: %d", st)
	}
	convs, _ := h.listed("dave")
	if n := convs[cid]["unread"]; n != float64(2) {
		t.Errorf("dave has %v unread, want 2 (two and four)", n)
	}
	// GET of one conversation agrees with the listing, also without reads.
	before := h.store.messages.Load()
	h.call("bob", "GET", "/v1/conversations/"+cid, nil, &got)
	if got.Unread != 1 || got.ReadSeq == 0 || h.store.messages.Load() != before {
		t.Errorf("GET as bob: unread %d read_seq %d, %d message reads", got.Unread, got.ReadSeq, h.store.messages.Load()-before)
	}
}

// TestMembersAreListedUpTo256AndPagedForAnySize: a conversation lists its
// members while it has at most 256, and only member_count above that, in
// REST answers and in conversation events alike; the members endpoint
// pages every size in user-id order, refuses bad parameters with 400 and
// non-members with 404.
func TestMembersAreListedUpTo256AndPagedForAnySize(t *testing.T) {
	h := newRESTHarness(t)
	var others []string
	for i := range chat.MaxCreateMembers - 1 {
		others = append(others, fmt.Sprintf("u%03d", i))
	}
	var conv map[string]any
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "big", "members": others}, &conv); st != 201 {
		t.Fatalf("create: %d", st)
	}
	cid := conv["id"].(string)
	if conv["member_count"] != float64(255) || len(conv["members"].([]any)) != 255 {
		t.Fatalf("255 members: member_count %v, %d listed", conv["member_count"], len(conv["members"].([]any)))
	}
	conv = nil
	h.call("alice", "PUT", "/v1/conversations/"+cid+"/members/zoe", nil, &conv)
	if conv["member_count"] != float64(256) || len(conv["members"].([]any)) != 256 {
		t.Fatalf("256 members: member_count %v, members %v", conv["member_count"], conv["members"] != nil)
	}
	conv = nil
	h.call("alice", "PUT", "/v1/conversations/"+cid+"/members/zed", nil, &conv)
	if _, listed := conv["members"]; listed || conv["member_count"] != float64(257) {
		t.Fatalf("257 members: member_count %v, members listed %v", conv["member_count"], listed)
	}
	for _, path := range []string{"/v1/conversations/" + cid, "/v1/conversations"} {
		var body map[string]any
		h.call("alice", "GET", path, nil, &body)
		c := body
		if cs, ok := body["conversations"].([]any); ok {
			c = cs[0].(map[string]any)
		}
		if _, listed := c["members"]; listed || c["member_count"] != float64(257) {
			t.Errorf("GET %s: member_count %v, members listed %v", path, c["member_count"], listed)
		}
	}
	// The conversation event carries the same shape.
	if st := h.call("alice", "PATCH", "/v1/conversations/"+cid, map[string]string{"title": "bigger"}, nil); st != 200 {
		t.Fatalf("rename: %d", st)
	}
	var evs struct {
		Events []map[string]any `json:"events"`
	}
	h.call("alice", "GET", "/v1/conversations/"+cid+"/events?after=256", nil, &evs)
	var updated, lastAdded map[string]any
	for _, ev := range evs.Events {
		switch ev["type"] {
		case chat.EventConversationUpdated:
			updated = ev["conversation"].(map[string]any)
		case chat.EventMemberAdded:
			lastAdded = ev["conversation"].(map[string]any)
		}
	}
	if updated == nil || lastAdded == nil {
		t.Fatalf("events: %v", evs.Events)
	}
	for name, c := range map[string]map[string]any{"conversation.updated": updated, "member.added": lastAdded} {
		if _, listed := c["members"]; listed || c["member_count"] != float64(257) {
			t.Errorf("%s: member_count %v, members listed %v", name, c["member_count"], listed)
		}
		if _, ok := c["tally"]; ok {
			t.Errorf("%s carries the internal tally", name)
		}
	}

	// Paging: every member once, in user-id order.
	want := slices.Sorted(slices.Values(append(others, "alice", "zoe", "zed")))
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		var page struct {
			Members   []string `json:"members"`
			NextAfter *string  `json:"next_after"`
		}
		if st := h.call("u007", "GET", "/v1/conversations/"+cid+"/members?limit=100&after="+after, nil, &page); st != 200 {
			t.Fatalf("members page: %d", st)
		}
		got = append(got, page.Members...)
		if page.NextAfter == nil {
			if pages != 2 {
				t.Errorf("257 members in pages of 100 took %d pages", pages+1)
			}
			break
		}
		after = *page.NextAfter
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged members: %d, want %d in order", len(got), len(want))
	}
	var first struct {
		Members   []string `json:"members"`
		NextAfter *string  `json:"next_after"`
	}
	h.call("alice", "GET", "/v1/conversations/"+cid+"/members", nil, &first)
	if len(first.Members) != 100 || first.NextAfter == nil || *first.NextAfter != want[99] {
		t.Errorf("default page: %d members, next_after %v", len(first.Members), first.NextAfter)
	}
	// Exactly a full last page: next_after is null, not a pointer to an empty page.
	h.call("alice", "GET", "/v1/conversations/"+cid+"/members?limit=7&after="+want[len(want)-8], nil, &first)
	if len(first.Members) != 7 || first.NextAfter != nil {
		t.Errorf("last full page: %d members, next_after %v", len(first.Members), first.NextAfter)
	}

	for _, bad := range []string{"limit=0", "limit=501", "limit=x", "after=" + "%20bad"} {
		if st := h.call("alice", "GET", "/v1/conversations/"+cid+"/members?"+bad, nil, nil); st != 400 {
			t.Errorf("members?%s: %d, want 400", bad, st)
		}
	}
	if st := h.call("mallory", "GET", "/v1/conversations/"+cid+"/members", nil, nil); st != 404 {
		t.Errorf("members as a non-member: %d, want 404", st)
	}
	if st := h.call("alice", "GET", "/v1/conversations/cnv_missing/members", nil, nil); st != 404 {
		t.Errorf("members of an unknown conversation: %d, want 404", st)
	}
	// A member who left is gone from the pages and may not page them.
	if st := h.call("u007", "DELETE", "/v1/conversations/"+cid+"/members/u007", nil, nil); st != 204 {
		t.Fatalf("leave: %d", st)
	}
	if st := h.call("u007", "GET", "/v1/conversations/"+cid+"/members", nil, nil); st != 404 {
		t.Errorf("members after leaving: %d, want 404", st)
	}
	h.call("alice", "GET", "/v1/conversations/"+cid+"/members?after=u006&limit=1", nil, &first)
	if len(first.Members) != 1 || first.Members[0] != "u008" {
		t.Errorf("after u006: %v, want u008 (u007 left)", first.Members)
	}
}

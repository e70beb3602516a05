package gateway

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// TestPollPagesReadOnlyWhatTheyAnswer: a long-poll client far behind in
// two conversations pages through the backlog at most 500 events an
// answer, gets every message exactly once and in seq order per
// conversation, and each poll reads from the store at most one answer's
// worth per conversation (not the whole remaining replay).
func TestPollPagesReadOnlyWhatTheyAnswer(t *testing.T) {
	h := newRESTHarness(t)
	var a, b chat.Conversation
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "a", "members": []string{"bob"}}, &a); st != 201 {
		t.Fatalf("create: %d", st)
	}
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "b", "members": []string{"bob"}}, &b); st != 201 {
		t.Fatalf("create: %d", st)
	}
	type page struct {
		Events []struct {
			Type           string `json:"type"`
			ConversationID string `json:"conversation_id"`
			Seq            int64  `json:"seq"`
		} `json:"events"`
		Cursor string `json:"cursor"`
	}
	var p page
	if st := h.call("bob", "GET", "/v1/poll?wait=0", nil, &p); st != 200 {
		t.Fatalf("poll: %d", st)
	}
	sent := map[string]int{a.ID: 900, b.ID: 400}
	for i := 0; i < 900; i++ {
		h.send("alice", a.ID, "x")
		if i < 400 {
			h.send("alice", b.ID, "y")
		}
	}
	got := map[string][]int64{}
	cursor := p.Cursor
	for polls := 0; ; polls++ {
		if polls > 10 {
			t.Fatalf("still paging after %d polls", polls)
		}
		before := h.store.eventsRead.Load()
		var p page
		if st := h.call("bob", "GET", "/v1/poll?wait=0&cursor="+url.QueryEscape(cursor), nil, &p); st != 200 {
			t.Fatalf("poll: %d", st)
		}
		if read := h.store.eventsRead.Load() - before; read > 2*501 {
			t.Errorf("poll %d answered %d events but read %d from the store", polls, len(p.Events), read)
		}
		if len(p.Events) > 500 {
			t.Errorf("poll %d answered %d events; at most 500", polls, len(p.Events))
		}
		cursor = p.Cursor
		if len(p.Events) == 0 {
			break
		}
		for _, e := range p.Events {
			if e.Type == "message.created" {
				got[e.ConversationID] = append(got[e.ConversationID], e.Seq)
			}
		}
	}
	for cid, n := range sent {
		seqs := got[cid]
		if len(seqs) != n {
			t.Errorf("%s: %d messages, want %d", cid, len(seqs), n)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("%s: seq %d after %d (duplicate or out of order)", cid, seqs[i], seqs[i-1])
			}
		}
	}
}

// TestPollBackToBackServedFromMemory: a long-poll with the cursor the
// previous poll answered takes over that poll's registration, so the
// events sent in between come from memory (no store read), exactly once;
// a user polling again and again never runs into the connection limit.
func TestPollBackToBackServedFromMemory(t *testing.T) {
	h := newRESTHarness(t)
	var c chat.Conversation
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "a", "members": []string{"bob"}}, &c); st != 201 {
		t.Fatalf("create: %d", st)
	}
	type page struct {
		Events []struct {
			Type string `json:"type"`
			Seq  int64  `json:"seq"`
		} `json:"events"`
		Cursor string `json:"cursor"`
	}
	var p page
	if st := h.call("bob", "GET", "/v1/poll?wait=0", nil, &p); st != 200 {
		t.Fatalf("poll: %d", st)
	}
	cursor := p.Cursor
	first := cursor
	for i := range 8 { // more polls than the user's 5 connections
		m := h.send("alice", c.ID, "x")
		before := h.store.eventsRead.Load()
		var p page
		if st := h.call("bob", "GET", "/v1/poll?wait=5&cursor="+url.QueryEscape(cursor), nil, &p); st != 200 {
			t.Fatalf("poll %d: %d", i, st)
		}
		if read := h.store.eventsRead.Load() - before; read != 0 {
			t.Errorf("poll %d read %d events from the store; want 0 (served from the kept registration)", i, read)
		}
		var seqs []int64
		for _, e := range p.Events {
			if e.Type == "message.created" {
				seqs = append(seqs, e.Seq)
			}
		}
		if len(seqs) != 1 || seqs[0] != m.Seq {
			t.Fatalf("poll %d: messages %v, want seq %d once", i, seqs, m.Seq)
		}
		cursor = p.Cursor
	}
	// An old cursor still works: it reads the store.
	var again page
	if st := h.call("bob", "GET", "/v1/poll?wait=0&cursor="+url.QueryEscape(first), nil, &again); st != 200 {
		t.Fatalf("poll from the first cursor: %d", st)
	}
	n := 0
	for _, e := range again.Events {
		if e.Type == "message.created" {
			n++
		}
	}
	if n != 8 {
		t.Fatalf("poll from the first cursor: %d messages, want 8", n)
	}
}

// TestKeptPollsNeverCostAnotherTransportItsConnection: registrations kept
// for long-polls that may come back do not count against the user's limit
// when the user opens an SSE stream or a WebSocket.
func TestKeptPollsNeverCostAnotherTransportItsConnection(t *testing.T) {
	h := newRESTHarness(t)
	tok, _ := h.v.Issue(chat.User{ID: "bob"}, time.Hour)
	open := func(path string) *http.Response {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", h.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if path == "/v1/events" {
			req.Header.Set("Accept", "text/event-stream")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	// Two polls answered at once leave two kept registrations...
	for range 2 {
		var p struct{}
		if st := h.call("bob", "GET", "/v1/poll?wait=0", nil, &p); st != 200 {
			t.Fatalf("poll: %d", st)
		}
	}
	// ...and three streams make five, bob's limit.
	for i := range 3 {
		if res := open("/v1/events"); res.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, res.StatusCode)
		}
	}
	if res := open("/v1/events"); res.StatusCode != 200 {
		t.Fatalf("a stream beside two kept polls: %d, want 200 (the kept polls make room)", res.StatusCode)
	}
}

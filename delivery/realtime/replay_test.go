package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/storage/pebble"
)

// failingStore fails every read of a page's events (EventsAfter, or
// Events of more than one: the replay count's one-event probes pass
// uncounted) after the first failAfter (never when 0).
type failingStore struct {
	chat.Store
	failAfter atomic.Int64
	calls     atomic.Int64
}

// fail counts a page read and reports whether it fails.
func (s *failingStore) fail() error {
	if n, f := s.calls.Add(1), s.failAfter.Load(); f > 0 && n > f {
		return chat.Errorf(chat.CodeUnavailable, "store: connection refused")
	}
	return nil
}

func (s *failingStore) EventsAfter(ctx context.Context, cid string, after, upTo int64, limit int) ([]chat.Event, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Store.EventsAfter(ctx, cid, after, upTo, limit)
}

func (s *failingStore) Events(ctx context.Context, cid string, after int64, limit int) ([]chat.Event, error) {
	if limit > 1 {
		if err := s.fail(); err != nil {
			return nil, err
		}
	}
	return s.Store.Events(ctx, cid, after, limit)
}

// runReplayServer runs a hub on lg and st and a server on it until ctx
// ends; stop stops the server and waits for it.
func runReplayServer(ctx context.Context, lg *memlog.Log, st chat.Store) (srv *Server, stop func()) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := fanout.NewHub(fanout.Config{ID: "gw-test", Log: lg, Store: st, Logger: logger})
	go func() { _ = hub.Run(ctx) }()
	<-hub.Ready()
	srv = New(Config{MaxConnsPerUser: 5, QueueSize: 64}, Deps{Hub: hub, Logger: logger})
	ran := make(chan struct{})
	runCtx, cancel := context.WithCancel(ctx)
	go func() { defer close(ran); srv.Run(runCtx) }()
	return srv, func() { cancel(); <-ran }
}

// seedConversation writes a conversation of alice and bob with n messages
// to st, in partition 0 of one.
func seedConversation(t *testing.T, st *pebble.Store, n int) {
	t.Helper()
	ctx := context.Background()
	epoch, err := st.Own(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	conv := chat.Conversation{ID: "cnv_replay", Kind: chat.KindGroup, CreatedBy: "alice", Members: []string{"alice", "bob"}}
	var chs []chat.Change
	var off int64
	command := func(types ...string) chat.Change {
		ch := chat.Change{PrevSeq: conv.LastSeq}
		for i, typ := range types {
			conv.LastSeq++
			ev := chat.Event{Type: typ, ConversationID: conv.ID, Seq: conv.LastSeq, EventID: chat.NewID("evt"), At: time.UnixMilli(1e12), Actor: "alice",
				Position: chat.Position(off, i)}
			if typ == chat.EventMessageCreated {
				ev.Message = &chat.Message{ID: chat.NewID("msg"), ConversationID: conv.ID, Seq: conv.LastSeq, SenderID: "alice", Text: "hi", Version: 1}
			}
			conv.LastPosition = ev.Position
			ch.Events = append(ch.Events, ev)
		}
		off++
		ch.Conversation = conv
		return ch
	}
	create := command(chat.EventMemberAdded, chat.EventMemberAdded)
	for i, u := range conv.Members {
		create.Memberships = append(create.Memberships, chat.Membership{ConversationID: conv.ID, UserID: u, Active: true, JoinedPosition: create.Events[i].Position})
	}
	chs = append(chs, create)
	for range n {
		chs = append(chs, command(chat.EventMessageCreated))
	}
	if err := st.Commit(ctx, 0, epoch, conv.LastPosition, chs); err != nil {
		t.Fatal(err)
	}
}

// TestWebSocketReplayInterruptedClosesWith1013: a WebSocket resuming far
// behind whose replay cannot be read to its end (the store fails on a
// later page) is closed with 1013 after the events before the failure;
// resuming with the last cursor it got delivers the rest, with no gap and
// no duplicate.
func TestWebSocketReplayInterruptedClosesWith1013(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, pst := openLogAndStore(ctx, t)
	const sent = 3000
	seedConversation(t, pst, sent)
	st := &failingStore{Store: pst}
	srv, stop := runReplayServer(ctx, lg, st)
	defer stop()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.serveWS(w, httpx.WithUser(r, chat.User{ID: "bob"}, time.Time{}))
	}))
	defer ts.Close()

	// read resumes from cursor and reads until the server closes or want
	// events came; it returns their seqs, the last cursor and the close.
	read := func(cursor string, want int) ([]int64, string, error) {
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		defer rcancel()
		cl, _, err := websocket.Dial(rctx, strings.Replace(ts.URL, "http", "ws", 1)+"?cursor="+url.QueryEscape(cursor), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.CloseNow()
		cl.SetReadLimit(1 << 24)
		var seqs []int64
		for len(seqs) < want {
			_, data, err := cl.Read(rctx)
			if err != nil {
				return seqs, cursor, err
			}
			for _, line := range strings.Split(string(data), "\n") {
				var f struct {
					Type   string `json:"type"`
					Seq    int64  `json:"seq"`
					Cursor string `json:"cursor"`
				}
				if err := json.Unmarshal([]byte(line), &f); err != nil {
					t.Fatalf("frame %q: %v", line, err)
				}
				if f.Type != "ready" {
					seqs = append(seqs, f.Seq)
					cursor = f.Cursor
				}
			}
		}
		return seqs, cursor, nil
	}

	st.failAfter.Store(2) // the open's two page reads pass, the next page's fails
	first, cursor, err := read(chat.NewCursor(0).Encode(), sent+1)
	if code := websocket.CloseStatus(err); code != websocket.StatusTryAgainLater {
		t.Fatalf("read %d events, then %v; want a close with 1013", len(first), err)
	}
	var ce websocket.CloseError
	if errors.As(err, &ce); ce.Reason != fanout.ReplayInterrupted {
		t.Errorf("close reason %q, want %q", ce.Reason, fanout.ReplayInterrupted)
	}
	if len(first) == 0 || len(first) > sent {
		t.Fatalf("%d events before the close, want some but not all %d", len(first), sent+1)
	}

	st.failAfter.Store(0)
	rest, _, err := read(cursor, sent+1-len(first))
	if err != nil {
		t.Fatalf("resuming: %v after %d events", err, len(rest))
	}
	all := append(first, rest...)
	for i, seq := range all {
		if seq != int64(i+2) { // from bob's member.added, seq 2
			t.Fatalf("event %d of the two connections has seq %d, want %d (a gap or a duplicate)", i, seq, i+2)
		}
	}
}

// TestSSEEndsAnInterruptedReplayWithClose: an SSE stream whose replay was
// interrupted ends with the close event the server sends when it goes
// away, with the reason of the WebSocket's 1013, not "server going away".
func TestSSEEndsAnInterruptedReplayWithClose(t *testing.T) {
	c := fanout.NewConn("bob", 4)
	c.CloseWith(chat.CloseTryAgainLater, fanout.ReplayInterrupted)
	got := sseFinal(c)
	data, ok := strings.CutPrefix(got, "event: close\ndata: ")
	if !ok || !strings.HasSuffix(data, "\n\n") {
		t.Fatalf("final event %q, want an event: close", got)
	}
	var f struct{ Type, Reason string }
	if err := json.Unmarshal([]byte(data), &f); err != nil || f.Type != "close" || f.Reason != fanout.ReplayInterrupted {
		t.Fatalf("final event data %q (%v), want type close, reason %q", data, err, fanout.ReplayInterrupted)
	}
}

// blockingStore holds the page read after the first blockAfter (reads of
// a page's events, as failingStore counts them) until its context ends,
// or for 5 s; stopped says the context ended it.
type blockingStore struct {
	chat.Store
	blockAfter int64
	calls      atomic.Int64
	entered    chan struct{}
	stopped    atomic.Bool
}

func (s *blockingStore) Events(ctx context.Context, cid string, after int64, limit int) ([]chat.Event, error) {
	if limit > 1 && s.calls.Add(1) == s.blockAfter+1 {
		close(s.entered)
		select {
		case <-ctx.Done():
			s.stopped.Store(true)
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
			return nil, chat.Errorf(chat.CodeUnavailable, "store: timed out")
		}
	}
	return s.Store.Events(ctx, cid, after, limit)
}

// TestSSEClientLeavingStopsAPageRead: an SSE stream served by its
// handler (HTTP/2: not detached) whose client leaves while a replay page
// is read stops that read, as a detached stream's watch does.
func TestSSEClientLeavingStopsAPageRead(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, pst := openLogAndStore(ctx, t)
	seedConversation(t, pst, 3000)
	// The open reads the first 1,024 events and 1,024 ahead (one
	// EventsAfter, one Events); the next page's read blocks.
	st := &blockingStore{Store: pst, blockAfter: 1, entered: make(chan struct{})}
	srv, stop := runReplayServer(ctx, lg, st)
	defer stop()

	rctx, leave := context.WithCancel(ctx)
	defer leave()
	r := httptest.NewRequestWithContext(rctx, http.MethodGet, "/v1/events?cursor="+url.QueryEscape(chat.NewCursor(0).Encode()), nil)
	r.ProtoMajor, r.ProtoMinor = 2, 0
	r = httpx.WithUser(r, chat.User{ID: "bob"}, time.Time{})
	served := make(chan struct{})
	go func() { defer close(served); srv.serveSSE(httptest.NewRecorder(), r) }()
	select {
	case <-st.entered:
	case <-served:
		t.Fatal("the stream ended before its second page was read")
	case <-time.After(10 * time.Second):
		t.Fatal("no second page read")
	}
	leave()
	<-served
	if !st.stopped.Load() {
		t.Fatal("the page read went on after the client left")
	}
}

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/memlog"
)

// hitStore answers a member's search: one active membership, and each
// message by id (msg_gone: deleted since indexed; msg_err: the store fails).
type hitStore struct{ chat.Store }

func (hitStore) Memberships(ctx context.Context, uid string) ([]chat.Membership, error) {
	return []chat.Membership{{ConversationID: "cnv_1", UserID: uid, Active: true}}, nil
}

func (hitStore) Message(ctx context.Context, cid, mid string) (chat.Message, error) {
	switch mid {
	case "msg_gone":
		return chat.Message{}, chat.ErrNotFound
	case "msg_err":
		return chat.Message{}, errors.New("store: read timed out")
	}
	return chat.Message{ID: mid, ConversationID: cid, Text: "kiwi"}, nil
}

// hitIndex answers every search with hits.
type hitIndex struct {
	chat.Index
	hits []string
}

func (x hitIndex) Search(ctx context.Context, q chat.SearchQuery) ([]chat.SearchHit, string, error) {
	var hs []chat.SearchHit
	for _, id := range x.hits {
		hs = append(hs, chat.SearchHit{ConversationID: "cnv_1", MessageID: id})
	}
	return hs, "", nil
}

// TestSearchStoreErrorOnAHitIs503: a hit deleted since it was indexed is
// skipped, but any other store error reading a hit answers 503 (before, it
// was silently dropped from the results).
func TestSearchStoreErrorOnAHitIs503(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	v, _ := auth.Open(auth.Config{Secret: "0123456789abcdef0123456789abcdef"})
	tok, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: time.Second}
	search := func(hits ...string) (int, map[string]any) {
		t.Helper()
		g := New(cfg, Deps{Log: lg, Store: hitStore{}, Index: hitIndex{hits: hits}, Verifier: v, Logger: logger})
		req := httptest.NewRequest("GET", "/v1/search?q=kiwi", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		g.Handler().ServeHTTP(rec, req)
		var body map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}

	code, body := search("msg_ok", "msg_gone")
	if code != http.StatusOK {
		t.Fatalf("search with a deleted hit: %d %v", code, body)
	}
	if res, _ := body["results"].([]any); len(res) != 1 {
		t.Fatalf("results %v, want only msg_ok", body["results"])
	}

	code, body = search("msg_ok", "msg_err")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("search with a failing store read: %d %v, want 503", code, body)
	}
	if e, _ := body["error"].(map[string]any); e["code"] != chat.CodeUnavailable {
		t.Fatalf("error %v, want %s", body["error"], chat.CodeUnavailable)
	}
}

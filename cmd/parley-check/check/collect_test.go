package check

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSource serves the store's log and search of convs conversations of
// n messages each, as a Parley answers them (200 events, 50 results a
// page), and counts the requests under way at once.
func fakeSource(t *testing.T, convs, n int) (srv *httptest.Server, cids []string, most *atomic.Int64) {
	t.Helper()
	var now atomic.Int64
	most = new(atomic.Int64)
	for c := range convs {
		cids = append(cids, fmt.Sprintf("cnv_%d", c))
	}
	msgID := func(cid string, seq int) string { return fmt.Sprintf("%s_m%03d", cid, seq) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/conversations/{cid}/events", func(w http.ResponseWriter, r *http.Request) {
		cid := r.PathValue("cid")
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		var evs []map[string]any
		for seq := after + 1; seq <= n && len(evs) < 200; seq++ {
			evs = append(evs, map[string]any{"type": "message.created", "conversation_id": cid, "seq": seq,
				"message": map[string]any{"id": msgID(cid, seq), "sender_id": "u", "client_id": fmt.Sprint(cid, seq)}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"events": evs, "has_more": after+len(evs) < n})
	})
	mux.HandleFunc("GET /v1/search", func(w http.ResponseWriter, r *http.Request) {
		if in := now.Add(1); in > most.Load() {
			most.Store(in) // racy max, enough to see more than one at once
		}
		defer now.Add(-1)
		time.Sleep(5 * time.Millisecond) // a search takes a while
		cid := r.URL.Query().Get("conversation_id")
		from, _ := strconv.Atoi(r.URL.Query().Get("page_token"))
		var results []map[string]any
		for seq := from + 1; seq <= n && len(results) < 50; seq++ {
			results = append(results, map[string]any{"message": map[string]any{"id": msgID(cid, seq)}})
		}
		var next *string
		if end := from + len(results); end < n {
			s := strconv.Itoa(end)
			next = &s
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"results": results, "next_page_token": next})
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, cids, most
}

// TestCollectReadsConversationsInParallelInOrder: with Parallel, several
// conversations are read at once, and the history is the one a serial
// read gives, conversation by conversation in the order asked.
func TestCollectReadsConversationsInParallelInOrder(t *testing.T) {
	srv, cids, most := fakeSource(t, 12, 120)
	read := func(parallel int) History {
		h, err := Source{URL: srv.URL, Token: "t", Query: "mark", IndexWait: time.Second, Parallel: parallel}.Collect(t.Context(), cids)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	serial := read(0)
	if most.Load() != 1 {
		t.Fatalf("a serial read had %d searches under way at once", most.Load())
	}
	if want := 12 * (120 + 1 + 120); len(serial) != want {
		t.Fatalf("serial read: %d records, want %d", len(serial), want)
	}
	most.Store(0)
	parallel := read(4)
	if most.Load() < 2 {
		t.Errorf("Parallel 4: at most %d search under way at once", most.Load())
	}
	if !reflect.DeepEqual(parallel, serial) {
		t.Errorf("Parallel 4 read another history than a serial read")
	}
	if rep := Check(parallel); rep.Indexed != 12*120 || rep.Stored != 12*120 {
		t.Errorf("checked %d stored and %d indexed, want %d of each", rep.Stored, rep.Indexed, 12*120)
	}
}

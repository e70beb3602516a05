package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/cmd/parley-check/check"
	"github.com/parleychat/parley/search/bleve"
	"github.com/parleychat/parley/search/elastic"
	"github.com/parleychat/parley/storage/cassandra"
	"github.com/parleychat/parley/storage/pebble"
)

// reindexFixture is a few conversations with messages, an edit and a
// delete, sent through a running server.
type reindexFixture struct {
	token   string
	cids    []string
	deleted chat.Message // as it was before its delete, to plant back in the index
	dropped []chat.Message
}

const reindexMarker = "reidxmark"

func makeReindexFixture(t *testing.T, s *server) reindexFixture {
	t.Helper()
	f := reindexFixture{token: s.signIn(t, "alice")}
	for c := range 3 {
		cid := s.createGroup(t, f.token, fmt.Sprintf("room %d", c))
		f.cids = append(f.cids, cid)
		for i := range 5 {
			_, m := s.send(t, f.token, cid, fmt.Sprintf("message %d of room %d %s", i, c, reindexMarker), fmt.Sprintf("r%d-%d", c, i))
			msg := chat.Message{ID: m["id"].(string), ConversationID: cid, Seq: int64(m["seq"].(float64)), SenderID: "alice", Text: m["text"].(string)}
			switch {
			case c == 0 && i == 1:
				f.deleted = msg
			case i == 3:
				f.dropped = append(f.dropped, msg)
			}
		}
	}
	if r := s.do(t, "DELETE", "/v1/conversations/"+f.cids[0]+"/messages/"+f.deleted.ID, f.token, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := s.do(t, "PATCH", "/v1/conversations/"+f.cids[1]+"/messages/"+f.dropped[1].ID, f.token, map[string]string{"text": "edited " + reindexMarker}); r.status != 200 {
		t.Fatalf("edit: %d %s", r.status, r.body)
	}
	return f
}

// breakIndex does to index what an outage does: the last messages of
// each room never indexed, and a deleted message still found (its delete
// missed while the index was down).
func (f reindexFixture) breakIndex(t *testing.T, index chat.Index) {
	t.Helper()
	for _, m := range f.dropped {
		if err := index.Delete(t.Context(), m.ConversationID, m.ID); err != nil {
			t.Fatalf("delete from the index: %v", err)
		}
	}
	if err := index.Put(t.Context(), []chat.Message{f.deleted}); err != nil {
		t.Fatalf("plant a deleted message: %v", err)
	}
}

// expectScan pages through the store's conversations one at a time and
// expects exactly the fixture's.
func (f reindexFixture) expectScan(t *testing.T, sc chat.ConversationScanner) {
	t.Helper()
	var got []string
	after := ""
	for range 10 {
		ids, err := sc.ConversationIDs(t.Context(), after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
		if len(ids) != 1 {
			t.Fatalf("a page of limit 1 holds %d ids", len(ids))
		}
		got, after = append(got, ids[0]), ids[0]
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(f.cids))
	if !slices.Equal(got, want) {
		t.Errorf("ConversationIDs paged one by one: %v, want %v", got, want)
	}
}

// indexHolds reports whether the index itself (not the API, which hides
// hits the store has deleted) finds m.
func indexHolds(t *testing.T, ix chat.Index, m chat.Message) bool {
	t.Helper()
	hits, _, err := ix.Search(t.Context(), chat.SearchQuery{Text: reindexMarker, ConversationIDs: []string{m.ConversationID}, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		if h.MessageID == m.ID {
			return true
		}
	}
	return false
}

// expectDeletedGone checks that the planted deleted message was removed.
func (f reindexFixture) expectDeletedGone(t *testing.T, ix chat.Index) {
	t.Helper()
	if indexHolds(t, ix, f.deleted) {
		t.Errorf("the index still holds deleted message %s after reindex", f.deleted.ID)
	}
}

// indexMismatches reads the store's log and search of the fixture's
// conversations through the API and counts where they disagree; wait
// bounds how long search may take to agree.
func (f reindexFixture) indexMismatches(t *testing.T, s *server, wait time.Duration) check.Report {
	t.Helper()
	h, err := check.Source{URL: s.url, Token: f.token, Query: reindexMarker, IndexWait: wait}.Collect(t.Context(), f.cids)
	if err != nil {
		t.Fatal(err)
	}
	return check.Check(h)
}

func reportText(r check.Report) string {
	var b bytes.Buffer
	_ = r.WriteText(&b)
	return b.String()
}

func TestReindexRepairsBleveFromPebble(t *testing.T) {
	s := startServer(t)
	f := makeReindexFixture(t, s)
	if rep := f.indexMismatches(t, s, 10*time.Second); !rep.OK() {
		t.Fatalf("before the index was broken:\n%s", reportText(rep))
	}
	s.stop()

	// While the server is stopped, break its index.
	ix, err := bleve.Open(t.Context(), bleve.Config{Dir: filepath.Join(s.dataDir, "index")})
	if err != nil {
		t.Fatal(err)
	}
	f.breakIndex(t, ix)
	if !indexHolds(t, ix, f.deleted) {
		t.Fatal("the planted deleted message is not in the index")
	}
	ix.Close()
	s.start()
	// Search hides the planted message (hits are loaded from the store),
	// so the API sees the 3 missing ones; the index itself is read below.
	if rep := f.indexMismatches(t, s, 2*time.Second); rep.Count(check.IndexMismatch) != 3 {
		t.Fatalf("the broken index: %d mismatches, want 3 missing\n%s", rep.Count(check.IndexMismatch), reportText(rep))
	}

	// reindex refuses to run beside the server that holds the folder.
	err = run(t.Context(), []string{"reindex", "--data-dir", s.dataDir}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "server stopped") {
		t.Fatalf("reindex beside a running server: %v, want a refusal naming the lock", err)
	}
	s.stop()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"reindex", "--data-dir", s.dataDir, "--log.level", "warn"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("reindex: %v", err)
	}
	if !strings.Contains(out.String(), "reindexed 14 messages and removed 1 deleted ones in 3 conversations") {
		t.Errorf("reindex says %q", out.String())
	}
	ix, err = bleve.Open(t.Context(), bleve.Config{Dir: filepath.Join(s.dataDir, "index")})
	if err != nil {
		t.Fatal(err)
	}
	f.expectDeletedGone(t, ix)
	ix.Close()
	st, err := pebble.Open(t.Context(), pebble.Config{Dir: filepath.Join(s.dataDir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	f.expectScan(t, st)
	st.Close()
	s.start()
	if rep := f.indexMismatches(t, s, 10*time.Second); !rep.OK() {
		t.Fatalf("after reindex:\n%s", reportText(rep))
	}
}

// On the real engines, with a deployment of its own, reindex repairs
// Elasticsearch from Cassandra while the server runs.
func TestReindexRepairsElasticsearchFromCassandra(t *testing.T) {
	c := newCluster(t, 4)
	s := startServer(t, c.args...)
	f := makeReindexFixture(t, s)
	if rep := f.indexMismatches(t, s, 20*time.Second); !rep.OK() {
		t.Fatalf("before the index was broken:\n%s", reportText(rep))
	}
	var cfg config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.registerFlags(fs)
	if err := fs.Parse(c.args); err != nil {
		t.Fatal(err)
	}
	ix, err := elastic.Open(t.Context(), cfg.esConfig())
	if err != nil {
		t.Fatal(err)
	}
	f.breakIndex(t, ix)
	refreshES(t, cfg)
	if !indexHolds(t, ix, f.deleted) {
		t.Fatal("the planted deleted message is not in the index")
	}
	ix.Close()
	if rep := f.indexMismatches(t, s, 3*time.Second); rep.Count(check.IndexMismatch) != 3 {
		t.Fatalf("the broken index: %d mismatches, want 3 missing\n%s", rep.Count(check.IndexMismatch), reportText(rep))
	}
	var out bytes.Buffer
	args := append([]string{"reindex", "--data-dir", t.TempDir(), "--log.level", "warn"}, c.args...)
	if err := run(t.Context(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("reindex: %v", err)
	}
	if !strings.Contains(out.String(), "reindexed 14 messages and removed 1 deleted ones in 3 conversations") {
		t.Errorf("reindex says %q", out.String())
	}
	refreshES(t, cfg)
	ix, err = elastic.Open(t.Context(), cfg.esConfig())
	if err != nil {
		t.Fatal(err)
	}
	f.expectDeletedGone(t, ix)
	ix.Close()
	st, err := cassandra.Open(t.Context(), cfg.Cassandra)
	if err != nil {
		t.Fatal(err)
	}
	f.expectScan(t, st)
	st.Close()
	if rep := f.indexMismatches(t, s, 20*time.Second); !rep.OK() {
		t.Fatalf("after reindex:\n%s", reportText(rep))
	}
}

// refreshES makes what was written to the deployment's indices searchable
// now, not at the next refresh.
func refreshES(t *testing.T, cfg config) {
	t.Helper()
	u := strings.Split(cfg.ElasticsearchURLs, ",")[0] + "/" + cfg.ESIndexPrefix + "*/_refresh"
	res, err := http.Post(u, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("POST %s: %d", u, res.StatusCode)
	}
}

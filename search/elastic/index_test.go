package elastic

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/elastic-transport-go/v8/elastictransport"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
	"github.com/parleychat/parley/internal/testutil"
)

// testURLs are the nodes the tests run against: PARLEY_ELASTICSEARCH_URLS
// (comma-separated), http://127.0.0.1:9200 by default. The tests fail,
// never skip, when they do not answer.
func testURLs() []string {
	if v := os.Getenv("PARLEY_ELASTICSEARCH_URLS"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"http://127.0.0.1:9200"}
}

func newTestClient(t testing.TB) *elastictransport.Client {
	t.Helper()
	urls, err := parseURLs(testURLs())
	if err != nil {
		t.Fatal(err)
	}
	c, err := elastictransport.New(elastictransport.Config{URLs: urls})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func base64Encode(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func base64Decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// testPrefix returns an index prefix of the test's own.
func testPrefix(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "parley-test-" + hex.EncodeToString(b) + "-"
}

func openWith(t testing.TB, cfg Config) *Index {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	x, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open %s on %v: %v\n(is Elasticsearch running? start it with: deploy/local/services up elasticsearch)", cfg.IndexPrefix, cfg.URLs, err)
	}
	return x
}

// testRefresh is the refresh interval of the tests' indexes: most of a
// test's time is spent waiting for writes to become visible, so the tests
// refresh faster than the default (TestDefaultRefreshIsWithinTheAPIPromise
// covers that one).
const testRefresh = 100 * time.Millisecond

// testConfig is the configuration of a test index of prefix.
func testConfig(prefix string) Config {
	return Config{URLs: testURLs(), IndexPrefix: prefix, RefreshInterval: testRefresh}
}

// openTest opens an index of a prefix of its own; at the end of the test
// it deletes what Open made and closes the index.
func openTest(t testing.TB) *Index {
	t.Helper()
	prefix := testPrefix(t)
	x := openWith(t, testConfig(prefix))
	t.Cleanup(func() {
		dropPrefix(t, prefix)
		if err := x.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return x
}

// dropPrefix deletes the index and the template of prefix, with a
// client of its own (the index may be closed already).
func dropPrefix(t testing.TB, prefix string) {
	t.Helper()
	x := &Index{timeout: 30 * time.Second}
	x.client = newTestClient(t)
	ctx := context.Background()
	if _, err := x.do(ctx, "drop index", esapi.IndicesDeleteRequest{Index: []string{indexName(prefix)}}, nil, 404); err != nil {
		t.Errorf("delete indexes of %s: %v", prefix, err)
	}
	if _, err := x.do(ctx, "drop template", esapi.IndicesDeleteIndexTemplateRequest{Name: templateName(prefix)}, nil, 404); err != nil {
		t.Errorf("delete template of %s: %v", prefix, err)
	}
}

// TestIndex runs the contract suite against the real cluster. Each subtest
// gets an index of its own, deleted afterwards; the subtests run in
// parallel, since most of their time is spent waiting for refreshes.
func TestIndex(t *testing.T) {
	chattest.TestIndex(t, func(t *testing.T) chat.Index {
		t.Parallel()
		return openTest(t)
	})
}

// TestDefaultRefreshIsWithinTheAPIPromise checks that with the default
// refresh interval a write is searchable well within the API's 2 s.
func TestDefaultRefreshIsWithinTheAPIPromise(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	x := openWith(t, Config{URLs: testURLs(), IndexPrefix: prefix})
	defer x.Close()
	defer dropPrefix(t, prefix)
	cid := chat.NewID("cnv")
	q := chat.SearchQuery{Text: "prompt", ConversationIDs: []string{cid}}
	var worst time.Duration
	for i := range 3 {
		start := time.Now()
		mustPut(t, x, testMessage(cid, "prompt", time.Now()))
		waitFor(t, x, q, i+1)
		worst = max(worst, time.Since(start))
	}
	if worst > 1500*time.Millisecond {
		t.Fatalf("a write took %v to become searchable, want at most 1.5s", worst)
	}
	t.Logf("slowest write searchable after %v", worst.Round(time.Millisecond))
}

func testMessage(cid, text string, at time.Time) chat.Message {
	m := chat.Message{ID: chat.NewID("msg"), ConversationID: cid, SenderID: "alice", Text: text, CreatedAt: at, Version: 1}
	m.Normalize()
	return m
}

func mustPut(t *testing.T, x *Index, ms ...chat.Message) {
	t.Helper()
	if err := x.Put(t.Context(), ms); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

// waitFor searches until q finds want hits.
func waitFor(t *testing.T, x *Index, q chat.SearchQuery, want int) []chat.SearchHit {
	t.Helper()
	var hits []chat.SearchHit
	testutil.Eventually(t, 5*time.Second, func() error {
		var err error
		hits, _, err = x.Search(t.Context(), q)
		if err != nil {
			t.Fatalf("Search: %v", err)
		}
		if len(hits) != want {
			return fmt.Errorf("Search %q: %d hits, want %d", q.Text, len(hits), want)
		}
		return nil
	})
	return hits
}

// deadURL is the URL of a port nobody listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestOpenOfUnreachableClusterIsUnavailable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	x, err := Open(t.Context(), Config{URLs: []string{deadURL(t)}, IndexPrefix: testPrefix(t), Timeout: 5 * time.Second})
	if err == nil {
		x.Close()
		t.Fatal("Open of a port nobody listens on succeeded")
	}
	if chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Fatalf("Open: %v, want %s", err, chat.CodeUnavailable)
	}
	t.Logf("failed in %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// TestClusterGoneIsUnavailable opens an index through a proxy to the real
// cluster, then stops the proxy: every operation fails with
// CodeUnavailable, and works again once the proxy is back.
func TestClusterGoneIsUnavailable(t *testing.T) {
	t.Parallel()
	target, err := url.Parse(testURLs()[0])
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	up.Store(true)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			// Like a node that went away: the connection just closes.
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	prefix := testPrefix(t)
	cfg := testConfig(prefix)
	cfg.URLs, cfg.Timeout = []string{"http://" + l.Addr().String()}, 5*time.Second
	x := openWith(t, cfg)
	defer x.Close()
	defer dropPrefix(t, prefix)
	cid := chat.NewID("cnv")
	mustPut(t, x, testMessage(cid, "before the outage", time.Now()))

	up.Store(false)
	ctx := t.Context()
	q := chat.SearchQuery{Text: "outage", ConversationIDs: []string{cid}}
	_, _, searchErr := x.Search(ctx, q)
	for name, err := range map[string]error{
		"Ping":   x.Ping(ctx),
		"Put":    x.Put(ctx, []chat.Message{testMessage(cid, "during", time.Now())}),
		"Delete": x.Delete(ctx, cid, "msg_x"),
		"Search": searchErr,
	} {
		if chat.ErrorCode(err) != chat.CodeUnavailable {
			t.Errorf("%s while the cluster is gone: %v, want %s", name, err, chat.CodeUnavailable)
		}
	}

	up.Store(true)
	if err := x.Ping(ctx); err != nil {
		t.Fatalf("Ping once the cluster is back: %v", err)
	}
	waitFor(t, x, q, 1)
}

func TestMissingIndexIsUnavailable(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	x := openWith(t, testConfig(prefix))
	defer x.Close()
	dropPrefix(t, prefix)
	ctx := t.Context()
	cid := chat.NewID("cnv")
	_, _, searchErr := x.Search(ctx, chat.SearchQuery{Text: "x", ConversationIDs: []string{cid}})
	for name, err := range map[string]error{
		"Ping":   x.Ping(ctx),
		"Put":    x.Put(ctx, []chat.Message{testMessage(cid, "x", time.Now())}),
		"Delete": x.Delete(ctx, cid, "msg_x"),
		"Search": searchErr,
	} {
		if chat.ErrorCode(err) != chat.CodeUnavailable {
			t.Errorf("%s without the index: %v, want %s", name, err, chat.CodeUnavailable)
		}
	}
	// require_alias: the Put must not have made an index of the alias's name.
	status, err := x.do(ctx, "exists", esapi.IndicesExistsRequest{Index: []string{x.alias}}, nil, 404)
	if err != nil || status != 404 {
		t.Errorf("after a Put without the index: %s exists (status %d, %v)", x.alias, status, err)
	}
}

func TestClosedIndexIsUnavailable(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	x := openWith(t, testConfig(prefix))
	defer dropPrefix(t, prefix)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := t.Context()
	_, _, searchErr := x.Search(ctx, chat.SearchQuery{Text: "x", ConversationIDs: []string{"c"}})
	for name, err := range map[string]error{
		"Ping":   x.Ping(ctx),
		"Put":    x.Put(ctx, []chat.Message{testMessage("c", "x", time.Now())}),
		"Delete": x.Delete(ctx, "c", "m"),
		"Search": searchErr,
	} {
		if chat.ErrorCode(err) != chat.CodeUnavailable {
			t.Errorf("%s after Close: %v, want %s", name, err, chat.CodeUnavailable)
		}
	}
}

func TestReopenKeepsDocuments(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	x := openWith(t, testConfig(prefix))
	defer dropPrefix(t, prefix)
	cid := chat.NewID("cnv")
	m := testMessage(cid, "durable words", time.Now())
	mustPut(t, x, m)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = openWith(t, testConfig(prefix))
	defer x.Close()
	hits := waitFor(t, x, chat.SearchQuery{Text: "durable", ConversationIDs: []string{cid}}, 1)
	if hits[0].MessageID != m.ID {
		t.Fatalf("after reopen: hits %+v, want %s", hits, m.ID)
	}
}

func TestOpenRefusesOtherMappingVersion(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	x := openWith(t, testConfig(prefix))
	defer dropPrefix(t, prefix)
	defer x.Close()
	meta := map[string]any{"_meta": map[string]any{mappingVersionKey: "0"}}
	if _, err := x.do(t.Context(), "put mapping", esapi.IndicesPutMappingRequest{Index: []string{x.alias}, Body: jsonBody(meta)}, nil); err != nil {
		t.Fatal(err)
	}
	y, err := Open(t.Context(), testConfig(prefix))
	if err == nil {
		y.Close()
		t.Fatal("Open accepted an index of another mapping version")
	}
	t.Log(err)
}

func TestMappingIsStrict(t *testing.T) {
	t.Parallel()
	x := openTest(t)
	var res struct {
		Errors bool `json:"errors"`
	}
	body := strings.NewReader(`{"index":{"_id":"x"}}` + "\n" + `{"text":"x","surprise":1}` + "\n")
	if _, err := x.do(t.Context(), "bulk", esapi.BulkRequest{Index: x.alias, Body: body}, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Errors {
		t.Fatal("a document with an unmapped field was indexed")
	}
}

func TestPutRefusesMessageWithoutIDs(t *testing.T) {
	t.Parallel()
	x := openTest(t)
	long := strings.Repeat("m", maxDocIDBytes)
	for _, m := range []chat.Message{{ConversationID: "c", Text: "x"}, {ID: "m", Text: "x"}, {ID: long, ConversationID: "c", Text: "x"}} {
		if err := x.Put(t.Context(), []chat.Message{m}); chat.ErrorCode(err) != chat.CodeInvalid {
			t.Errorf("Put(%.40q in %q): %v, want %s", m.ID, m.ConversationID, err, chat.CodeInvalid)
		}
	}
}

func TestOverlongQueryIsInvalid(t *testing.T) {
	t.Parallel()
	x := openTest(t)
	q := chat.SearchQuery{Text: strings.Repeat("a", maxQueryChars+1), ConversationIDs: []string{"c"}}
	if _, _, err := x.Search(t.Context(), q); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Fatalf("Search of %d characters: %v, want %s", len(q.Text), err, chat.CodeInvalid)
	}
}

func TestBadPageTokenIsInvalid(t *testing.T) {
	t.Parallel()
	x := openTest(t)
	cid := chat.NewID("cnv")
	var ms []chat.Message
	for i := range 3 {
		ms = append(ms, testMessage(cid, "token words", time.Unix(int64(i), 0)))
	}
	mustPut(t, x, ms...)
	q := chat.SearchQuery{Text: "token", ConversationIDs: []string{cid}, Limit: 10}
	waitFor(t, x, q, 3) // all three, or the first page of two may be the last
	q.Limit = 2
	_, next, err := x.Search(t.Context(), q)
	if err != nil || next == "" {
		t.Fatalf("first page: next %q, err %v", next, err)
	}
	good, err := base64Decode(next)
	if err != nil {
		t.Fatal(err)
	}
	tampered := []string{
		next[:len(next)-1],
		next + "A",
		next + "=",
		"!" + next[1:],
		base64Encode(append(slices.Clone(good), 0)),                // trailing byte
		base64Encode(append([]byte{2}, good[1:]...)),               // unknown version
		base64Encode(good[:9]),                                     // no ids
		base64Encode(nanScore(good)),                               // NaN score
		base64Encode(append(good[:len(good)-1:len(good)-1], 0xff)), // not UTF-8
		encodePageToken(&cursor{score: 1, createdAt: -1, conversationID: cid, messageID: "m"}),
		encodePageToken(&cursor{score: -1, conversationID: cid, messageID: "m"}),
		encodePageToken(&cursor{score: 1, conversationID: "", messageID: "m"}),
	}
	for _, token := range tampered {
		q.PageToken = token
		hits, _, err := x.Search(t.Context(), q)
		if chat.ErrorCode(err) != chat.CodeInvalid {
			t.Errorf("page token %.60q: hits %d, err %v; want %s", token, len(hits), err, chat.CodeInvalid)
		}
	}
	q.PageToken = next
	if hits, next, err := x.Search(t.Context(), q); err != nil || len(hits) != 1 || next != "" {
		t.Fatalf("second page: %d hits, next %q, err %v; want 1 hit, last page", len(hits), next, err)
	}
}

func nanScore(token []byte) []byte {
	b := slices.Clone(token)
	copy(b[1:9], []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 1})
	return b
}

func TestPageTokensRoundTrip(t *testing.T) {
	for _, c := range []cursor{
		{score: 0, createdAt: 0, conversationID: "c", messageID: "m"},
		{score: 0.70959044, createdAt: time.Date(2025, 3, 14, 15, 9, 26, 535123456, time.UTC).UnixNano(), conversationID: "cnv_1", messageID: "msg_2"},
		{score: 1, createdAt: maxTime.UnixNano(), conversationID: strings.Repeat("c", maxDocIDBytes), messageID: strings.Repeat("m", maxDocIDBytes)},
	} {
		got, err := decodePageToken(encodePageToken(&c))
		if err != nil || *got != c {
			t.Errorf("cursor %+v: decoded %+v, %v", c, got, err)
		}
	}
}

// TestQueryTextCannotWidenTheFilter sends texts, sender ids and
// conversation ids that would widen the filter if any became syntax: query
// string syntax and JSON fragments that would close the match query.
func TestQueryTextCannotWidenTheFilter(t *testing.T) {
	t.Parallel()
	x := openTest(t)
	mine, theirs := chat.NewID("cnv"), chat.NewID("cnv")
	words := `secret match_all conversation_id query bool should ` + theirs
	mustPut(t, x,
		testMessage(mine, "mine "+words, time.Unix(1, 0)),
		testMessage(theirs, "theirs "+words, time.Unix(2, 0)))
	waitFor(t, x, chat.SearchQuery{Text: "secret", ConversationIDs: []string{mine, theirs}}, 2)

	fragments := []string{
		"conversation_id:*",
		"secret OR conversation_id:*",
		"conversation_id:" + theirs,
		"*:*",
		`"}}},{"match_all":{}}]}}`,
		`secret"},"filter":[]}},"x":{"query":"`,
		`{"match_all":{}}`,
		`{"bool":{"should":[{"match_all":{}}]}}`,
		`{"terms":{"conversation_id":["` + theirs + `"]}}`,
		`\u0022}} secret`,
		"secret\x00\"}}",
	}
	for _, text := range append(fragments, "", "secret") {
		for _, q := range []chat.SearchQuery{
			{Text: text, ConversationIDs: []string{mine}},
			{Text: text, ConversationIDs: []string{mine}, SenderID: `alice"},"should":[{"match_all":{}}],"x":{"y":"`},
			{Text: text, ConversationIDs: []string{`*`, `{"match_all":{}}`, mine + `"]}},{"match_all":{}},{"terms":{"x":["`}},
			{Text: text},
		} {
			hits, _, err := x.Search(t.Context(), q)
			if err != nil && chat.ErrorCode(err) != chat.CodeInvalid {
				t.Errorf("Search(%q in %q): %v", q.Text, q.ConversationIDs, err)
			}
			for _, h := range hits {
				if h.ConversationID != mine || !slices.Contains(q.ConversationIDs, mine) {
					t.Errorf("Search(%q in %q, sender %q) found %s of %s", q.Text, q.ConversationIDs, q.SenderID, h.MessageID, h.ConversationID)
				}
			}
		}
	}
}

// TestEveryQueryFiltersByConversation checks the built request: whatever
// the query, the filter clause holds the terms filter of exactly the
// caller's conversations, and the text appears only as a match value.
func TestEveryQueryFiltersByConversation(t *testing.T) {
	cids := []string{"cnv_a", "cnv_b", "cnv_a", ""}
	after := &cursor{score: 1, conversationID: "cnv_a", messageID: "m"}
	for _, q := range []chat.SearchQuery{
		{Text: "hello"},
		{Text: ""},
		{Text: "*"},
		{Text: `conversation_id:* {"match_all":{}}`},
		{Text: "hello", SenderID: "bob", HasAttachment: true, After: time.Unix(1, 0), Before: time.Unix(9, 0)},
		{Text: "", SenderID: "bob", After: time.Unix(1, 0)},
	} {
		q.ConversationIDs = cids
		body, ok := searchBody(q, conversationSet(cids), 20, after)
		if !ok {
			t.Fatalf("%+v: no query", q)
		}
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		var parsed struct {
			Query struct {
				Bool struct {
					Must   map[string]map[string]json.RawMessage   `json:"must"`
					Filter []map[string]map[string]json.RawMessage `json:"filter"`
				} `json:"bool"`
			} `json:"query"`
		}
		if err := json.Unmarshal(raw, &parsed); err != nil {
			t.Fatal(err)
		}
		b := parsed.Query.Bool
		if len(b.Filter) == 0 || b.Filter[0]["terms"] == nil {
			t.Fatalf("%q: filter %s has no terms filter first", q.Text, raw)
		}
		var got []string
		if err := json.Unmarshal(b.Filter[0]["terms"][fieldConversation], &got); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"cnv_a", "cnv_b"}) {
			t.Errorf("%q: conversations filter %q, want [cnv_a cnv_b]", q.Text, got)
		}
		if strings.TrimSpace(q.Text) == "" {
			if b.Must["match_all"] == nil {
				t.Errorf("%q: must %s, want match_all", q.Text, raw)
			}
			continue
		}
		var m struct {
			Query    string `json:"query"`
			Operator string `json:"operator"`
		}
		if err := json.Unmarshal(b.Must["match"][fieldText], &m); err != nil || m.Query != q.Text || m.Operator != "and" {
			t.Errorf("%q: must %s, want a match query of the text with operator and", q.Text, raw)
		}
	}
	for _, cids := range [][]string{nil, {}, {""}} {
		if _, ok := searchBody(chat.SearchQuery{Text: "x", ConversationIDs: cids}, conversationSet(cids), 20, nil); ok {
			t.Errorf("conversations %q: a query was built, want none", cids)
		}
	}
}

func TestLimitIsCappedAtFifty(t *testing.T) {
	t.Parallel()
	x := openTest(t)
	cid := chat.NewID("cnv")
	var ms []chat.Message
	for i := range 60 {
		ms = append(ms, testMessage(cid, "many", time.Unix(int64(i), 0)))
	}
	mustPut(t, x, ms...)
	q := chat.SearchQuery{Text: "many", ConversationIDs: []string{cid}, Limit: 1000}
	// The 60 documents become searchable shard by shard, so wait until all
	// of them are: only then must a page of 50 have a next page.
	testutil.Eventually(t, 5*time.Second, func() error {
		hits, next, err := x.Search(t.Context(), q)
		if err != nil {
			t.Fatalf("Search: %v", err)
		}
		if len(hits) > maxLimit {
			t.Fatalf("limit 1000: %d hits, want at most %d", len(hits), maxLimit)
		}
		if len(hits) != maxLimit || next == "" {
			return fmt.Errorf("limit 1000: %d hits, next %q; want %d hits and a next page", len(hits), next, maxLimit)
		}
		return nil
	})
}

func TestSearchOverManyConversations(t *testing.T) {
	t.Parallel()
	x := openTest(t)
	cids := make([]string, 5000)
	for i := range cids {
		cids[i] = chat.NewID("cnv")
	}
	m := testMessage(cids[4321], "needle", time.Now())
	mustPut(t, x, m, testMessage(chat.NewID("cnv"), "needle", time.Now()))
	waitFor(t, x, chat.SearchQuery{Text: "needle", ConversationIDs: cids[4321:4322]}, 1)
	start := time.Now()
	hits, _, err := x.Search(t.Context(), chat.SearchQuery{Text: "needle", ConversationIDs: cids})
	if err != nil || len(hits) != 1 || hits[0].MessageID != m.ID {
		t.Fatalf("hits %+v, err %v; want only %s", hits, err, m.ID)
	}
	t.Logf("search over %d conversations took %v", len(cids), time.Since(start))
}

func TestConfigValidate(t *testing.T) {
	ok := Config{URLs: []string{"http://127.0.0.1:9200"}}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		valid bool
	}{
		{"defaults", func(*Config) {}, true},
		{"https and several nodes", func(c *Config) { c.URLs = []string{"https://es1:9200", "https://es2"} }, true},
		{"prefix", func(c *Config) { c.IndexPrefix = "team-a.parley_" }, true},
		{"refresh at the bound", func(c *Config) { c.RefreshInterval = time.Second }, true},
		{"basic auth", func(c *Config) { c.Username, c.Password = "u", "p" }, true},
		{"no urls", func(c *Config) { c.URLs = nil }, false},
		{"not a URL", func(c *Config) { c.URLs = []string{"127.0.0.1:9200"} }, false},
		{"other scheme", func(c *Config) { c.URLs = []string{"ftp://es"} }, false},
		{"empty url", func(c *Config) { c.URLs = []string{""} }, false},
		{"upper-case prefix", func(c *Config) { c.IndexPrefix = "Parley-" }, false},
		{"prefix starting with _", func(c *Config) { c.IndexPrefix = "_parley" }, false},
		{"prefix with a wildcard", func(c *Config) { c.IndexPrefix = "parley*" }, false},
		{"prefix with a comma", func(c *Config) { c.IndexPrefix = "a,b" }, false},
		{"too long prefix", func(c *Config) { c.IndexPrefix = strings.Repeat("p", 101) }, false},
		{"slow refresh", func(c *Config) { c.RefreshInterval = 2 * time.Second }, false},
		{"negative refresh", func(c *Config) { c.RefreshInterval = -time.Second }, false},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, false},
		{"user without password", func(c *Config) { c.Username = "u" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.URLs = slices.Clone(ok.URLs)
			tc.edit(&c)
			err := c.Validate()
			if (err == nil) != tc.valid {
				t.Fatalf("Validate(%+v) = %v, want valid %v", c, err, tc.valid)
			}
		})
	}
	if _, err := Open(t.Context(), Config{}); err == nil {
		t.Fatal("Open accepted an empty config")
	}
}

package bleve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	zapx "github.com/blevesearch/zapx/v17"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
)

func openAt(t testing.TB, dir string) *Index {
	t.Helper()
	x, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return x
}

func openTemp(t testing.TB) *Index {
	t.Helper()
	x := openAt(t, t.TempDir())
	t.Cleanup(func() {
		if err := x.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return x
}

func TestIndex(t *testing.T) {
	chattest.TestIndex(t, func(t *testing.T) chat.Index { return openTemp(t) })
}

func testMessage(cid, text string, at time.Time) chat.Message {
	m := chat.Message{ID: chat.NewID("msg"), ConversationID: cid, SenderID: "alice", Text: text, CreatedAt: at, Version: 1}
	m.Normalize()
	return m
}

func mustSearch(t *testing.T, x *Index, q chat.SearchQuery) []chat.SearchHit {
	t.Helper()
	hits, _, err := x.Search(t.Context(), q)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	return hits
}

func TestIndexSurvivesReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "search") // missing: Open creates it
	x := openAt(t, dir)
	cid := chat.NewID("cnv")
	m := testMessage(cid, "durable words", time.Now())
	if err := x.Put(t.Context(), []chat.Message{m}); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = openAt(t, dir)
	defer x.Close()
	hits := mustSearch(t, x, chat.SearchQuery{Text: "durable", ConversationIDs: []string{cid}})
	if len(hits) != 1 || hits[0].MessageID != m.ID {
		t.Fatalf("after reopen: hits %+v, want %s", hits, m.ID)
	}
}

func TestOpenRefusesOtherMappingVersion(t *testing.T) {
	dir := t.TempDir()
	x := openAt(t, dir)
	if err := x.idx.SetInternal([]byte(mappingVersionKey), []byte("0")); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if y, err := Open(t.Context(), Config{Dir: dir}); err == nil {
		y.Close()
		t.Fatal("Open accepted an index of another mapping version")
	}
}

func TestOpenRefusesForeignFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if y, err := Open(t.Context(), Config{Dir: dir}); err == nil {
		y.Close()
		t.Fatal("Open made an index in a folder holding other files")
	}
	if _, err := Open(t.Context(), Config{}); err == nil {
		t.Fatal("Open accepted an empty dir")
	}
}

func TestClosedIndexIsUnavailable(t *testing.T) {
	x := openAt(t, t.TempDir())
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

func TestPutRefusesMessageWithoutIDs(t *testing.T) {
	x := openTemp(t)
	for _, m := range []chat.Message{{ConversationID: "c", Text: "x"}, {ID: "m", Text: "x"}} {
		if err := x.Put(t.Context(), []chat.Message{m}); chat.ErrorCode(err) != chat.CodeInvalid {
			t.Errorf("Put(%+v): %v, want %s", m, err, chat.CodeInvalid)
		}
	}
}

func TestOverlongQueryIsInvalid(t *testing.T) {
	x := openTemp(t)
	q := chat.SearchQuery{Text: strings.Repeat("a", maxQueryChars+1), ConversationIDs: []string{"c"}}
	if _, _, err := x.Search(t.Context(), q); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Fatalf("Search of %d characters: %v, want %s", len(q.Text), err, chat.CodeInvalid)
	}
}

func TestLimitIsCappedAtFifty(t *testing.T) {
	x := openTemp(t)
	cid := chat.NewID("cnv")
	var ms []chat.Message
	for i := range 60 {
		ms = append(ms, testMessage(cid, "many", time.Unix(int64(i), 0)))
	}
	if err := x.Put(t.Context(), ms); err != nil {
		t.Fatal(err)
	}
	hits, next, err := x.Search(t.Context(), chat.SearchQuery{Text: "many", ConversationIDs: []string{cid}, Limit: 1000})
	if err != nil || len(hits) != maxLimit || next == "" {
		t.Fatalf("limit 1000: %d hits, next %q, err %v; want %d hits and a next page", len(hits), next, err, maxLimit)
	}
}

func TestSearchOverManyConversations(t *testing.T) {
	x := openTemp(t)
	cids := make([]string, 5000)
	for i := range cids {
		cids[i] = chat.NewID("cnv")
	}
	m := testMessage(cids[4321], "needle", time.Now())
	if err := x.Put(t.Context(), []chat.Message{m, testMessage(chat.NewID("cnv"), "needle", time.Now())}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	hits := mustSearch(t, x, chat.SearchQuery{Text: "needle", ConversationIDs: cids})
	if len(hits) != 1 || hits[0].MessageID != m.ID {
		t.Fatalf("hits %+v, want only %s", hits, m.ID)
	}
	t.Logf("search over %d conversations took %v", len(cids), time.Since(start))
}

func TestPageTokensRoundTrip(t *testing.T) {
	for _, off := range []int{1, 20, 127, 128, 9999} {
		got, err := decodePageToken(encodePageToken(off))
		if err != nil || got != off {
			t.Errorf("offset %d: decoded %d, %v", off, got, err)
		}
	}
	for _, s := range []string{
		encodePageToken(0),
		encodePageToken(maxWindow),
		encodePageToken(1) + "A",
		"AQ",   // version, no offset
		"AgE",  // unknown version
		"AQE=", // padded
		"AQF",  // non-canonical trailing bits
	} {
		if off, err := decodePageToken(s); err == nil {
			t.Errorf("token %q accepted as offset %d", s, off)
		}
	}
}

// benchMessages returns n messages of realistic length in conversations.
func benchMessages(n, conversations int) []chat.Message {
	words := strings.Fields("the deploy of the new search service is planned for friday evening after the " +
		"review meeting please check the dashboard and the alerts before merging anything risky")
	ms := make([]chat.Message, n)
	now := time.Now()
	for i := range ms {
		var sb strings.Builder
		for j := range 12 + i%20 {
			sb.WriteString(words[(i*7+j*3)%len(words)])
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "ticket%d", i%500)
		ms[i] = testMessage(fmt.Sprintf("cnv_%d", i%conversations), sb.String(), now.Add(time.Duration(i)*time.Millisecond))
	}
	return ms
}

// BenchmarkPut indexes batches of 100 messages (the indexer's batch).
func BenchmarkPut(b *testing.B) {
	x := openTemp(b)
	ms := benchMessages(100*b.N, 50)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := x.Put(context.Background(), ms[i*100:(i+1)*100]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(100*b.N), "ns/msg")
}

// BenchmarkSearch searches 20,000 messages in 200 conversations as a user
// who is a member of 50 of them.
func BenchmarkSearch(b *testing.B) {
	x := openTemp(b)
	ms := benchMessages(20_000, 200)
	for i := 0; i < len(ms); i += 1000 {
		if err := x.Put(context.Background(), ms[i:i+1000]); err != nil {
			b.Fatal(err)
		}
	}
	cids := make([]string, 50)
	for i := range cids {
		cids[i] = fmt.Sprintf("cnv_%d", i*4)
	}
	for _, tc := range []struct{ name, text string }{
		{"OneWord", "deploy"},
		{"TwoWords", "friday dashboard"},
		{"RareWord", "ticket42"},
		{"Blank", ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			q := chat.SearchQuery{Text: tc.text, ConversationIDs: cids}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := x.Search(context.Background(), q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDelayedPersistenceKeepsEveryPut: with a persist delay, Puts from
// several indexer partitions at once share segments, and each is still
// persisted when it returns (it survives a reopen).
func TestDelayedPersistenceKeepsEveryPut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "search")
	x, err := Open(t.Context(), Config{Dir: dir, PersistDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cid := chat.NewID("cnv")
	const writers, puts = 4, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range puts {
				m := testMessage(cid, fmt.Sprintf("shared segment w%d i%d", w, i), time.Now())
				if err := x.Put(t.Context(), []chat.Message{m}); err != nil {
					t.Errorf("Put: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = openAt(t, dir)
	defer x.Close()
	hits := mustSearch(t, x, chat.SearchQuery{Text: "segment", ConversationIDs: []string{cid}, Limit: 50})
	if len(hits) != writers*puts {
		t.Fatalf("after reopen: %d hits, want %d", len(hits), writers*puts)
	}
}

// BenchmarkPutSustained indexes a chat server's steady stream as the
// embedded server does (cmd/parley: a persist delay, so the Puts of
// several partitions share a segment): batches of 20, 100 or 500 messages
// (the indexer's batch grows with its pacing interval) from 8 putters at
// once, each message with a token of its own (as the load tool's stamps),
// and then waits for Bleve's background merges. One op is one message.
// Beside the foreground time it reports what the whole process spent,
// persister and merges included: CPU time and bytes allocated per message
// (the garbage that makes a server sharing the process with delivery
// collect more often).
func BenchmarkPutSustained(b *testing.B) {
	for _, batch := range []int{20, 100, 500} {
		b.Run(fmt.Sprintf("Batch%d", batch), func(b *testing.B) { benchPutSustained(b, batch) })
	}
}

func benchPutSustained(b *testing.B, batch int) {
	x, err := Open(context.Background(), Config{Dir: b.TempDir(), PersistDelay: 250 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	batches := (b.N + batch - 1) / batch
	ms := benchMessages(batches*batch, 50)
	for i := range ms {
		ms[i].Text += fmt.Sprintf(" stamp%d", i)
	}
	var next atomic.Int64
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := processCPU(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= batches {
					return
				}
				if err := x.Put(context.Background(), ms[i*batch:(i+1)*batch]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := x.Close(); err != nil { // waits for the merger and the persister
		b.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	n := float64(batches * batch)
	b.ReportMetric(float64(processCPU(b)-cpu0)/n, "cpu-ns/msg")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "alloc-B/msg")
	b.ReportMetric(float64(after.NumGC-before.NumGC)*10000/n, "GC/10k-msg")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMergeWriteBufferIsSmall: the segment files Bleve writes by merging
// (each persist and each background merge) use a small write buffer, not
// zapx's 1 MiB allocated afresh each time.
func TestMergeWriteBufferIsSmall(t *testing.T) {
	if got := zapx.DefaultFileMergerBufferSize; got > mergeWriteBuffer {
		t.Fatalf("zapx merge write buffer is %d bytes, want at most %d", got, mergeWriteBuffer)
	}
}

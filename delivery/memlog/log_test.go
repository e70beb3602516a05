package memlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
	"github.com/parleychat/parley/internal/testutil"
)

func open(t testing.TB, cfg Config) *Log {
	t.Helper()
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLogContract(t *testing.T) {
	chattest.TestLog(t, func(t *testing.T, partitions int) chat.Log {
		return open(t, Config{Dir: t.TempDir(), Partitions: partitions})
	})
}

func TestOffsetsGrowAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	const n = 4
	highest := map[int]int64{}
	for run := range 3 {
		l, err := Open(ctx, Config{Dir: dir, Partitions: n})
		if err != nil {
			t.Fatalf("run %d: Open: %v", run, err)
		}
		var recs []*chat.Record
		for i := range 40 {
			recs = append(recs, &chat.Record{Key: fmt.Sprintf("cnv-%d", i), Value: []byte("x")})
		}
		if err := l.Append(ctx, chat.TopicCommands, recs...); err != nil {
			t.Fatalf("run %d: Append: %v", run, err)
		}
		next := map[int]int64{}
		for _, r := range recs {
			if r.Offset <= highest[r.Partition] && run > 0 {
				t.Fatalf("run %d: partition %d offset %d, but an earlier run used %d", run, r.Partition, r.Offset, highest[r.Partition])
			}
			next[r.Partition] = max(next[r.Partition], r.Offset)
		}
		for p, o := range next {
			highest[p] = max(highest[p], o)
		}
		l.Close()
	}
}

// A crash loses the process but not the mark: offsets never come back,
// even when the log is not closed.
func TestOffsetsGrowAfterCrashWithoutClose(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	a, err := Open(ctx, Config{Dir: dir, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := range 3 * reserveBlock / 1000 {
		recs := make([]*chat.Record, 1000)
		for j := range recs {
			recs[j] = &chat.Record{Key: "k", Value: []byte{byte(i)}}
		}
		if err := a.Append(ctx, "t", recs...); err != nil {
			t.Fatal(err)
		}
		last = recs[len(recs)-1].Offset
	}
	if last < 2*reserveBlock {
		t.Fatalf("test did not cross the reservation blocks: last offset %d", last)
	}
	// a is abandoned, as after a crash; a second process opens the folder.
	b := open(t, Config{Dir: dir, Partitions: 3})
	r := &chat.Record{Key: "k"}
	for p := range 3 {
		for i := 0; ; i++ {
			r = &chat.Record{Key: fmt.Sprintf("k%d", i)}
			if chat.PartitionOf(r.Key, 3) == p {
				break
			}
		}
		if err := b.Append(ctx, "t", r); err != nil {
			t.Fatal(err)
		}
		if r.Offset <= last {
			t.Fatalf("after the crash, partition %d got offset %d, at or below the used %d", p, r.Offset, last)
		}
	}
}

func TestOpenRefusesACorruptMark(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "commands.offsets"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Config{Dir: dir, Partitions: 2}); err == nil {
		t.Fatal("Open accepted a corrupt offsets file")
	}
}

func TestTopicNamesAreFileSafe(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	names := []string{"../escape", "a/b", "with space", "ünï", "..", "%41"}
	l := open(t, Config{Dir: dir, Partitions: 1})
	got := map[string]int64{}
	for _, name := range names {
		r := &chat.Record{Key: "k"}
		if err := l.Append(ctx, name, r); err != nil {
			t.Fatalf("Append to %q: %v", name, err)
		}
		got[name] = r.Offset
	}
	if err := l.Append(ctx, "", &chat.Record{Key: "k"}); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Fatalf("Append to an empty topic name: %v, want invalid", err)
	}
	l.Close()
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.offsets")); err == nil {
		t.Fatal("a topic name escaped the folder")
	}
	l2 := open(t, Config{Dir: dir, Partitions: 1})
	for _, name := range names {
		r := &chat.Record{Key: "k"}
		if err := l2.Append(ctx, name, r); err != nil {
			t.Fatal(err)
		}
		if r.Offset <= got[name] {
			t.Fatalf("topic %q: offset %d after restart, %d before", name, r.Offset, got[name])
		}
	}
}

func TestClosedLogIsUnavailable(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir(), Partitions: 2})
	ctx := context.Background()
	sub := make(chan error, 1)
	ready := make(chan struct{})
	go func() { sub <- l.Subscribe(ctx, "t", func() { close(ready) }, func(int, []chat.Record) {}) }()
	cons := make(chan error, 1)
	go func() {
		cons <- l.Consume(ctx, "t", "g", func(context.Context, int, []chat.Record) error { return nil })
	}()
	<-ready
	l.Close()
	for what, ch := range map[string]chan error{"Subscribe": sub, "Consume": cons} {
		select {
		case err := <-ch:
			if chat.ErrorCode(err) != chat.CodeUnavailable {
				t.Errorf("%s on a closed log returned %v, want unavailable", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not return after Close", what)
		}
	}
	if err := l.Append(ctx, "t", &chat.Record{Key: "k"}); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Append on a closed log: %v, want unavailable", err)
	}
	if err := l.Ping(ctx); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Ping on a closed log: %v, want unavailable", err)
	}
}

// Memory stays bounded: once every reader has passed them, records beyond
// the retained tail are freed.
func TestReadRecordsAreFreed(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir(), Partitions: 1, Retain: 100})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var handled atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- l.Consume(ctx, "t", "g", func(_ context.Context, _ int, recs []chat.Record) error {
			handled.Add(int64(len(recs)))
			return nil
		})
	}()
	const total = 20 * chunkSize
	for i := 0; i < total; i += 100 {
		recs := make([]*chat.Record, 100)
		for j := range recs {
			recs[j] = &chat.Record{Key: "k", Value: []byte("v")}
		}
		if err := l.Append(ctx, "t", recs...); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, func() error {
			if n := handled.Load(); n < int64(i+100) {
				return fmt.Errorf("consumer stuck at %d of %d", n, i+100)
			}
			return nil
		})
	}
	pt := (*l.topics.Load())["t"].parts[0]
	pt.mu.Lock()
	kept := len(pt.chunks)
	pt.mu.Unlock()
	if kept > 3 {
		t.Fatalf("%d chunks kept after every record was consumed; want at most 3 (retain 100 + the open chunk)", kept)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A group keeps its uncommitted records while it has no live member: a
// member that failed, or a sequencer between two Consume calls, finds them
// all again, however many were appended meanwhile.
func TestGroupWithoutMembersKeepsUncommittedRecords(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir(), Partitions: 1, Retain: 1})
	ctx := context.Background()
	errFail := errors.New("fail")
	appendN := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := l.Append(ctx, "t", &chat.Record{Key: "k", Value: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(0, 10)
	err := l.Consume(ctx, "t", "g", func(_ context.Context, _ int, recs []chat.Record) error { return errFail })
	if !errors.Is(err, errFail) {
		t.Fatalf("Consume returned %v, want the handle error", err)
	}
	const total = 10 * chunkSize
	appendN(10, total-10)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- l.Consume(cctx, "t", "g", func(_ context.Context, _ int, recs []chat.Record) error {
			for _, r := range recs {
				got = append(got, string(r.Value))
			}
			if len(got) >= total {
				cancel()
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the new member got %d of %d records", len(got), total)
	}
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("record %d is %q; want every record, in order, from the first uncommitted one", i, v)
		}
	}
}

// A subscriber pins what it has not read; a new group sees what is retained.
func TestSubscriberPinsUnreadRecords(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir(), Partitions: 1, Retain: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var got atomic.Int64
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- l.Subscribe(ctx, "t", func() { close(ready) }, func(_ int, recs []chat.Record) {
			<-release
			got.Add(int64(len(recs)))
		})
	}()
	<-ready
	const total = 10 * chunkSize
	for range total {
		if err := l.Append(ctx, "t", &chat.Record{Key: "k", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := got.Load(); n < total {
			return fmt.Errorf("slow subscriber got %d of %d records", n, total)
		}
		return nil
	})
	if got.Load() != total {
		t.Fatalf("slow subscriber got %d records, want %d", got.Load(), total)
	}
	cancel()
	<-done
}

func BenchmarkAppendSubscribe(b *testing.B) {
	value := make([]byte, 100)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = chat.NewID("cnv")
	}
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			l := open(b, Config{Dir: b.TempDir(), Partitions: chat.DefaultPartitions})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var got atomic.Int64
			all := make(chan struct{})
			ready := make(chan struct{})
			total := int64(b.N)
			go func() {
				_ = l.Subscribe(ctx, chat.TopicEvents, func() { close(ready) }, func(_ int, recs []chat.Record) {
					if got.Add(int64(len(recs))) == total {
						close(all)
					}
				})
			}()
			<-ready
			recs := make([]*chat.Record, batch)
			for i := range recs {
				recs[i] = &chat.Record{}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				n := min(batch, b.N-i)
				for j := range n {
					recs[j].Key, recs[j].Value = keys[(i+j)%len(keys)], value
				}
				if err := l.Append(ctx, chat.TopicEvents, recs[:n]...); err != nil {
					b.Fatal(err)
				}
			}
			<-all
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

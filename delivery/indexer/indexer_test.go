package indexer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/internal/testutil"
)

// putIndex records what is put.
type putIndex struct {
	chat.Index
	mu    sync.Mutex
	puts  []string
	calls int
}

func (x *putIndex) Put(ctx context.Context, msgs []chat.Message) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.calls++
	for _, m := range msgs {
		x.puts = append(x.puts, m.ID)
	}
	return nil
}

func (x *putIndex) put() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.puts...)
}

// openLog opens a memlog of partitions that closes with the test.
func openLog(ctx context.Context, t *testing.T, partitions int) *memlog.Log {
	t.Helper()
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	return lg
}

// createdRecord is the event record of message id's creation in cnv_1.
func createdRecord(id string) []byte {
	v, _ := record.EncodeSequenced(&chat.Sequenced{Events: []chat.Event{{Type: chat.EventMessageCreated, ConversationID: "cnv_1",
		Message: &chat.Message{ID: id, ConversationID: "cnv_1", Text: "kiwi"}}}})
	return v
}

// TestUndecodableRecordIsCountedAndSkipped: a record that does not decode
// is counted in parley_undecodable_records_total{consumer="indexer"} and the
// records after it are still indexed.
func TestUndecodableRecordIsCountedAndSkipped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg := openLog(ctx, t, 2)
	if err := lg.Append(ctx, chat.TopicEvents, &chat.Record{Key: "cnv_1", Value: []byte("{not json"), Partition: 1},
		&chat.Record{Key: "cnv_1", Value: createdRecord("msg_1"), Partition: 1}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	ix := &putIndex{}
	x := New(lg, ix, slog.New(slog.NewTextHandler(io.Discard, nil)), WithRegisterer(reg))
	done := make(chan struct{})
	go func() { defer close(done); _ = x.Run(ctx) }()
	defer func() { cancel(); <-done }()

	testutil.Eventually(t, 10*time.Second, func() error {
		if len(ix.put()) == 0 {
			return errors.New("the good record after the bad one was never indexed")
		}
		return nil
	})
	if got := ix.put(); len(got) != 1 || got[0] != "msg_1" {
		t.Fatalf("indexed %v, want [msg_1]", got)
	}
	if n := undecodable(t, reg, Group); n != 1 {
		t.Fatalf("undecodable counted %v, want 1", n)
	}
}

// undecodable reads parley_undecodable_records_total{consumer} from reg.
func undecodable(t *testing.T, reg *prometheus.Registry, consumer string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "parley_undecodable_records_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "consumer" && l.GetValue() == consumer {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no parley_undecodable_records_total{consumer=%q}", consumer)
	return 0
}

// TestPutsArePacedSoMessagesShareAPut: after a Put, the messages that
// arrive within the interval wait for one Put together instead of making
// a Put (a Bleve segment to merge) each.
func TestPutsArePacedSoMessagesShareAPut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg := openLog(ctx, t, 1)
	appendMessage := func(id string) {
		t.Helper()
		if err := lg.Append(ctx, chat.TopicEvents, &chat.Record{Key: "cnv_1", Value: createdRecord(id), Partition: 0}); err != nil {
			t.Fatal(err)
		}
	}
	ix := &putIndex{}
	x := New(lg, ix, slog.New(slog.NewTextHandler(io.Discard, nil)), WithConfig(Config{Interval: MaxInterval}))
	done := make(chan struct{})
	go func() { defer close(done); _ = x.Run(ctx) }()
	defer func() { cancel(); <-done }()

	appendMessage("msg_first")
	testutil.Eventually(t, 10*time.Second, func() error {
		if len(ix.put()) == 0 {
			return errors.New("the first message was never indexed")
		}
		return nil
	})
	// Twenty messages 10 ms apart: each would be a batch of its own (the
	// indexer handles one in microseconds), but they all arrive while the
	// indexer paces after the first Put.
	const n = 20
	for i := range n {
		appendMessage(fmt.Sprintf("msg_%02d", i))
		time.Sleep(10 * time.Millisecond) // the pacing of the load is what is tested
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := len(ix.put()); got != n+1 {
			return fmt.Errorf("%d of %d messages indexed", got, n+1)
		}
		return nil
	})
	ix.mu.Lock()
	calls := ix.calls
	ix.mu.Unlock()
	// One Put for the first message and one for the twenty; a third if the
	// machine stalled the appends past the interval.
	if calls > 3 {
		t.Fatalf("%d Puts for %d messages, want at most 3", calls, n+1)
	}
}

func TestConfigRefusesIntervalsBeyondASecond(t *testing.T) {
	for _, d := range []time.Duration{-time.Millisecond, MaxInterval + time.Millisecond} {
		c := Config{Interval: d}
		if err := c.Validate(); err == nil {
			t.Errorf("interval %v accepted", d)
		}
	}
	c := Config{Interval: DefaultInterval}
	if err := c.Validate(); err != nil {
		t.Errorf("default interval refused: %v", err)
	}
}

// TestPacingIsSharedAmongBusyPartitions: a Log that hands partitions out
// one after another would wait one interval per busy partition if each
// paced alone; the wait is shared, so a round adds about one interval.
func TestPacingIsSharedAmongBusyPartitions(t *testing.T) {
	x := New(nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), WithConfig(Config{Interval: 100 * time.Millisecond}))
	now := time.Now()
	if got := x.paceWait(0, now, now); got != 100*time.Millisecond {
		t.Fatalf("one busy partition waits %v, want the whole 100ms", got)
	}
	for p := 1; p < 4; p++ {
		x.paceWait(p, now, now)
	}
	if got := x.paceWait(0, now, now); got != 25*time.Millisecond {
		t.Fatalf("four busy partitions: each waits %v, want 25ms", got)
	}
	// A partition quiet for longer than the interval no longer counts.
	later := now.Add(150 * time.Millisecond)
	if got := x.paceWait(0, later, later); got != 100*time.Millisecond {
		t.Fatalf("after the others went quiet: %v, want 100ms", got)
	}
	if got := x.paceWait(0, now, now.Add(time.Second)); got != 0 {
		t.Fatalf("a Put that took longer than the interval waits %v, want 0", got)
	}
}

// countingLog counts the consumer group memberships (Consume calls).
type countingLog struct {
	chat.Log
	mu       sync.Mutex
	consumes int
}

func (l *countingLog) Consume(ctx context.Context, topic, group string, handle func(context.Context, int, []chat.Record) error) error {
	l.mu.Lock()
	l.consumes++
	l.mu.Unlock()
	return l.Log.Consume(ctx, topic, group, handle)
}

// downIndex answers unavailable to its first failures Puts.
type downIndex struct {
	putIndex
	failures int
}

func (x *downIndex) Put(ctx context.Context, msgs []chat.Message) error {
	x.mu.Lock()
	if x.failures > 0 {
		x.failures--
		x.mu.Unlock()
		return &chat.Error{Code: chat.CodeUnavailable, Op: "test: put", Message: "index down"}
	}
	x.mu.Unlock()
	return x.putIndex.Put(ctx, msgs)
}

// TestAnIndexOutageIsWaitedOutWithoutLeavingTheGroup: while the Index
// answers unavailable, the batch is retried within the same group
// membership (a rejoin per attempt is a rebalance each time on Kafka), and
// it is indexed once the Index answers.
func TestAnIndexOutageIsWaitedOutWithoutLeavingTheGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ml := openLog(ctx, t, 1)
	if err := ml.Append(ctx, chat.TopicEvents, &chat.Record{Key: "cnv_1", Value: createdRecord("msg_1"), Partition: 0}); err != nil {
		t.Fatal(err)
	}
	lg := &countingLog{Log: ml}
	ix := &downIndex{failures: 3}
	x := New(lg, ix, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); _ = x.Run(ctx) }()
	defer func() { cancel(); <-done }()

	testutil.Eventually(t, 10*time.Second, func() error {
		if len(ix.put()) == 0 {
			return errors.New("the message was never indexed")
		}
		return nil
	})
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if lg.consumes != 1 {
		t.Fatalf("%d group memberships for an outage of 3 attempts, want 1", lg.consumes)
	}
}

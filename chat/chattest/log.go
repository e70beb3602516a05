package chattest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// TestLog is the contract suite of chat.Log. Every Log adapter runs it;
// each subtest opens a fresh Log with open.
//
// open returns a Log whose topics all have the given partition count. It
// reports its own failures with t.Fatal and arranges (t.Cleanup) for the
// Log to be closed at the end of the subtest; the suite never calls Close.
// Subtests use topic and group names of their own (letters, digits, '_'
// and '-'), never chat.TopicCommands or chat.TopicEvents, so an adapter
// backed by a shared broker can run the suite against a live cluster.
//
// Waits have deadlines of many seconds, so a real broker's group joins and
// rebalances fit; nothing is asserted on a fixed sleep. A subtest appends
// at most a few thousand records of about 20 bytes, and the suite counts
// on the log retaining all of them, so a group that joins after they were
// appended still finds them.
//
// Besides what chat.Log's doc states, the suite pins these behaviours:
//   - Append of no records is a no-op that succeeds;
//   - Append copies what it needs: the caller may reuse a Value's bytes once
//     Append has returned;
//   - a Consume whose ctx is done returns nil or an error that is
//     context.Canceled, never another error, and so does Subscribe; both
//     return within a few seconds of the cancellation, also when ctx is
//     done before the call;
//   - when Consume returns, every batch whose handle returned nil is
//     committed: a later member of the group starts right after it;
//   - when handle fails, Consume returns that error (errors.Is) without
//     anyone cancelling its ctx, and the failed batch stays uncommitted;
//   - with one member and no failures, a group gets every record exactly
//     once (no redelivery without a rebalance or a failure);
//   - a subscriber gets every record appended after ready exactly once, and
//     ready is called exactly once;
//   - handlers see Key, Value, Partition and Offset as Append reported them;
//   - a handle ctx offers chat.HoldCommit: a batch released with an error
//     is not committed (nor is any later batch of its partition) and
//     Consume returns that error; batches released with nil are
//     committed; Consume returns only once every hold is released.
func TestLog(t *testing.T, open func(t *testing.T, partitions int) chat.Log) {
	t.Helper()
	for _, tc := range logCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, open)
		})
	}
}

type logCase struct {
	name string
	run  func(t *testing.T, open func(t *testing.T, partitions int) chat.Log)
}

var logCases = []logCase{
	{"PartitionsIsTheConfiguredCount", logTestPartitions},
	{"PingAnswers", logTestPing},
	{"AppendRoutesByKeyAndGrowsOffsetsPerPartition", logTestAppendOffsets},
	{"AppendOfNothingSucceeds", logTestAppendNothing},
	{"CallerMayReuseValueAfterAppend", logTestAppendCopies},
	{"ConcurrentAppendersGetUniqueOrderedOffsets", logTestConcurrentAppend},
	{"ConsumeKeepsAppendOrderPerPartition", logTestAppendOrder},
	{"ConsumeDeliversEveryRecordOnceInOffsetOrder", logTestConsumeAll},
	{"GroupMembersSplitPartitions", logTestGroupSplit},
	{"NewMemberResumesAfterCommittedOffsets", logTestResume},
	{"HandleErrorStopsConsumeAndLeavesBatchUncommitted", logTestHandleError},
	{"HeldBatchIsCommittedOnlyOnceReleased", logTestHoldCommit},
	{"GroupsAreIndependent", logTestGroupsIndependent},
	{"SubscribeStartsAtTheEndAndSeesEverythingAfter", logTestSubscribe},
	{"CancelStopsConsumeAndSubscribePromptly", logTestCancel},
	{"DoneContextIsUnavailable", logTestDoneContext},
}

const (
	// logPatience bounds every wait for records, group joins and rebalances.
	logPatience = 30 * time.Second
	// logPrompt bounds how long Consume and Subscribe may take to return
	// once their ctx is done.
	logPrompt = 5 * time.Second
)

// logName returns a fresh topic or group name.
func logName(what string) string { return chat.NewID("parley-test-" + what) }

// logKeys returns, per partition of n, a few keys that route to it.
func logKeys(n, perPartition int) [][]string {
	keys := make([][]string, n)
	for i, full := 0, 0; full < n; i++ {
		k := fmt.Sprintf("cnv-%d", i)
		p := chat.PartitionOf(k, n)
		if len(keys[p]) < perPartition {
			keys[p] = append(keys[p], k)
			if len(keys[p]) == perPartition {
				full++
			}
		}
	}
	return keys
}

// logMake returns count records with fresh values tagged tag, whose keys
// cycle through keys so that every partition gets records.
func logMake(tag string, keys [][]string, count int) []*chat.Record {
	var flat []string
	for i := 0; ; i++ {
		added := false
		for _, ks := range keys {
			if i < len(ks) {
				flat = append(flat, ks[i])
				added = true
			}
		}
		if !added {
			break
		}
	}
	recs := make([]*chat.Record, count)
	for i := range recs {
		recs[i] = &chat.Record{Key: flat[i%len(flat)], Value: fmt.Appendf(nil, "%s-%d", tag, i)}
	}
	return recs
}

func logAppend(t *testing.T, l chat.Log, topic string, recs ...*chat.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), logPatience)
	defer cancel()
	if err := l.Append(ctx, topic, recs...); err != nil {
		t.Fatalf("Append %d records to %s: %v", len(recs), topic, err)
	}
}

// logAppendEach appends recs in calls of the given sizes, cycling through
// sizes, one call after the other.
func logAppendEach(t *testing.T, l chat.Log, topic string, recs []*chat.Record, sizes ...int) {
	t.Helper()
	for i, k := 0, 0; i < len(recs); k++ {
		n := min(sizes[k%len(sizes)], len(recs)-i)
		logAppend(t, l, topic, recs[i:i+n]...)
		i += n
	}
}

// logWant groups appended records' values by partition, in append order.
func logWant(recs ...[]*chat.Record) map[int][]string {
	want := map[int][]string{}
	for _, rs := range recs {
		for _, r := range rs {
			want[r.Partition] = append(want[r.Partition], string(r.Value))
		}
	}
	return want
}

// logEventually waits until cond holds, failing the test after logPatience.
func logEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(logPatience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", logPatience, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logSeen is a record as a handler saw it, copied out of its batch.
type logSeen struct {
	Key, Value string
	Partition  int
	Offset     int64
}

// logSink collects what handlers see and checks every batch's shape.
type logSink struct {
	t       *testing.T
	name    string
	mu      sync.Mutex
	parts   map[int][]logSeen
	values  map[string]int // value -> deliveries
	batches int
}

func newLogSink(t *testing.T, name string) *logSink {
	return &logSink{t: t, name: name, parts: map[int][]logSeen{}, values: map[string]int{}}
}

// add records a batch. It checks that the batch is non-empty, of one
// partition, and in strictly growing offset order; it never calls Fatal, as
// it runs on the adapter's goroutines.
func (s *logSink) add(partition int, recs []chat.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	if len(recs) == 0 {
		s.t.Errorf("%s: empty batch of partition %d", s.name, partition)
	}
	for i := range recs {
		r := &recs[i]
		if r.Partition != partition {
			s.t.Errorf("%s: batch of partition %d holds a record of partition %d", s.name, partition, r.Partition)
		}
		if i > 0 && r.Offset <= recs[i-1].Offset {
			s.t.Errorf("%s: partition %d batch offsets not growing: %d after %d", s.name, partition, r.Offset, recs[i-1].Offset)
		}
		s.parts[partition] = append(s.parts[partition], logSeen{Key: r.Key, Value: string(r.Value), Partition: r.Partition, Offset: r.Offset})
		s.values[string(r.Value)]++
	}
}

// distinct returns how many different values were seen.
func (s *logSink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.values)
}

// has reports whether every value of recs was seen.
func (s *logSink) has(recs ...[]*chat.Record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range recs {
		for _, r := range rs {
			if s.values[string(r.Value)] == 0 {
				return false
			}
		}
	}
	return true
}

// waitFor waits until every value of recs was seen.
func (s *logSink) waitFor(t *testing.T, recs ...[]*chat.Record) {
	t.Helper()
	n := 0
	for _, rs := range recs {
		n += len(rs)
	}
	logEventually(t, fmt.Sprintf("%s to see %d records (saw %d distinct)", s.name, n, s.distinct()), func() bool { return s.has(recs...) })
}

// expectExactly checks that the sink saw exactly want, per partition in
// order, each record once, with the keys, partitions and offsets Append
// reported for them.
func (s *logSink) expectExactly(t *testing.T, recs ...[]*chat.Record) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	byValue := map[string]*chat.Record{}
	for _, rs := range recs {
		for _, r := range rs {
			byValue[string(r.Value)] = r
		}
	}
	want := logWant(recs...)
	for p := range s.parts {
		if _, ok := want[p]; !ok {
			want[p] = nil
		}
	}
	for p, values := range want {
		got := make([]string, len(s.parts[p]))
		for i, seen := range s.parts[p] {
			got[i] = seen.Value
			r, ok := byValue[seen.Value]
			if !ok {
				continue
			}
			if seen.Key != r.Key || seen.Offset != r.Offset || seen.Partition != r.Partition {
				t.Errorf("%s: record %q seen as key %q partition %d offset %d; appended as key %q partition %d offset %d",
					s.name, seen.Value, seen.Key, seen.Partition, seen.Offset, r.Key, r.Partition, r.Offset)
			}
		}
		if !slices.Equal(got, values) {
			t.Errorf("%s: partition %d delivered\n  %v\nwant (append order, each once)\n  %v", s.name, p, logShort(got), logShort(values))
		}
	}
}

// logShort abbreviates a long list of values for failure messages.
func logShort(vs []string) []string {
	if len(vs) <= 12 {
		return vs
	}
	out := append([]string(nil), vs[:6]...)
	out = append(out, fmt.Sprintf("…(%d more)…", len(vs)-12))
	return append(out, vs[len(vs)-6:]...)
}

// logRun is a Consume or Subscribe running on its own goroutine.
type logRun struct {
	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

// logGo runs f on a new goroutine with a cancellable ctx. The run is
// stopped at the end of the test, before the Log is closed.
func logGo(t *testing.T, f func(ctx context.Context) error) *logRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &logRun{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		if !r.ended {
			select {
			case <-r.done:
			case <-time.After(logPatience):
				t.Errorf("a Consume or Subscribe did not return within %v of its ctx being cancelled", logPatience)
			}
		}
	})
	return r
}

// wait waits up to limit for the run to return by itself and returns its
// error.
func (r *logRun) wait(t *testing.T, what string, limit time.Duration) error {
	t.Helper()
	if r.ended {
		return r.err
	}
	select {
	case r.err = <-r.done:
		r.ended = true
		return r.err
	case <-time.After(limit):
		t.Fatalf("%s did not return within %v", what, limit)
		return nil
	}
}

// stop cancels the run and checks that it returns promptly, with nil or
// context.Canceled.
func (r *logRun) stop(t *testing.T, what string) {
	t.Helper()
	r.cancel()
	if err := r.wait(t, what+" after cancel", logPrompt); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("%s returned %v after its ctx was cancelled; want nil or context.Canceled", what, err)
	}
}

// logConsume starts a group member that adds every batch to sink and then
// calls after (if not nil), returning after's error.
func logConsume(t *testing.T, l chat.Log, topic, group string, sink *logSink, after func(partition int, recs []chat.Record) error) *logRun {
	return logGo(t, func(ctx context.Context) error {
		return l.Consume(ctx, topic, group, func(hctx context.Context, partition int, recs []chat.Record) error {
			if hctx == nil {
				sink.t.Errorf("%s: handle got a nil ctx", sink.name)
			}
			sink.add(partition, recs)
			if after != nil {
				return after(partition, recs)
			}
			return nil
		})
	})
}

// logSubscribe starts a subscriber into sink and waits until it is ready.
func logSubscribe(t *testing.T, l chat.Log, topic string, sink *logSink) *logRun {
	t.Helper()
	var readies atomic.Int32
	ready := make(chan struct{})
	r := logGo(t, func(ctx context.Context) error {
		return l.Subscribe(ctx, topic, func() {
			if readies.Add(1) == 1 {
				close(ready)
			} else {
				sink.t.Errorf("%s: ready called more than once", sink.name)
			}
		}, sink.add)
	})
	select {
	case <-ready:
	case err := <-r.done:
		r.ended, r.err = true, err
		t.Fatalf("%s: Subscribe returned %v before calling ready", sink.name, err)
	case <-time.After(logPatience):
		t.Fatalf("%s: Subscribe did not call ready within %v", sink.name, logPatience)
	}
	return r
}

func logTestPartitions(t *testing.T, open func(*testing.T, int) chat.Log) {
	for _, n := range []int{1, 3, 8} {
		if got := open(t, n).Partitions(); got != n {
			t.Errorf("opened with %d partitions, Partitions() = %d", n, got)
		}
	}
}

func logTestPing(t *testing.T, open func(*testing.T, int) chat.Log) {
	l := open(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), logPatience)
	defer cancel()
	if err := l.Ping(ctx); err != nil {
		t.Fatalf("Ping of an open log: %v", err)
	}
}

func logTestAppendOffsets(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 4
	l := open(t, n)
	topic := logName("offsets")
	last := map[int]int64{}
	check := func(call string, recs []*chat.Record) {
		t.Helper()
		for _, r := range recs {
			if want := chat.PartitionOf(r.Key, n); r.Partition != want {
				t.Fatalf("%s: key %q went to partition %d, want PartitionOf = %d", call, r.Key, r.Partition, want)
			}
			if r.Offset < 0 {
				t.Fatalf("%s: negative offset %d", call, r.Offset)
			}
			if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
				t.Fatalf("%s: partition %d offset %d after %d; offsets must grow strictly", call, r.Partition, r.Offset, prev)
			}
			last[r.Partition] = r.Offset
		}
	}
	// Keys not picked to cover partitions: routing is whatever PartitionOf says.
	var recs []*chat.Record
	for i := range 64 {
		recs = append(recs, &chat.Record{Key: fmt.Sprintf("conversation-%d", i%16), Value: []byte("one call")})
	}
	logAppend(t, l, topic, recs...)
	check("one call of 64", recs)
	for i := range 12 {
		r := &chat.Record{Key: fmt.Sprintf("conversation-%d", i), Value: []byte("single")}
		logAppend(t, l, topic, r)
		check("single-record call", []*chat.Record{r})
	}
	more := logMake("more", logKeys(n, 2), 40)
	logAppend(t, l, topic, more...)
	check("second call of 40", more)
	if len(last) != n {
		t.Fatalf("records reached %d partitions, want all %d", len(last), n)
	}
}

func logTestAppendNothing(t *testing.T, open func(*testing.T, int) chat.Log) {
	l := open(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), logPatience)
	defer cancel()
	if err := l.Append(ctx, logName("nothing")); err != nil {
		t.Fatalf("Append of no records: %v", err)
	}
}

func logTestAppendCopies(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 2
	l := open(t, n)
	topic := logName("copies")
	recs := logMake("copy", logKeys(n, 1), 20)
	buf := make([]byte, 0, 20*16)
	for _, r := range recs { // all values in one buffer the caller then reuses
		start := len(buf)
		buf = append(buf, r.Value...)
		r.Value = buf[start:len(buf):len(buf)]
	}
	want := make([]*chat.Record, len(recs))
	logAppend(t, l, topic, recs...)
	for i, r := range recs {
		c := *r
		c.Value = slices.Clone(r.Value)
		want[i] = &c
	}
	for i := range buf {
		buf[i] = 'X'
	}
	sink := newLogSink(t, "consumer")
	logConsume(t, l, topic, logName("g"), sink, nil)
	sink.waitFor(t, want)
	sink.expectExactly(t, want)
}

func logTestConcurrentAppend(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n, writers, perWriter = 4, 4, 150
	l := open(t, n)
	topic := logName("concurrent")
	keys := logKeys(n, 2)
	all := make([][]*chat.Record, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		all[w] = logMake(fmt.Sprintf("w%d", w), keys, perWriter)
		wg.Add(1)
		go func(recs []*chat.Record) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), logPatience)
			defer cancel()
			for i, k := 0, 0; i < len(recs); k++ {
				size := 1 + k%3
				size = min(size, len(recs)-i)
				if err := l.Append(ctx, topic, recs[i:i+size]...); err != nil {
					errs <- err
					return
				}
				i += size
			}
		}(all[w])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: %v", err)
	}
	used := map[int]map[int64]string{}
	for w, recs := range all {
		last := map[int]int64{}
		for _, r := range recs {
			if want := chat.PartitionOf(r.Key, n); r.Partition != want {
				t.Fatalf("key %q went to partition %d, want %d", r.Key, r.Partition, want)
			}
			if used[r.Partition] == nil {
				used[r.Partition] = map[int64]string{}
			}
			if other, dup := used[r.Partition][r.Offset]; dup {
				t.Fatalf("partition %d offset %d given to both %q and %q", r.Partition, r.Offset, other, r.Value)
			}
			used[r.Partition][r.Offset] = string(r.Value)
			if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
				t.Fatalf("writer %d: partition %d offset %d after its own earlier %d", w, r.Partition, r.Offset, prev)
			}
			last[r.Partition] = r.Offset
		}
	}
	// A consumer gets them all in offset order, so each writer's order holds.
	sink := newLogSink(t, "consumer")
	logConsume(t, l, topic, logName("g"), sink, nil)
	sink.waitFor(t, all...)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for p, seen := range sink.parts {
		if len(seen) != len(used[p]) {
			t.Errorf("partition %d: consumer got %d records, %d were appended", p, len(seen), len(used[p]))
		}
		for i, s := range seen {
			if used[p][s.Offset] != s.Value {
				t.Errorf("partition %d offset %d holds %q, Append reported %q there", p, s.Offset, s.Value, used[p][s.Offset])
			}
			if i > 0 && s.Offset <= seen[i-1].Offset {
				t.Errorf("partition %d delivered offset %d after %d", p, s.Offset, seen[i-1].Offset)
			}
		}
	}
}

func logTestAppendOrder(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 3
	l := open(t, n)
	topic := logName("order")
	keys := logKeys(n, 2)
	batch1 := logMake("first", keys, 50)
	singles := logMake("single", keys, 12)
	batch2 := logMake("last", keys, 30)
	logAppend(t, l, topic, batch1...)
	logAppendEach(t, l, topic, singles, 1)
	logAppend(t, l, topic, batch2...)
	sink := newLogSink(t, "consumer")
	logConsume(t, l, topic, logName("g"), sink, nil)
	sink.waitFor(t, batch1, singles, batch2)
	sink.expectExactly(t, batch1, singles, batch2)
}

func logTestConsumeAll(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 4
	l := open(t, n)
	topic := logName("consume")
	keys := logKeys(n, 3)
	before := logMake("before", keys, 300)
	logAppendEach(t, l, topic, before, 7, 1, 40)
	sink := newLogSink(t, "consumer")
	logConsume(t, l, topic, logName("g"), sink, nil)
	sink.waitFor(t, before)
	// Records appended while the member is live arrive too.
	live := logMake("live", keys, 300)
	logAppendEach(t, l, topic, live, 1, 5, 50)
	sink.waitFor(t, before, live)
	sink.expectExactly(t, before, live)
}

func logTestGroupSplit(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 4
	l := open(t, n)
	topic := logName("split")
	group := logName("g")
	keys := logKeys(n, 1)
	var active [n]atomic.Int32
	all := newLogSink(t, "group")
	member := func(name string) (*logSink, *logRun) {
		sink := newLogSink(t, name)
		run := logConsume(t, l, topic, group, sink, func(p int, recs []chat.Record) error {
			if active[p].Add(1) > 1 {
				t.Errorf("partition %d handled by two members of one group at once", p)
			}
			all.add(p, recs)
			time.Sleep(time.Millisecond) // widen the window for an overlap to show
			active[p].Add(-1)
			return nil
		})
		return sink, run
	}
	a, runA := member("member a")
	b, _ := member("member b")

	// Keep appending a record to every partition until both members have
	// handled some: a real broker may take a while to rebalance.
	var sent [][]*chat.Record
	round := 0
	deadline := time.Now().Add(logPatience)
	for a.distinct() == 0 || b.distinct() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %v, member a handled %d records and member b %d; want both to handle some", logPatience, a.distinct(), b.distinct())
		}
		recs := logMake(fmt.Sprintf("round%d", round), keys, n)
		round++
		logAppend(t, l, topic, recs...)
		sent = append(sent, recs)
		all.waitFor(t, sent...)
		time.Sleep(10 * time.Millisecond) // pace the rounds while the group settles
	}
	// Both members live: a stream of records, every one handled, and no
	// partition in two handlers at once.
	for i := range 40 {
		recs := logMake(fmt.Sprintf("both%d", i), keys, n)
		logAppend(t, l, topic, recs...)
		sent = append(sent, recs)
	}
	all.waitFor(t, sent...)
	// A member leaving hands its partitions to the one that stays.
	runA.stop(t, "Consume of member a")
	after := logMake("after", logKeys(n, 3), 60)
	logAppendEach(t, l, topic, after, 1, 4)
	sent = append(sent, after)
	all.waitFor(t, sent...)
}

func logTestResume(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 2
	l := open(t, n)
	topic := logName("resume")
	group := logName("g")
	keys := logKeys(n, 2)
	first := logMake("first", keys, 50)
	logAppendEach(t, l, topic, first, 10, 1)
	a := newLogSink(t, "first member")
	runA := logConsume(t, l, topic, group, a, nil)
	a.waitFor(t, first)
	runA.stop(t, "Consume of the first member")
	a.expectExactly(t, first)

	second := logMake("second", keys, 30)
	logAppendEach(t, l, topic, second, 1, 3)
	b := newLogSink(t, "second member")
	logConsume(t, l, topic, group, b, nil)
	b.waitFor(t, second)
	// Every partition got new records, so a redelivered old one would have
	// come before them.
	b.expectExactly(t, second)
}

var errLogHandle = errors.New("chattest: handle failed on purpose")

func logTestHandleError(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 2
	l := open(t, n)
	topic := logName("fail")
	group := logName("g")
	keys := [][]string{logKeys(n, 1)[1]} // one partition
	ok := logMake("ok", keys, 5)
	logAppend(t, l, topic, ok...)

	var failing atomic.Bool
	var failedAt atomic.Int64
	failedAt.Store(-1)
	a := newLogSink(t, "failing member")
	runA := logConsume(t, l, topic, group, a, func(_ int, recs []chat.Record) error {
		if failing.Load() {
			failedAt.CompareAndSwap(-1, recs[0].Offset)
			return fmt.Errorf("batch at %d: %w", recs[0].Offset, errLogHandle)
		}
		return nil
	})
	a.waitFor(t, ok)
	failing.Store(true)
	bad := logMake("bad", keys, 5)
	logAppend(t, l, topic, bad...)
	if err := runA.wait(t, "Consume after its handle failed", logPatience); !errors.Is(err, errLogHandle) {
		t.Fatalf("Consume returned %v; want the error of handle", err)
	}
	if got, want := failedAt.Load(), bad[0].Offset; got != want {
		t.Fatalf("the failed batch started at offset %d; want %d, the first record after the handled ones", got, want)
	}

	b := newLogSink(t, "next member")
	logConsume(t, l, topic, group, b, nil)
	b.waitFor(t, bad)
	b.expectExactly(t, bad)
}

func logTestGroupsIndependent(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 3
	l := open(t, n)
	topic := logName("groups")
	keys := logKeys(n, 2)
	before := logMake("before", keys, 100)
	logAppendEach(t, l, topic, before, 9)
	x, y := newLogSink(t, "group x"), newLogSink(t, "group y")
	logConsume(t, l, topic, logName("x"), x, nil)
	logConsume(t, l, topic, logName("y"), y, nil)
	x.waitFor(t, before)
	y.waitFor(t, before)
	live := logMake("live", keys, 50)
	logAppendEach(t, l, topic, live, 1, 10)
	x.waitFor(t, before, live)
	y.waitFor(t, before, live)
	x.expectExactly(t, before, live)
	y.expectExactly(t, before, live)
}

func logTestSubscribe(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 3
	l := open(t, n)
	topic := logName("subscribe")
	keys := logKeys(n, 2)
	old := logMake("old", keys, 60)
	logAppendEach(t, l, topic, old, 20, 1)
	s1, s2 := newLogSink(t, "subscriber 1"), newLogSink(t, "subscriber 2")
	logSubscribe(t, l, topic, s1)
	logSubscribe(t, l, topic, s2)
	fresh := logMake("new", keys, 90)
	logAppendEach(t, l, topic, fresh, 1, 30, 2)
	s1.waitFor(t, fresh)
	s2.waitFor(t, fresh)
	// Every partition got new records after the old ones, so an old record
	// delivered would have come first.
	s1.expectExactly(t, fresh)
	s2.expectExactly(t, fresh)
}

func logTestCancel(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 2
	l := open(t, n)
	topic := logName("cancel")

	// Idle: nothing to read.
	sub := logSubscribe(t, l, topic, newLogSink(t, "subscriber"))
	noReady := logGo(t, func(ctx context.Context) error {
		return l.Subscribe(ctx, topic, nil, func(int, []chat.Record) {})
	})
	sink := newLogSink(t, "consumer")
	cons := logConsume(t, l, topic, logName("g"), sink, nil)
	recs := logMake("one", logKeys(n, 1), 2)
	logAppend(t, l, topic, recs...)
	sink.waitFor(t, recs)
	sub.stop(t, "idle Subscribe")
	noReady.stop(t, "Subscribe without ready")
	cons.stop(t, "idle Consume")

	// Already done before the call.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for what, f := range map[string]func() error{
		"Consume": func() error {
			return l.Consume(done, topic, logName("g"), func(context.Context, int, []chat.Record) error { return nil })
		},
		"Subscribe": func() error {
			return l.Subscribe(done, topic, nil, func(int, []chat.Record) {})
		},
	} {
		ch := make(chan error, 1)
		go func() { ch <- f() }()
		select {
		case err := <-ch:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a done ctx returned %v; want nil or context.Canceled", what, err)
			}
		case <-time.After(logPrompt):
			t.Fatalf("%s with a done ctx did not return within %v", what, logPrompt)
		}
	}

	// Busy: a member in the middle of a stream of records.
	busy := newLogSink(t, "busy consumer")
	run := logConsume(t, l, topic, logName("g"), busy, nil)
	stream := logMake("stream", logKeys(n, 2), 2000)
	logAppendEach(t, l, topic, stream, 100)
	logEventually(t, "the busy consumer to start", func() bool { return busy.distinct() > 0 })
	run.stop(t, "busy Consume")
}

// logHoldingConsume starts a group member that adds every batch to sink,
// holds its commit (chat.HoldCommit) and releases it after a short while
// from a goroutine of its own, with release(offset of the batch's first
// record). It counts the holds taken and released.
func logHoldingConsume(t *testing.T, l chat.Log, topic, group string, sink *logSink, held, released *atomic.Int64, release func(first int64) error) *logRun {
	return logGo(t, func(ctx context.Context) error {
		return l.Consume(ctx, topic, group, func(hctx context.Context, partition int, recs []chat.Record) error {
			sink.add(partition, recs)
			done := chat.HoldCommit(hctx)
			if done == nil {
				sink.t.Errorf("%s: HoldCommit returned nil in a handle ctx", sink.name)
				return nil
			}
			if again := chat.HoldCommit(hctx); again != nil {
				sink.t.Errorf("%s: a second HoldCommit of one batch returned a release", sink.name)
			}
			held.Add(1)
			first := recs[0].Offset
			go func() {
				time.Sleep(20 * time.Millisecond)
				released.Add(1)
				done(release(first))
				done(errLogHandle) // only the first release counts
			}()
			return nil
		})
	})
}

func logTestHoldCommit(t *testing.T, open func(*testing.T, int) chat.Log) {
	const n = 2
	l := open(t, n)
	topic := logName("hold")
	group := logName("g")
	keys := [][]string{logKeys(n, 1)[1]} // one partition
	first := logMake("first", keys, 5)
	logAppend(t, l, topic, first...)

	// Every batch held, the first one released with an error: Consume
	// fails with it, and nothing is committed.
	var heldA, releasedA atomic.Int64
	a := newLogSink(t, "member releasing an error")
	runA := logHoldingConsume(t, l, topic, group, a, &heldA, &releasedA, func(off int64) error {
		if off == first[0].Offset {
			return fmt.Errorf("release of the batch at %d: %w", off, errLogHandle)
		}
		return nil
	})
	if err := runA.wait(t, "Consume after a failed release", logPatience); !errors.Is(err, errLogHandle) {
		t.Fatalf("Consume returned %v; want the error its handler released the batch with", err)
	}
	if h, r := heldA.Load(), releasedA.Load(); h != r {
		t.Fatalf("Consume returned with %d of %d holds released; want all", r, h)
	}

	// The next member gets every record again; it releases with nil.
	var heldB, releasedB atomic.Int64
	b := newLogSink(t, "member releasing nil")
	runB := logHoldingConsume(t, l, topic, group, b, &heldB, &releasedB, func(int64) error { return nil })
	b.waitFor(t, first)
	more := logMake("more", keys, 5)
	logAppendEach(t, l, topic, more, 1)
	b.waitFor(t, first, more)
	runB.stop(t, "Consume of the member releasing nil")
	if h, r := heldB.Load(), releasedB.Load(); h != r {
		t.Fatalf("Consume returned with %d of %d holds released; want all", r, h)
	}
	b.expectExactly(t, first, more)

	// Released with nil: committed, so the next member starts after them.
	last := logMake("last", keys, 5)
	logAppend(t, l, topic, last...)
	c := newLogSink(t, "next member")
	logConsume(t, l, topic, group, c, nil)
	c.waitFor(t, last)
	c.expectExactly(t, last)
}

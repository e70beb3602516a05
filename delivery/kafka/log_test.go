package kafka

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
)

// brokers returns the brokers of the test cluster (PARLEY_KAFKA_BROKERS,
// else the one deploy/local/services starts) and fails the test when they
// do not answer: the real adapter is tested against a real broker, never
// skipped, in CI or not.
func brokers(t *testing.T) []string {
	t.Helper()
	addrs := os.Getenv("PARLEY_KAFKA_BROKERS")
	if addrs == "" {
		addrs = "127.0.0.1:9092"
	}
	list := strings.Split(addrs, ",")
	l := &Log{cfg: testConfig(t, list, 1).withDefaults()}
	l.client, l.dialer = newClient(l.cfg), newDialer(l.cfg)
	defer l.client.Transport.(*kafkago.Transport).CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Ping(ctx); err != nil {
		what := "failing"
		if os.Getenv("CI") == "true" {
			what = "failing in CI"
		}
		t.Fatalf("Kafka at %s does not answer (%v), %s: run `deploy/local/services up kafka`", addrs, err, what)
	}
	return list
}

// testConfig gives every opened log topics and groups of its own (a fresh
// prefix), so reruns against the same broker never collide and the suite
// never touches a deployment's commands and events. Group timings are
// short, so joins and rebalances take well under a second.
func testConfig(t *testing.T, brokers []string, partitions int) Config {
	return Config{
		Brokers:           brokers,
		Partitions:        partitions,
		ClientID:          "parley-test",
		SessionTimeout:    6 * time.Second, // the broker's group.min.session.timeout.ms
		HeartbeatInterval: 100 * time.Millisecond,
		RebalanceTimeout:  5 * time.Second,
		MaxWait:           200 * time.Millisecond,
		TopicPrefix:       chat.NewID("parley-test") + ".",
	}
}

// open opens a log for the test; at the end of the test it closes it,
// checking that Close returns promptly, and then deletes the topics and
// groups of its prefix, so that runs do not pile up on a shared broker.
func open(t *testing.T, cfg Config) *Log {
	t.Helper()
	t.Cleanup(func() { dropPrefix(t, cfg) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		start := time.Now()
		l.Close()
		if d := time.Since(start); d > closeLimit {
			t.Errorf("Close took %v, want at most %v", d, closeLimit)
		}
	})
	return l
}

// closeLimit bounds Close in the tests: Consume and Subscribe calls are
// already stopped by then, and group leaves take milliseconds.
const closeLimit = 10 * time.Second

// dropPrefix deletes, best effort, every topic and group named with
// cfg.TopicPrefix.
func dropPrefix(t *testing.T, cfg Config) {
	t.Helper()
	client := newClient(cfg.withDefaults())
	defer client.Transport.(*kafkago.Transport).CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groups, err := client.ListGroups(ctx, &kafkago.ListGroupsRequest{})
	if err != nil {
		t.Logf("cleanup: list groups: %v", err)
		return
	}
	for _, g := range groups.Groups {
		if strings.HasPrefix(g.GroupID, cfg.TopicPrefix) {
			if _, err := client.DeleteGroups(ctx, &kafkago.DeleteGroupsRequest{GroupIDs: []string{g.GroupID}}); err != nil {
				t.Logf("cleanup: delete group %s: %v", g.GroupID, err)
			}
		}
	}
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		t.Logf("cleanup: list topics: %v", err)
		return
	}
	var topics []string
	for _, tp := range meta.Topics {
		if strings.HasPrefix(tp.Name, cfg.TopicPrefix) {
			topics = append(topics, tp.Name)
		}
	}
	if len(topics) == 0 {
		return
	}
	if _, err := client.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: topics}); err != nil {
		t.Logf("cleanup: delete topics: %v", err)
	}
}

func TestLogContract(t *testing.T) {
	list := brokers(t)
	chattest.TestLog(t, func(t *testing.T, partitions int) chat.Log {
		return open(t, testConfig(t, list, partitions))
	})
}

func TestOpenRefusesATopicWithAnotherPartitionCount(t *testing.T) {
	list := brokers(t)
	cfg := testConfig(t, list, 3)
	open(t, cfg)
	cfg.Partitions = 4
	_, err := Open(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "has 3 partitions") {
		t.Fatalf("Open with 4 partitions where commands has 3: %v; want a partition count error", err)
	}
}

func TestUnreachableBrokerIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Open(ctx, testConfig(t, []string{"127.0.0.1:1"}, 2))
	if chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Fatalf("Open against a closed port: %v; want unavailable", err)
	}
}

// TestTopicCreatedByAnotherProcessIsUsableAtOnce appends through one log
// to a topic that another log (another process, in a deployment) has just
// created: the first log's cached cluster metadata does not know it yet,
// and must not wait for its next periodic refresh.
func TestTopicCreatedByAnotherProcessIsUsableAtOnce(t *testing.T) {
	cfg := testConfig(t, brokers(t), 2)
	mine, theirs := open(t, cfg), open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		topic := fmt.Sprintf("fresh%d", i)
		if err := theirs.Append(ctx, topic, &chat.Record{Key: "k", Value: []byte("theirs")}); err != nil {
			t.Fatalf("Append through the log that creates %s: %v", topic, err)
		}
		start := time.Now()
		if err := mine.Append(ctx, topic, &chat.Record{Key: "k", Value: []byte("mine")}); err != nil {
			t.Fatalf("Append to %s, created elsewhere: %v", topic, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Append to %s, created elsewhere, took %v", topic, d)
		}
	}
}

// TestCloseStopsRunningCallsAndLaterOnesAreUnavailable closes a log under
// a live group member and a subscriber: both return unavailable, Close
// returns promptly (open checks it), and later calls are unavailable.
func TestCloseStopsRunningCallsAndLaterOnesAreUnavailable(t *testing.T) {
	l := open(t, testConfig(t, brokers(t), 2))
	ctx := context.Background()
	sub := make(chan error, 1)
	ready := make(chan struct{})
	go func() { sub <- l.Subscribe(ctx, "t", func() { close(ready) }, func(int, []chat.Record) {}) }()
	select {
	case <-ready:
	case err := <-sub:
		t.Fatalf("Subscribe returned %v before calling ready", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Subscribe did not call ready")
	}
	cons := make(chan error, 1)
	handled := make(chan struct{}, 1)
	go func() {
		cons <- l.Consume(ctx, "t", "g", func(context.Context, int, []chat.Record) error {
			select {
			case handled <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	if err := l.Append(ctx, "t", &chat.Record{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	select {
	case <-handled: // the member has joined
	case err := <-cons:
		t.Fatalf("Consume returned %v before handling a record", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Consume did not handle the record")
	}
	l.Close()
	for what, ch := range map[string]chan error{"Subscribe": sub, "Consume": cons} {
		select {
		case err := <-ch:
			if chat.ErrorCode(err) != chat.CodeUnavailable {
				t.Errorf("%s on a closed log returned %v, want unavailable", what, err)
			}
		default: // Close waits for running calls
			t.Errorf("%s still running after Close returned", what)
		}
	}
	if err := l.Ping(ctx); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Ping after Close: %v; want unavailable", err)
	}
	if err := l.Append(ctx, "t", &chat.Record{Key: "k"}); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Append after Close: %v; want unavailable", err)
	}
	if err := l.Consume(ctx, "t", "g", func(context.Context, int, []chat.Record) error { return nil }); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Consume after Close: %v; want unavailable", err)
	}
	if err := l.Subscribe(ctx, "t", nil, func(int, []chat.Record) {}); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Subscribe after Close: %v; want unavailable", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Brokers: []string{"127.0.0.1:9092"}}, true},
		{"no brokers", Config{}, false},
		{"broker without port", Config{Brokers: []string{"kafka"}}, false},
		{"negative partitions", Config{Brokers: []string{"a:1"}, Partitions: -1}, false},
		{"kafka-go's 1s batch timeout is the most", Config{Brokers: []string{"a:1"}, BatchTimeout: 2 * time.Second}, false},
		{"heartbeat not below session", Config{Brokers: []string{"a:1"}, HeartbeatInterval: 10 * time.Second, SessionTimeout: 10 * time.Second}, false},
		{"bad prefix", Config{Brokers: []string{"a:1"}, TopicPrefix: "a/b"}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
	}
	if got := (Config{}).withDefaults().BatchTimeout; got != 2*time.Millisecond {
		t.Errorf("default BatchTimeout %v, want 2ms", got)
	}
}

// An Append bigger than the broker takes in one request (1 MiB by
// default) goes out in several requests, in order; without the split the
// broker refuses it for ever.
func TestBigAppendIsSplitInOrder(t *testing.T) {
	l := open(t, testConfig(t, brokers(t), 1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	big := make([]byte, 400<<10)
	var recs []*chat.Record
	for i := 0; i < 5; i++ {
		v := append([]byte(nil), big...)
		v[0] = byte('a' + i)
		recs = append(recs, &chat.Record{Key: "k", Value: v})
	}
	if err := l.Append(ctx, "big", recs...); err != nil {
		t.Fatalf("Append of 2 MiB to one partition: %v", err)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Offset <= recs[i-1].Offset {
			t.Fatalf("offsets out of order: %d then %d", recs[i-1].Offset, recs[i].Offset)
		}
	}
	got, err := l.fetch(ctx, l.name("big"), 0, recs[0].Offset)
	if err != nil || len(got) == 0 || got[0].Value[0] != 'a' {
		t.Fatalf("fetch of the first record: %d records, %v", len(got), err)
	}
}

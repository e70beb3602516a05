// Package kafka is the distributed chat.Log on Apache Kafka, through
// github.com/segmentio/kafka-go.
//
// Every topic has Config.Partitions partitions and is created on first use
// (commands and events at Open). A record goes to partition
// chat.PartitionOf(key, n) and its offset is the Kafka offset, so offsets
// never go back, also across restarts.
//
// Append produces with acks=all through kafka.Client.Produce, one request
// per partition at a time: kafka-go's Writer does not report offsets, and
// the cursor needs them. Appends to one partition that arrive within
// Config.BatchTimeout of each other (or while a request is in flight) share
// one produce request.
//
// Consume is a classic consumer group (kafka-go's ConsumerGroup API): each
// generation's assigned partitions are read with fetch requests, one fetch
// result is one batch, and a batch's offset is committed, in the
// generation, once handle returns nil (and, when handle held the batch with
// chat.HoldCommit, once it is released; the reader hands out the next
// batch meanwhile). A generation ends only when every partition reader of
// this member has returned, and a reader returns only once every hold of
// its partition is released, so a partition is
// never handled by two members at once. Handle calls for different
// partitions run side by side (one partition's calls never overlap), so a
// sequencer that owns many partitions is not bounded by one partition's
// round trips.
//
// Subscribe fetches every partition from the end offsets it lists before
// calling ready; it keeps no group and commits nothing.
//
// Producing is at least once: a produce that times out may have been
// written, and Append's retry writes it again.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parleychat/parley/chat"
)

// Defaults of Config's zero fields.
const (
	DefaultBatchTimeout      = 2 * time.Millisecond
	DefaultReplicationFactor = 1
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultRebalanceTimeout  = 10 * time.Second
	DefaultMaxWait           = 500 * time.Millisecond
	DefaultClientID          = "parley"
)

const (
	// maxBatchRecords and maxBatchBytes bound one produce request.
	maxBatchRecords = 4096
	maxBatchBytes   = 1 << 20
	// fetchMaxBytes bounds one fetch, hence one handled batch.
	fetchMaxBytes = 1 << 20
	// requestTimeout bounds one produce or metadata round trip.
	requestTimeout = 10 * time.Second
	// pingTimeout bounds Ping when ctx has a longer deadline.
	pingTimeout = 2 * time.Second
)

var _ chat.Log = (*Log)(nil)

// Config configures the Kafka log.
type Config struct {
	// Brokers are bootstrap addresses, host:port.
	Brokers []string
	// Partitions is the partition count of every topic (0: chat.DefaultPartitions).
	Partitions int
	// ReplicationFactor of the topics created (0: 1).
	ReplicationFactor int
	// BatchTimeout is how long a produce request waits for more appends to
	// the same partition (0: 2 ms). Never kafka-go's 1 s default.
	BatchTimeout time.Duration
	// ClientID names this process to the brokers (0: "parley").
	ClientID string
	// SessionTimeout, HeartbeatInterval and RebalanceTimeout are the
	// consumer group timings. A member notices a rebalance at its next
	// heartbeat; the broker bounds SessionTimeout by
	// group.min.session.timeout.ms (6 s by default).
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	RebalanceTimeout  time.Duration
	// MaxWait bounds how long an idle fetch waits for records (0: 500 ms).
	MaxWait time.Duration
	// TopicPrefix is put before every topic and group name, so that
	// deployments (or test runs) can share a cluster. Empty in production.
	TopicPrefix string
}

func (cfg Config) withDefaults() Config {
	if cfg.Partitions == 0 {
		cfg.Partitions = chat.DefaultPartitions
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = DefaultReplicationFactor
	}
	if cfg.BatchTimeout == 0 {
		cfg.BatchTimeout = DefaultBatchTimeout
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.RebalanceTimeout == 0 {
		cfg.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	return cfg
}

// Validate reports whether cfg is usable; zero fields take their defaults.
func (cfg Config) Validate() error {
	c := cfg.withDefaults()
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafka: Brokers is required")
	case c.Partitions < 1:
		return fmt.Errorf("kafka: Partitions must be at least 1, not %d", c.Partitions)
	case c.ReplicationFactor < 1:
		return fmt.Errorf("kafka: ReplicationFactor must be at least 1, not %d", c.ReplicationFactor)
	case c.BatchTimeout < 0 || c.BatchTimeout > time.Second:
		return fmt.Errorf("kafka: batch timeout must be within (0, 1s], not %v", c.BatchTimeout)
	case c.SessionTimeout < 0 || c.HeartbeatInterval < 0 || c.RebalanceTimeout < 0 || c.MaxWait < 0:
		return errors.New("kafka: timeouts must not be negative")
	case c.HeartbeatInterval >= c.SessionTimeout:
		return fmt.Errorf("kafka: HeartbeatInterval %v must be below SessionTimeout %v", c.HeartbeatInterval, c.SessionTimeout)
	}
	for _, r := range c.TopicPrefix {
		if !validNameRune(r) {
			return fmt.Errorf("kafka: TopicPrefix %q: only letters, digits, '.', '_' and '-'", c.TopicPrefix)
		}
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("kafka: broker %q: %v", b, err)
		}
	}
	return nil
}

// Log is a chat.Log on Kafka.
type Log struct {
	cfg    Config
	client *kafkago.Client
	dialer *kafkago.Dialer

	// life is cancelled by Close; it bounds producers and readers.
	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // producers and lingering group closes
	calls  sync.WaitGroup // running Consume and Subscribe calls

	mu        sync.Mutex
	closed    bool
	topics    map[string]bool // ensured topics
	producers map[producerKey]*producer
}

// Open checks cfg, connects, and creates the commands and events topics
// when they are missing (an existing topic must have cfg.Partitions
// partitions).
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, chat.Errorf(chat.CodeInvalid, "%v", err)
	}
	cfg = cfg.withDefaults()
	life, cancel := context.WithCancel(context.Background())
	l := &Log{
		cfg:       cfg,
		client:    newClient(cfg),
		dialer:    newDialer(cfg),
		life:      life,
		cancel:    cancel,
		topics:    map[string]bool{},
		producers: map[producerKey]*producer{},
	}
	for _, topic := range []string{chat.TopicCommands, chat.TopicEvents} {
		if err := l.ensureTopic(ctx, l.name(topic)); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

func newDialer(cfg Config) *kafkago.Dialer {
	return &kafkago.Dialer{ClientID: cfg.ClientID, Timeout: 5 * time.Second, DualStack: true}
}

func newClient(cfg Config) *kafkago.Client {
	return &kafkago.Client{
		Addr: kafkago.TCP(cfg.Brokers...),
		Transport: &kafkago.Transport{
			ClientID:    cfg.ClientID,
			DialTimeout: 5 * time.Second,
			IdleTimeout: time.Minute,
			MetadataTTL: 10 * time.Second,
		},
	}
}

// Partitions is the partition count of every topic.
func (l *Log) Partitions() int { return l.cfg.Partitions }

// Ping opens a fresh connection to a broker and asks for its API versions:
// the client's pooled connections and cached metadata would hide a broker
// that is gone.
func (l *Log) Ping(ctx context.Context) error {
	if l.isClosed() {
		return errClosed("kafka: ping")
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	var last error
	for _, b := range l.cfg.Brokers {
		conn, err := l.dialer.DialContext(ctx, "tcp", b)
		if err != nil {
			last = err
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(pingTimeout))
		_, err = conn.ApiVersions()
		conn.Close()
		if err == nil {
			return nil
		}
		last = err
	}
	return unavailable("kafka: ping", last)
}

// Close stops the producers, makes running Consume and Subscribe calls
// return unavailable, and waits for all of them and for the group members
// still leaving, before it closes the connections. Consume returns within
// groupCloseWait, a producer within requestTimeout; a member still leaving
// after that is bounded by kafka-go's group request timeouts.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.calls.Wait()
	l.wg.Wait()
	if t, ok := l.client.Transport.(*kafkago.Transport); ok {
		t.CloseIdleConnections()
	}
	return nil
}

// enter registers a Consume or Subscribe call, which must call
// l.calls.Done when it returns; it reports false once the log is closed.
func (l *Log) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.calls.Add(1)
	return true
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// name is the Kafka name of a topic or group.
func (l *Log) name(s string) string { return l.cfg.TopicPrefix + s }

func validNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// ensureTopic creates topic (a Kafka name, prefix included) with the configured partitions if it is
// missing, and checks the partition count of an existing one. Creating
// first, before any metadata request names the topic, keeps the broker
// from auto-creating it with its default partition count.
func (l *Log) ensureTopic(ctx context.Context, topic string) error {
	if topic == l.cfg.TopicPrefix || len(topic) > 249 {
		return chat.Errorf(chat.CodeInvalid, "kafka: topic name %q is empty or too long", topic)
	}
	for _, r := range topic {
		if !validNameRune(r) {
			return chat.Errorf(chat.CodeInvalid, "kafka: topic name %q: only letters, digits, '.', '_' and '-'", topic)
		}
	}
	l.mu.Lock()
	known := l.topics[topic]
	l.mu.Unlock()
	if known {
		return nil
	}
	op := "kafka: ensure topic " + topic
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := l.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{
		Topic:             topic,
		NumPartitions:     l.cfg.Partitions,
		ReplicationFactor: l.cfg.ReplicationFactor,
	}}})
	if err != nil {
		return unavailable(op, err)
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		var ke kafkago.Error
		if errors.As(err, &ke) && !ke.Temporary() {
			return &chat.Error{Code: chat.CodeInvalid, Op: op, Err: err}
		}
		return unavailable(op, err)
	}
	// Wait until every partition has a leader: a just-created topic is not
	// writable at once. (kafka-go answers metadata requests from a cache,
	// which it refreshes after every CreateTopics, also one that finds the
	// topic created by another process.)
	for {
		meta, err := l.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return unavailable(op, err)
		}
		ready, err := l.topicReady(meta, topic)
		if err != nil {
			return &chat.Error{Code: chat.CodeInternal, Op: op, Err: err}
		}
		if ready {
			break
		}
		select {
		case <-ctx.Done():
			return unavailable(op, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	l.mu.Lock()
	l.topics[topic] = true
	l.mu.Unlock()
	return nil
}

// topicReady reports whether meta shows topic with every partition led;
// a topic with another partition count is an error, as routing by key
// would then disagree with the cursor.
func (l *Log) topicReady(meta *kafkago.MetadataResponse, topic string) (bool, error) {
	for _, t := range meta.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return false, nil
		}
		if len(t.Partitions) != 0 && len(t.Partitions) != l.cfg.Partitions {
			return false, fmt.Errorf("topic %s has %d partitions, the deployment has %d", topic, len(t.Partitions), l.cfg.Partitions)
		}
		if len(t.Partitions) == 0 {
			return false, nil
		}
		for _, p := range t.Partitions {
			if p.Leader.ID < 0 || p.Leader.Host == "" {
				return false, nil
			}
		}
		return true, nil
	}
	return false, nil
}

// unavailable classifies an error met talking to Kafka.
func unavailable(op string, err error) error {
	return &chat.Error{Code: chat.CodeUnavailable, Op: op, Err: err}
}

func errClosed(op string) error {
	return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "log closed"}
}

// retriable reports whether a request that failed with err may be sent
// again: a network failure, or a Kafka error the protocol marks temporary
// (no leader yet, leader moved, not enough replicas …).
func retriable(err error) bool {
	var ke kafkago.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Package cassandra is Parley's distributed chat.Store on Apache Cassandra,
// through gocql: conversations, memberships, the event log, materialized
// messages, dedup records, heads, deployment metadata and attachments.
//
// Events and messages live in Discord-style partitions (conversation,
// seq / 4096) clustered by seq descending. Writers are fenced per log
// partition: Own takes the partition's next epoch with one lightweight
// transaction, and each Commit claims its whole batch with one more,
// conditioned on the epoch, after recording the batch with a plain write;
// the rows then go out as plain writes in unlogged batches (the claim is
// the batch log). The partition's next Own finishes a claimed batch whose
// writer died, so a claimed batch is never lost and a refused one is never
// written. Every change of a batch has its own write timestamp, above
// every earlier claim's, so a late duplicate write of an older batch never
// undoes a newer one (deleted text stays scrubbed).
package cassandra

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gocql/gocql"

	"github.com/parleychat/parley/chat"
)

// Config configures the store.
type Config struct {
	// Hosts are the contact points, host or host:port (9042 by default).
	Hosts []string
	// Keyspace holds Parley's tables; Open creates it when missing.
	Keyspace string
	// Replication is the keyspace's replication factor when Open creates it
	// (SimpleStrategy); 1 when zero.
	Replication int
	// Consistency of reads and writes: LOCAL_QUORUM when empty. With one
	// replica every quorum is that replica.
	Consistency string
	// DedupTTL is how long a client_id is remembered: 30 days when zero,
	// at least 7 days.
	DedupTTL time.Duration
	// Timeout bounds each request; 5 s when zero.
	Timeout time.Duration
	// AddressMap translates the addresses the cluster announces for its
	// nodes (host:port, as in system.local and system.peers) into the
	// addresses this process dials, for nodes reached through a NAT or a
	// proxy. An address not in the map is dialed as announced.
	AddressMap map[string]string
}

const (
	defaultConsistency = "LOCAL_QUORUM"
	defaultDedupTTL    = 30 * 24 * time.Hour
	minDedupTTL        = 7 * 24 * time.Hour
	defaultTimeout     = 5 * time.Second
)

// RegisterFlags registers the settings on fs. -cassandra.hosts takes
// comma-separated host[:port]s; leaving it empty keeps the embedded store.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Func("cassandra.hosts", "comma-separated Cassandra contact points, host[:port] (default: the embedded store)", func(v string) error {
		c.Hosts = c.Hosts[:0]
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.Hosts = append(c.Hosts, h)
			}
		}
		return nil
	})
	fs.StringVar(&c.Keyspace, "cassandra.keyspace", "parley", "Cassandra keyspace, created when missing")
	fs.IntVar(&c.Replication, "cassandra.replication", 1, "replication factor of the keyspace when it is created")
	fs.StringVar(&c.Consistency, "cassandra.consistency", defaultConsistency, "consistency of reads and writes (LOCAL_QUORUM, QUORUM, ONE …)")
	fs.DurationVar(&c.DedupTTL, "cassandra.dedup-ttl", defaultDedupTTL, "how long a client_id is remembered (at least 168h)")
	fs.DurationVar(&c.Timeout, "cassandra.timeout", defaultTimeout, "timeout of each Cassandra request")
	fs.Func("cassandra.address-map", "comma-separated announced=dialed host:port pairs: dial a node the cluster announces at one address at another (a NAT or a proxy)", func(v string) error {
		m, err := parseAddressMap(v)
		if err != nil {
			return err
		}
		c.AddressMap = m
		return nil
	})
}

// parseAddressMap parses "a:1=b:2,c:3=d:4"; an empty string is no map.
func parseAddressMap(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not announced=dialed", pair)
		}
		for _, hp := range []string{from, to} {
			host, port, err := net.SplitHostPort(hp)
			if err != nil || net.ParseIP(host) == nil || port == "" {
				return nil, fmt.Errorf("%q is not an ip:port", hp)
			}
		}
		m[from] = to
	}
	return m, nil
}

// addressTranslator dials announced addresses found in m at their mapped
// address, and any other at itself.
func addressTranslator(m map[string]string) gocql.AddressTranslator {
	return gocql.AddressTranslatorFunc(func(addr net.IP, port int) (net.IP, int) {
		to, ok := m[net.JoinHostPort(addr.String(), strconv.Itoa(port))]
		if !ok {
			return addr, port
		}
		host, p, _ := net.SplitHostPort(to)
		n, _ := strconv.Atoi(p)
		return net.ParseIP(host), n
	})
}

var keyspaceName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,47}$`)

func (c Config) withDefaults() Config {
	if c.Replication == 0 {
		c.Replication = 1
	}
	if c.Consistency == "" {
		c.Consistency = defaultConsistency
	}
	if c.DedupTTL == 0 {
		c.DedupTTL = defaultDedupTTL
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, errors.New("hosts are required"))
	}
	for _, h := range c.Hosts {
		if strings.TrimSpace(h) == "" {
			errs = append(errs, errors.New("a host is empty"))
		}
	}
	if !keyspaceName.MatchString(c.Keyspace) {
		errs = append(errs, fmt.Errorf("keyspace %q is not a valid name (a letter, then letters, digits or _, at most 48)", c.Keyspace))
	}
	if c.Replication < 1 {
		errs = append(errs, fmt.Errorf("replication %d is below 1", c.Replication))
	}
	if _, err := gocql.ParseConsistencyWrapper(c.Consistency); err != nil {
		errs = append(errs, fmt.Errorf("consistency %q is unknown", c.Consistency))
	}
	if c.DedupTTL < minDedupTTL {
		errs = append(errs, fmt.Errorf("dedup TTL %v is below %v", c.DedupTTL, minDedupTTL))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cassandra: config: %w", err)
	}
	return nil
}

// Store is a chat.Store on Cassandra. Open it with Open; it is safe for
// concurrent use.
type Store struct {
	session  *gocql.Session
	ks       string
	dedupTTL int
	serial   gocql.Consistency
	// stmts caches qualified statements: statement text -> with the
	// keyspace written in (a Replacer per query showed up in profiles).
	stmts sync.Map

	// owned holds this store's epochs of log partitions (Own, Commit).
	ownedMu sync.Mutex
	owned   map[int]*owned

	closeOnce sync.Once
}

var _ chat.Store = (*Store)(nil)

// Open connects to the cluster, applies the schema and returns the store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cons := gocql.ParseConsistency(cfg.Consistency)
	cluster := gocql.NewCluster(cfg.Hosts...)
	cluster.Consistency = cons
	cluster.SerialConsistency = gocql.LocalSerial
	cluster.Timeout = cfg.Timeout
	cluster.ConnectTimeout = cfg.Timeout
	cluster.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	cluster.RetryPolicy = &gocql.SimpleRetryPolicy{NumRetries: 2}
	// Writes carry the client's time in microseconds: explicit batch
	// timestamps (see Commit) are in the same unit.
	cluster.DefaultTimestamp = true
	if len(cfg.AddressMap) > 0 {
		cluster.AddressTranslator = addressTranslator(cfg.AddressMap)
	}

	type result struct {
		s   *gocql.Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := cluster.CreateSession()
		done <- result{s, err}
	}()
	var session *gocql.Session
	select {
	case r := <-done:
		if r.err != nil {
			// gocql flattens dial errors into text: any failure to
			// connect means the cluster cannot be reached.
			return nil, &chat.Error{Code: chat.CodeUnavailable, Op: "cassandra: open", Message: fmt.Sprintf("cannot connect to %v", cfg.Hosts), Err: r.err}
		}
		session = r.s
	case <-ctx.Done():
		go func() {
			if r := <-done; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, fmt.Errorf("cassandra: open: %w", ctx.Err())
	}
	s := &Store{
		session:  session,
		ks:       cfg.Keyspace,
		dedupTTL: int(cfg.DedupTTL / time.Second),
		serial:   gocql.Consistency(gocql.LocalSerial),
		owned:    map[int]*owned{},
	}
	if err := s.applySchema(ctx, cfg.Keyspace, cfg.Replication); err != nil {
		session.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the session. Closing twice is harmless; every operation
// after Close fails with CodeUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(s.session.Close)
	return nil
}

// q builds a query of a statement whose tables are written {t}.
func (s *Store) q(ctx context.Context, stmt string, args ...any) *gocql.Query {
	return s.session.Query(s.stmt(stmt), args...).WithContext(ctx)
}

// stmt qualifies the table names of stmt (written {name}) with the keyspace.
func (s *Store) stmt(stmt string) string {
	if q, ok := s.stmts.Load(stmt); ok {
		return q.(string)
	}
	q := strings.NewReplacer("{", s.ks+".", "}", "").Replace(stmt)
	s.stmts.Store(stmt, q)
	return q
}

// Ping reports whether the store answers.
func (s *Store) Ping(ctx context.Context) error {
	const op = "cassandra: ping"
	var v string
	if err := s.session.Query(`SELECT release_version FROM system.local`).WithContext(ctx).Consistency(gocql.One).Scan(&v); err != nil {
		return classify(op, err)
	}
	return nil
}

// Meta returns the value of key, setting it to value first when unset: an
// INSERT … IF NOT EXISTS decides between racing callers.
func (s *Store) Meta(ctx context.Context, key, value string) (string, error) {
	const op = "cassandra: meta"
	var cur string
	if err := s.q(ctx, `SELECT value FROM {meta} WHERE key = ?`, key).Consistency(s.serial).Scan(&cur); err == nil {
		return cur, nil
	} else if !errors.Is(err, gocql.ErrNotFound) {
		return "", classify(op, err)
	}
	existing := map[string]any{}
	applied, err := s.q(ctx, `INSERT INTO {meta} (key, value) VALUES (?, ?) IF NOT EXISTS`, key, value).MapScanCAS(existing)
	if err != nil {
		return "", classify(op, err)
	}
	if applied {
		return value, nil
	}
	v, _ := existing["value"].(string)
	return v, nil
}

// Heads returns the highest committed position of partitions 0…n-1.
func (s *Store) Heads(ctx context.Context, partitions int) ([]int64, error) {
	const op = "cassandra: heads"
	if partitions < 0 {
		return nil, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "negative partition count"}
	}
	heads := make([]int64, partitions)
	if partitions == 0 {
		return heads, nil
	}
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	iter := s.q(ctx, `SELECT partition, head FROM {partition_heads} WHERE partition IN ?`, ids).Iter()
	var p int
	var h int64
	for iter.Scan(&p, &h) {
		if p >= 0 && p < partitions {
			heads[p] = h
		}
	}
	if err := iter.Close(); err != nil {
		return nil, classify(op, err)
	}
	return heads, nil
}

// raiseHead moves the partition's head up to head, never down, with no
// lightweight transaction: the head is written with head itself as its
// write timestamp, and Cassandra keeps the cell with the highest
// timestamp, so a lower head written later (a stale owner, a replay)
// loses to the higher one whatever the order of arrival. The table takes
// no other writes, whose wall-clock timestamps would beat every head.
func (s *Store) raiseHead(ctx context.Context, partition int, head int64) error {
	if head <= 0 {
		return nil
	}
	return s.q(ctx, `UPDATE {partition_heads} USING TIMESTAMP ? SET head = ? WHERE partition = ?`, head, head, partition).Exec()
}

// classify turns driver errors into chat errors: missing rows are
// CodeNotFound, an unreachable, overloaded or closed cluster is
// CodeUnavailable. Classified errors and context errors pass through.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *chat.Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return chat.ContextError(op, err)
	case errors.Is(err, gocql.ErrNotFound):
		return &chat.Error{Code: chat.CodeNotFound, Op: op, Message: "not found", Err: err}
	case unavailable(err):
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "cassandra is unavailable", Err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}

func unavailable(err error) bool {
	for _, e := range []error{
		gocql.ErrNoConnections, gocql.ErrSessionClosed, gocql.ErrTimeoutNoResponse,
		gocql.ErrConnectionClosed, gocql.ErrNoStreams, gocql.ErrNoHosts,
		gocql.ErrNoConnectionsStarted, gocql.ErrUnavailable, gocql.ErrHostQueryFailed,
		// A connection cut mid-request (a node killed, a network fault):
		// the driver returns the socket's own error.
		io.EOF, io.ErrUnexpectedEOF, syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.EPIPE,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var (
		unav  *gocql.RequestErrUnavailable
		wto   *gocql.RequestErrWriteTimeout
		rto   *gocql.RequestErrReadTimeout
		cas   *gocql.RequestErrCASWriteUnknown
		netEr net.Error
	)
	if errors.As(err, &unav) || errors.As(err, &wto) || errors.As(err, &rto) || errors.As(err, &cas) || errors.As(err, &netEr) {
		return true
	}
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeUnavailable, gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping,
			gocql.ErrCodeWriteTimeout, gocql.ErrCodeReadTimeout, gocql.ErrCodeTruncate,
			gocql.ErrCodeReadFailure, gocql.ErrCodeWriteFailure:
			return true
		case gocql.ErrCodeInvalid:
			return schemaNotYetKnown(re.Message())
		}
	}
	return false
}

// schemaNotYetKnown reports whether an invalid-request message says the
// store's own keyspace or a table of it is missing. The store creates its
// schema before it serves, so that is never the request's fault: a node
// that has just restarted, or that the driver reconnected to after a
// network fault, answered before it had the schema (seen in the fault
// test of a gateway cut off from Cassandra: two sends answered 500 with
// "keyspace … does not exist" as the driver came back). It passes.
func schemaNotYetKnown(msg string) bool {
	msg = strings.ToLower(msg)
	return (strings.Contains(msg, "keyspace") && strings.Contains(msg, "does not exist")) ||
		strings.Contains(msg, "unconfigured table")
}

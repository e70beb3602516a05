package cassandra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
)

// testHosts is the node the tests run against: PARLEY_CASSANDRA_HOSTS
// (comma-separated), 127.0.0.1:9042 by default. The tests fail, never
// skip, when it does not answer.
func testHosts() []string {
	if v := os.Getenv("PARLEY_CASSANDRA_HOSTS"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"127.0.0.1:9042"}
}

func testKeyspace(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "parley_test_" + hex.EncodeToString(b)
}

func openTest(t testing.TB, keyspace string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{Hosts: testHosts(), Keyspace: keyspace, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("Open %s on %v: %v\n(is Cassandra running? start it with: deploy/local/services up cassandra)", keyspace, testHosts(), err)
	}
	return s
}

// dropKeyspace removes a test keyspace.
func dropKeyspace(t testing.TB, s *Store, keyspace string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.session.Query(`DROP KEYSPACE IF EXISTS ` + keyspace).WithContext(ctx).Exec(); err != nil {
		t.Errorf("drop keyspace %s: %v", keyspace, err)
	}
}

// TestStore runs the contract suite against the real node, each subtest
// in a keyspace of its own (the suite assumes an empty store: fixed ids,
// heads of an empty store), dropped afterwards.
func TestStore(t *testing.T) {
	chattest.TestStore(t, func(t *testing.T) (chat.Store, func() chat.Store) {
		ks := testKeyspace(t)
		start := time.Now()
		cur := openTest(t, ks)
		t.Logf("keyspace %s ready in %v", ks, time.Since(start).Round(time.Millisecond))
		t.Cleanup(func() {
			dropKeyspace(t, cur, ks)
			cur.Close()
		})
		reopen := func() chat.Store {
			cur.Close()
			cur = openTest(t, ks)
			return cur
		}
		return cur, reopen
	})
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	ks := testKeyspace(t)
	s := openTest(t, ks)
	t.Cleanup(func() {
		admin := openTest(t, ks)
		dropKeyspace(t, admin, ks)
		admin.Close()
	})
	s.Close()
	if err := s.Ping(t.Context()); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Ping after Close: %v, want unavailable", err)
	}
	if _, err := s.Conversation(t.Context(), "cnv_x"); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Conversation after Close: %v, want unavailable", err)
	}
}

func TestUnreachableClusterIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{Hosts: []string{"127.0.0.1:1"}, Keyspace: "parley_nowhere", Timeout: time.Second})
	if chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Open on a closed port: %v, want unavailable", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Hosts: []string{"127.0.0.1:9042"}, Keyspace: "parley"}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		valid bool
	}{
		{"defaults", func(*Config) {}, true},
		{"no hosts", func(c *Config) { c.Hosts = nil }, false},
		{"empty host", func(c *Config) { c.Hosts = []string{" "} }, false},
		{"no keyspace", func(c *Config) { c.Keyspace = "" }, false},
		{"keyspace with a dash", func(c *Config) { c.Keyspace = "par-ley" }, false},
		{"negative replication", func(c *Config) { c.Replication = -1 }, false},
		{"quorum", func(c *Config) { c.Consistency = "QUORUM" }, true},
		{"unknown consistency", func(c *Config) { c.Consistency = "MOST" }, false},
		{"dedup TTL under 7 days", func(c *Config) { c.DedupTTL = 24 * time.Hour }, false},
		{"dedup TTL of 7 days", func(c *Config) { c.DedupTTL = 7 * 24 * time.Hour }, true},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, false},
	} {
		c := ok
		tc.edit(&c)
		if err := c.Validate(); (err == nil) != tc.valid {
			t.Errorf("%s: Validate() = %v, want valid %v", tc.name, err, tc.valid)
		}
	}
}

func TestFlagsFillConfig(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	c.RegisterFlags(fs)
	err := fs.Parse([]string{"-cassandra.hosts", "10.0.0.1:9042, 10.0.0.2", "-cassandra.consistency", "QUORUM", "-cassandra.replication", "3"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Hosts: []string{"10.0.0.1:9042", "10.0.0.2"}, Keyspace: "parley", Replication: 3, Consistency: "QUORUM", DedupTTL: defaultDedupTTL, Timeout: defaultTimeout}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestBucketOf(t *testing.T) {
	for _, tc := range []struct{ seq, bucket int64 }{{0, 0}, {1, 0}, {4095, 0}, {4096, 1}, {8191, 1}, {8192, 2}, {-5, 0}} {
		if got := bucketOf(tc.seq); got != tc.bucket {
			t.Errorf("bucketOf(%d) = %d, want %d", tc.seq, got, tc.bucket)
		}
	}
}

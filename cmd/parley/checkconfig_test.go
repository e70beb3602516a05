package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	kafkago "github.com/segmentio/kafka-go"
)

func noEnv(string) string { return "" }

// distributedArgs configures every real engine at addresses nothing
// listens on: check-config must not notice, since it connects to nothing.
func distributedArgs(dir string) []string {
	return []string{
		"--addr", "0.0.0.0:8080", "--data-dir", dir, "--roles", "gateway",
		"--kafka.brokers", "127.0.0.1:1", "--cassandra.hosts", "127.0.0.1:1",
		"--elasticsearch.urls", "http://127.0.0.1:1", "--s3.endpoint", "http://127.0.0.1:1",
		"--s3.access-key", "k", "--s3.secret-key", "0123456789abcdef",
		"--auth-secret", strings.Repeat("s", 32), "--partitions", "32",
	}
}

// TestCheckConfigAcceptsWithoutOpeningAnything: a valid distributed
// configuration whose engines are unreachable passes at once, creates no
// data folder, and says what the node would run.
func TestCheckConfigAcceptsWithoutOpeningAnything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "never-made")
	var out bytes.Buffer
	start := time.Now()
	if err := run(context.Background(), append([]string{"check-config"}, distributedArgs(dir)...), noEnv, &out, io.Discard); err != nil {
		t.Fatalf("check-config: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("check-config took %v: it must not connect", d)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("check-config touched the data folder: %v", err)
	}
	for _, want := range []string{"configuration OK", "distributed", "roles:      gateway", "partitions: 32", "kafka 127.0.0.1:1", "cassandra", "elasticsearch", "s3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// The environment twins count, as for serve.
	out.Reset()
	env := map[string]string{"PARLEY_DATA_DIR": t.TempDir(), "PARLEY_PARTITIONS": "8"}
	if err := run(context.Background(), []string{"check-config"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatalf("check-config from the environment: %v", err)
	}
	if !strings.Contains(out.String(), "partitions: 8") || !strings.Contains(out.String(), "embedded") {
		t.Errorf("environment not applied:\n%s", out.String())
	}
}

// TestCheckConfigRefusesWithStatus2: what serve would refuse, check-config
// refuses with one line and exit status 2.
func TestCheckConfigRefusesWithStatus2(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"--kafka.broker", "x:1"}, nil, "kafka.broker"},
		{"zero partitions", []string{"--partitions", "0"}, nil, "--partitions"},
		{"bad log level", []string{"--log.level", "loud"}, nil, "debug, info, warn or error"},
		{"no way to verify tokens", []string{"--addr", "0.0.0.0:8080"}, nil, "no way to verify tokens"},
		{"short secret", []string{"--auth-secret", "short"}, nil, "secret"},
		{"half the engines", []string{"--kafka.brokers", "127.0.0.1:9092"}, nil, "go together"},
		{"bad environment value", nil, map[string]string{"PARLEY_PARTITIONS": "many"}, "PARLEY_PARTITIONS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"check-config", "--data-dir", t.TempDir()}, c.args...)
			err := run(context.Background(), args, func(k string) string { return c.env[k] }, io.Discard, io.Discard)
			var coded *exitCodeError
			if !errors.As(err, &coded) || coded.ExitCode() != exitInvalidConfig {
				t.Fatalf("want exit status %d, got %v", exitInvalidConfig, err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "invalid configuration: ") {
				t.Fatalf("message %q: want one line naming %q", msg, c.want)
			}
		})
	}
}

// TestCheckConfigWarnsOfUnknownVariables: a PARLEY_ variable that is no
// flag's twin (a typo serve would silently ignore) is named on stderr.
func TestCheckConfigWarnsOfUnknownVariables(t *testing.T) {
	env := map[string]string{"PARLEY_KAFKA_BROKER": "127.0.0.1:9092", "PARLEY_PARTITIONS": "16", "HOME": "/home/x"}
	saved := environ
	environ = func() []string {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		return kv
	}
	defer func() { environ = saved }()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"check-config", "--data-dir", t.TempDir()}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("check-config: %v", err)
	}
	if !strings.Contains(errOut.String(), "warning: PARLEY_KAFKA_BROKER is set but no flag has that name") {
		t.Errorf("stderr %q", errOut.String())
	}
	if strings.Contains(errOut.String(), "PARLEY_PARTITIONS") || !strings.Contains(out.String(), "partitions: 16") {
		t.Errorf("a known variable was reported or not applied: %q / %q", errOut.String(), out.String())
	}
}

// TestCheckConfigExitStatusOfTheBinary: the status reaches the shell.
func TestCheckConfigExitStatusOfTheBinary(t *testing.T) {
	bin := parleyBinary(t)
	cmd := exec.Command(bin, "check-config", "--partitions", "0", "--data-dir", t.TempDir())
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("want exit status 2, got %v: %s", err, out)
	}
	if !strings.Contains(string(out), "parley: invalid configuration: --partitions") {
		t.Errorf("output %q", out)
	}
	cmd = exec.Command(bin, append([]string{"check-config"}, distributedArgs(t.TempDir())...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("valid configuration: %v: %s", err, out)
	}
}

// TestMigratePreparesEveryEngine runs `parley migrate` against the real
// engines on loopback with names of its own, checks that the topics (with
// the partition count), the keyspace's tables, the index template and the
// bucket exist, and that a second run succeeds too (idempotent).
func TestMigratePreparesEveryEngine(t *testing.T) {
	brokers := envOr("PARLEY_KAFKA_BROKERS", "127.0.0.1:9092")
	hosts := envOr("PARLEY_CASSANDRA_HOSTS", "127.0.0.1:9042")
	esURL := envOr("PARLEY_ELASTICSEARCH_URLS", "http://127.0.0.1:9200")
	s3 := envOr("PARLEY_S3_ENDPOINT", "http://127.0.0.1:9000")
	s3Key, s3Secret := envOr("PARLEY_S3_ACCESS_KEY", "parley"), envOr("PARLEY_S3_SECRET_KEY", "parleysecret")
	requireService(t, "kafka", strings.Split(brokers, ",")[0])
	requireService(t, "cassandra", withPort(strings.Split(hosts, ",")[0], "9042"))
	requireService(t, "elasticsearch", strings.TrimPrefix(strings.Split(esURL, ",")[0], "http://"))
	requireService(t, "minio", strings.TrimPrefix(s3, "http://"))

	b := make([]byte, 5)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	topicPrefix, keyspace, esPrefix, bucket := "parley-migrate-"+id+".", "parley_migrate_"+id, "parley-migrate-"+id+"-", "parley-migrate-"+id
	args := []string{"migrate", "--data-dir", t.TempDir(), "--partitions", "3", "--log.level", "warn",
		"--kafka.brokers", brokers, "--kafka.replication-factor", "1", "--kafka.topic-prefix", topicPrefix,
		"--cassandra.hosts", hosts, "--cassandra.keyspace", keyspace, "--cassandra.replication", "1",
		"--elasticsearch.urls", esURL, "--elasticsearch.index-prefix", esPrefix,
		"--s3.endpoint", s3, "--s3.access-key", s3Key, "--s3.secret-key", s3Secret, "--s3.bucket", bucket,
		"--auth-secret", strings.Repeat("m", 32)}

	s3Client, err := miniogo.New(strings.TrimPrefix(s3, "http://"), &miniogo.Options{Creds: credentials.NewStaticV4(s3Key, s3Secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, path := range []string{"/" + esPrefix + "*", "/_index_template/" + esPrefix + "*"} {
			req, _ := http.NewRequestWithContext(ctx, "DELETE", strings.Split(esURL, ",")[0]+path, nil)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}
		_ = s3Client.RemoveBucket(ctx, bucket)
		if conn, err := kafkago.DialContext(ctx, "tcp", strings.Split(brokers, ",")[0]); err == nil {
			_ = conn.DeleteTopics(topicPrefix+"commands", topicPrefix+"events")
			conn.Close()
		}
		cluster := gocql.NewCluster(strings.Split(hosts, ",")...)
		cluster.Timeout = 20 * time.Second
		if s, err := cluster.CreateSession(); err == nil {
			_ = s.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec()
			s.Close()
		}
	})

	for i := 0; i < 2; i++ {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		err := run(ctx, args, noEnv, &out, io.Discard)
		cancel()
		if err != nil {
			t.Fatalf("migrate run %d: %v\n%s", i+1, err, out.String())
		}
		for _, want := range []string{"log:", "store:", "index:", "blobs:", topicPrefix + "commands", keyspace, bucket} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("run %d: output lacks %q:\n%s", i+1, want, out.String())
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := kafkago.DialContext(ctx, "tcp", strings.Split(brokers, ",")[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, topic := range []string{topicPrefix + "commands", topicPrefix + "events"} {
		parts, err := conn.ReadPartitions(topic)
		if err != nil || len(parts) != 3 {
			t.Errorf("topic %s: %d partitions, %v; want 3", topic, len(parts), err)
		}
	}

	cluster := gocql.NewCluster(strings.Split(hosts, ",")...)
	cluster.Timeout = 20 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	var tables int
	if err := session.Query("SELECT COUNT(*) FROM system_schema.tables WHERE keyspace_name = ?", keyspace).Scan(&tables); err != nil || tables < 5 {
		t.Errorf("keyspace %s has %d tables (%v)", keyspace, tables, err)
	}

	res, err := http.Get(strings.Split(esURL, ",")[0] + "/_index_template/" + esPrefix + "messages")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("index template %smessages: status %d", esPrefix, res.StatusCode)
	}
	if res, err := http.Get(strings.Split(esURL, ",")[0] + "/_alias/" + esPrefix + "messages"); err != nil || res.StatusCode != 200 {
		t.Errorf("alias %smessages: %v %v", esPrefix, err, res)
	} else {
		res.Body.Close()
	}

	if ok, err := s3Client.BucketExists(ctx, bucket); err != nil || !ok {
		t.Errorf("bucket %s: exists %v, %v", bucket, ok, err)
	}
}

// TestMigrateInEmbeddedModeDoesNothing: there is nothing to prepare ahead,
// and migrate says so without creating the data folder.
func TestMigrateInEmbeddedModeDoesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "never-made")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "--data-dir", dir}, noEnv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "embedded mode: nothing to migrate") {
		t.Errorf("output %q", out.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("migrate made the data folder: %v", err)
	}
}

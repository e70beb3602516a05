package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/golang-jwt/jwt/v5"
	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/internal/testutil"
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

// realEngines are the loopback engines with names of this test's own.
type realEngines struct {
	brokers, hosts, esURL, s3, s3Key, s3Secret string
	topicPrefix, keyspace, esPrefix, bucket    string
	s3Client                                   *miniogo.Client
}

// args configures every real engine (replication 1) for a parley command.
func (e *realEngines) args() []string {
	return []string{
		"--kafka.brokers", e.brokers, "--kafka.replication-factor", "1", "--kafka.topic-prefix", e.topicPrefix,
		"--cassandra.hosts", e.hosts, "--cassandra.keyspace", e.keyspace, "--cassandra.replication", "1", "--cassandra.timeout", "30s",
		"--elasticsearch.urls", e.esURL, "--elasticsearch.index-prefix", e.esPrefix,
		"--s3.endpoint", e.s3, "--s3.access-key", e.s3Key, "--s3.secret-key", e.s3Secret, "--s3.bucket", e.bucket,
		"--auth-secret", strings.Repeat("m", 32),
	}
}

// useRealEngines fails unless the four engines answer on loopback, and
// removes what the test made in them when it ends.
func useRealEngines(t *testing.T, name string) *realEngines {
	t.Helper()
	e := &realEngines{
		brokers: envOr("PARLEY_KAFKA_BROKERS", "127.0.0.1:9092"),
		hosts:   envOr("PARLEY_CASSANDRA_HOSTS", "127.0.0.1:9042"),
		esURL:   strings.Split(envOr("PARLEY_ELASTICSEARCH_URLS", "http://127.0.0.1:9200"), ",")[0],
		s3:      envOr("PARLEY_S3_ENDPOINT", "http://127.0.0.1:9000"),
		s3Key:   envOr("PARLEY_S3_ACCESS_KEY", "parley"), s3Secret: envOr("PARLEY_S3_SECRET_KEY", "parleysecret"),
	}
	requireService(t, "kafka", strings.Split(e.brokers, ",")[0])
	requireService(t, "cassandra", withPort(strings.Split(e.hosts, ",")[0], "9042"))
	requireService(t, "elasticsearch", strings.TrimPrefix(e.esURL, "http://"))
	requireService(t, "minio", strings.TrimPrefix(e.s3, "http://"))
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	e.topicPrefix, e.keyspace, e.esPrefix, e.bucket = "parley-"+name+"-"+id+".", "parley_"+name+"_"+id, "parley-"+name+"-"+id+"-", "parley-"+name+"-"+id
	var err error
	if e.s3Client, err = miniogo.New(strings.TrimPrefix(e.s3, "http://"), &miniogo.Options{Creds: credentials.NewStaticV4(e.s3Key, e.s3Secret, "")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dropIndices(ctx, e.esURL, e.esPrefix)
		for obj := range e.s3Client.ListObjects(ctx, e.bucket, miniogo.ListObjectsOptions{Recursive: true}) {
			_ = e.s3Client.RemoveObject(ctx, e.bucket, obj.Key, miniogo.RemoveObjectOptions{})
		}
		_ = e.s3Client.RemoveBucket(ctx, e.bucket)
		if conn, err := kafkago.DialContext(ctx, "tcp", strings.Split(e.brokers, ",")[0]); err == nil {
			_ = conn.DeleteTopics(e.topicPrefix+"commands", e.topicPrefix+"events")
			conn.Close()
		}
		dropKeyspace(e.hosts, e.keyspace)
	})
	return e
}

// dropIndices removes a test's indexes and index templates, those whose
// names begin with prefix, from the shared Elasticsearch at esURL, best
// effort. Indexes go one name at a time: Elasticsearch 8 refuses to
// delete indexes by a wildcard (action.destructive_requires_name), and
// hundreds of leftover test indexes make its restart in the outage test
// outlast the services script's wait.
func dropIndices(ctx context.Context, esURL, prefix string) {
	es := strings.Split(esURL, ",")[0]
	do := func(method, path string) []byte {
		req, err := http.NewRequestWithContext(ctx, method, es+path, nil)
		if err != nil {
			return nil
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return b
	}
	for _, name := range strings.Fields(string(do("GET", "/_cat/indices/"+prefix+"*?h=index&expand_wildcards=all"))) {
		do("DELETE", "/"+name)
	}
	do("DELETE", "/_index_template/"+prefix+"*")
}

// dropKeyspace removes a test's keyspace from the shared Cassandra node,
// best effort (a test that could not reach Cassandra has failed already).
func dropKeyspace(hosts, keyspace string) {
	cluster := gocql.NewCluster(strings.Split(hosts, ",")...)
	cluster.Timeout = 30 * time.Second
	if s, err := cluster.CreateSession(); err == nil {
		_ = s.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec()
		s.Close()
	}
}

// TestMigratePreparesEveryEngine runs `parley migrate` against the real
// engines on loopback with names of its own, checks that the topics (with
// the partition count), the keyspace's tables, the index template and the
// bucket exist, and that a second run succeeds too (idempotent).
func TestMigratePreparesEveryEngine(t *testing.T) {
	e := useRealEngines(t, "migrate")
	args := append([]string{"migrate", "--data-dir", t.TempDir(), "--partitions", "3", "--log.level", "warn"}, e.args()...)
	for i := 0; i < 2; i++ {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		err := run(ctx, args, noEnv, &out, io.Discard)
		cancel()
		if err != nil {
			t.Fatalf("migrate run %d: %v\n%s", i+1, err, out.String())
		}
		for _, want := range []string{"log:", "store:", "index:", "blobs:", e.topicPrefix + "commands", e.keyspace, e.bucket} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("run %d: output lacks %q:\n%s", i+1, want, out.String())
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := kafkago.DialContext(ctx, "tcp", strings.Split(e.brokers, ",")[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, topic := range []string{e.topicPrefix + "commands", e.topicPrefix + "events"} {
		parts, err := conn.ReadPartitions(topic)
		if err != nil || len(parts) != 3 {
			t.Errorf("topic %s: %d partitions, %v; want 3", topic, len(parts), err)
		}
	}

	cluster := gocql.NewCluster(strings.Split(e.hosts, ",")...)
	cluster.Timeout = 20 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	var tables int
	if err := session.Query("SELECT COUNT(*) FROM system_schema.tables WHERE keyspace_name = ?", e.keyspace).Scan(&tables); err != nil || tables < 5 {
		t.Errorf("keyspace %s has %d tables (%v)", e.keyspace, tables, err)
	}

	for _, path := range []string{"/_index_template/" + e.esPrefix + "messages", "/_alias/" + e.esPrefix + "messages"} {
		res, err := http.Get(e.esURL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s: status %d", path, res.StatusCode)
		}
	}

	if ok, err := e.s3Client.BucketExists(ctx, e.bucket); err != nil || !ok {
		t.Errorf("bucket %s: exists %v, %v", e.bucket, ok, err)
	}
}

// TestAdminViewReadsKafkaGroups: on Kafka, the admin view shows the
// consumer groups as the brokers see them: this node in each role's group,
// holding every partition, and the sequencer as every partition's owner.
func TestAdminViewReadsKafkaGroups(t *testing.T) {
	e := useRealEngines(t, "admin")
	s := startServer(t, append([]string{"--partitions", "4", "--dev-auth", "true", "--kafka.session-timeout", "6s"}, e.args()...)...)
	secretArgs := e.args()
	secret := secretArgs[len(secretArgs)-1]
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "ops", "exp": time.Now().Add(time.Hour).Unix(), auth.AdminClaim: true,
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		st := s.do(t, "GET", "/admin/status", tok, nil).json(t)
		members := map[string]int{}
		for _, g := range st["groups"].([]any) {
			g := g.(map[string]any)
			for _, m := range g["members"].([]any) {
				members[g["role"].(string)] += len(m.(map[string]any)["partitions"].([]any))
			}
		}
		owned := 0
		for _, o := range st["partition_owners"].([]any) {
			if o.(map[string]any)["owner"] != "" {
				owned++
			}
		}
		if members["sequencer"] != 4 || members["indexer"] != 4 || members["media"] != 4 || owned != 4 || len(st["nodes"].([]any)) != 1 {
			return fmt.Errorf("groups never showed this node holding every partition: %v (owners %v, error %v)", st["groups"], st["partition_owners"], st["cluster_error"])
		}
		return nil
	})
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

// TestCheckConfigAgreesWithServe: every configuration serve refuses before
// it opens anything, check-config refuses with the same message, and one
// serve accepts (it opens a data folder and answers) check-config accepts.
// check-config parses on its own (loadConfig), so this pins the two together.
func TestCheckConfigAgreesWithServe(t *testing.T) {
	refused := [][]string{
		{"--partitions", "0"},
		{"--roles", "gateway,chef"},
		{"--addr", "nowhere"},
		{"--addr", "0.0.0.0:0", "--dev-auth", "true"},
		{"--addr", "0.0.0.0:0"},
		{"--frobnicate"},
		{"--kafka.brokers", "127.0.0.1:9092"},
		{"--log.level", "loud"},
		{"--roles", "gateway"},
		{"--debug.addr", "0.0.0.0:6060"},
		{"--auth-secret", "short"},
	}
	for _, args := range refused {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		serveErr := run(ctx, append([]string{"serve", "--data-dir", dir}, args...), noEnv, io.Discard, io.Discard)
		cancel()
		checkErr := run(context.Background(), append([]string{"check-config", "--data-dir", dir}, args...), noEnv, io.Discard, io.Discard)
		if serveErr == nil || checkErr == nil {
			t.Errorf("%v: serve %v, check-config %v; want both refused", args, serveErr, checkErr)
			continue
		}
		if want := "invalid configuration: " + serveErr.Error(); checkErr.Error() != want {
			t.Errorf("%v: check-config says %q, serve %q", args, checkErr, serveErr)
		}
	}
	if err := run(context.Background(), []string{"check-config", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0"}, noEnv, io.Discard, io.Discard); err != nil {
		t.Errorf("check-config refuses what serve runs with: %v", err)
	}
}

//go:build replicated

package main

// Fault primitives against the replicated engines of
// deploy/local/replicated (three Kafka brokers, three Cassandra nodes, a
// Toxiproxy server): the cluster on them, Toxiproxy proxies, and killing,
// restarting and pausing engine nodes. The load and the clients the fault
// tests run under are the chaos harness's (chaos_test.go), the one
// harness of every fault test. Built only with -tags replicated (make
// test-faults starts the profile): these tests kill and pause engine
// nodes, which the single-node engines the other tests share must never
// see.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// The replicated profile's addresses (deploy/local/replicated env).
const (
	replicatedKafka     = "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194"
	replicatedCassandra = "127.0.0.1:9142,127.0.0.2:9142,127.0.0.3:9142"
	toxiproxyURL        = "http://127.0.0.1:8474"
)

// replicated runs deploy/local/replicated and returns its output.
func replicated(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("../../deploy/local/replicated", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("deploy/local/replicated %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newReplicatedCluster is newCluster on the replicated engines: topics
// with three replicas (min.insync.replicas=2 on the brokers, acks=all in
// Parley), a keyspace with replication factor 3 read and written at
// LOCAL_QUORUM. Every node's Elasticsearch goes through a Toxiproxy proxy
// (c.es) so that a test can take it away.
func newReplicatedCluster(t *testing.T, partitions int) (*cluster, *toxiProxy) {
	t.Helper()
	if out, err := exec.Command("../../deploy/local/replicated", "status").CombinedOutput(); err != nil {
		t.Fatalf("the replicated engines are not all up (run `deploy/local/replicated up`; make test-faults does):\n%s", out)
	}
	t.Setenv("PARLEY_KAFKA_BROKERS", replicatedKafka)
	t.Setenv("PARLEY_CASSANDRA_HOSTS", replicatedCassandra)
	c := newCluster(t, partitions)
	prefix := c.topicPrefix()
	t.Cleanup(func() {
		// The run's topics go: a broker killed with many topics on disk
		// recovers every one of them at its next start.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cl := &kafkago.Client{Addr: kafkago.TCP(strings.Split(replicatedKafka, ",")...), Timeout: 10 * time.Second}
		md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{})
		if err != nil {
			return
		}
		var topics []string
		for _, tp := range md.Topics {
			if strings.HasPrefix(tp.Name, prefix) {
				topics = append(topics, tp.Name)
			}
		}
		if len(topics) > 0 {
			_, _ = cl.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: topics})
		}
	})
	es := newToxiProxy(t, "es", "127.0.0.1:9200")
	c.args = append(c.args,
		"--kafka.replication-factor", "3",
		"--cassandra.replication", "3",
		"--cassandra.consistency", "LOCAL_QUORUM",
		"--elasticsearch.urls", "http://"+es.listen,
	)
	return c, es
}

// startWith starts a node with extra flags after the cluster's (a later
// flag wins).
func (c *cluster) startWith(name, roles string, extra ...string) *node {
	c.t.Helper()
	saved := c.args
	c.args = append(slices.Clone(saved), extra...)
	defer func() { c.args = saved }()
	return c.start(name, roles)
}

// topicPrefix is the cluster's Kafka topic prefix.
func (c *cluster) topicPrefix() string {
	i := slices.Index(c.args, "--kafka.topic-prefix")
	return c.args[i+1]
}

// ------------------------------------------------------------ Toxiproxy

// toxiProxy is one proxy of the profile's Toxiproxy server, deleted when
// the test ends.
type toxiProxy struct {
	t            *testing.T
	name, listen string
}

func toxiproxyDo(method, path string, body any) ([]byte, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, toxiproxyURL+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return nil, fmt.Errorf("toxiproxy %s %s: %d %s", method, path, res.StatusCode, out)
	}
	return out, nil
}

// newToxiProxy proxies a free loopback port to upstream.
func newToxiProxy(t *testing.T, name, upstream string) *toxiProxy {
	t.Helper()
	name = fmt.Sprintf("%s-%d-%d", name, os.Getpid(), rand.Uint32())
	out, err := toxiproxyDo("POST", "/proxies", map[string]any{"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true})
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Listen string }
	if err := json.Unmarshal(out, &p); err != nil || p.Listen == "" {
		t.Fatalf("toxiproxy: proxy %s: %s %v", name, out, err)
	}
	t.Cleanup(func() { _, _ = toxiproxyDo("DELETE", "/proxies/"+name, nil) })
	return &toxiProxy{t: t, name: name, listen: p.Listen}
}

// cut blackholes the proxy both ways: every byte, on open connections and
// on new ones, is held (as a network partition holds it) until heal.
func (p *toxiProxy) cut() {
	p.t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		if _, err := toxiproxyDo("POST", "/proxies/"+p.name+"/toxics", map[string]any{
			"name": "cut-" + stream, "type": "timeout", "stream": stream, "toxicity": 1.0,
			"attributes": map[string]any{"timeout": 0},
		}); err != nil {
			p.t.Fatal(err)
		}
	}
}

// heal lets the held bytes through again.
func (p *toxiProxy) heal() {
	p.t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		if _, err := toxiproxyDo("DELETE", "/proxies/"+p.name+"/toxics/cut-"+stream, nil); err != nil {
			p.t.Fatal(err)
		}
	}
}

// setEnabled closes the proxy's listener and connections (false), as a
// stopped engine refuses connections, or opens it again (true).
func (p *toxiProxy) setEnabled(on bool) {
	p.t.Helper()
	if _, err := toxiproxyDo("POST", "/proxies/"+p.name, map[string]any{"enabled": on}); err != nil {
		p.t.Fatal(err)
	}
}

// cassandraProxies puts a proxy in front of each Cassandra node and
// returns the flags that make a Parley node reach the cluster only
// through them: the proxies as contact points, and the nodes' announced
// addresses mapped to the proxies.
func cassandraProxies(t *testing.T) ([]*toxiProxy, []string) {
	t.Helper()
	var proxies []*toxiProxy
	var hosts, mapping []string
	for _, addr := range strings.Split(replicatedCassandra, ",") {
		p := newToxiProxy(t, "cassandra", addr)
		proxies = append(proxies, p)
		hosts = append(hosts, p.listen)
		mapping = append(mapping, addr+"="+p.listen)
	}
	return proxies, []string{"--cassandra.hosts", strings.Join(hosts, ","), "--cassandra.address-map", strings.Join(mapping, ",")}
}

// --------------------------------------------------------- engine nodes

// enginePid is the pid of a profile node (the leader of its process group).
func enginePid(t *testing.T, node string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(replicated(t, "pid", node)))
	if err != nil {
		t.Fatalf("pid of %s: %v", node, err)
	}
	return pid
}

// killEngine SIGKILLs a profile node's process group.
func killEngine(t *testing.T, node string) {
	t.Helper()
	replicated(t, "kill", node)
}

// restartEngine starts a profile node again and waits until it answers;
// it returns how long that took.
func restartEngine(t *testing.T, node string) time.Duration {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("../../deploy/local/replicated", "up", node)
	cmd.Env = append(os.Environ(), "PARLEY_SERVICES_TIMEOUT=300") // a busy machine starts a JVM slowly
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restart %s: %v\n%s", node, err, out)
	}
	return time.Since(start)
}

// pauseEngine SIGSTOPs a profile node for d, then SIGCONTs it. The node
// is continued even if the test fails meanwhile.
func pauseEngine(t *testing.T, node string, d time.Duration) {
	t.Helper()
	pid := enginePid(t, node)
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", node, err)
	}
	defer func() {
		if err := syscall.Kill(-pid, syscall.SIGCONT); err != nil {
			t.Errorf("SIGCONT %s: %v", node, err)
		}
	}()
	time.Sleep(d) // the pause is the fault: the node is stopped for d
}

// busiestKafkaLeader is the broker (kafka-N) that leads the partitions of
// the cluster's topics holding the most records.
func busiestKafkaLeader(t *testing.T, prefix string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := &kafkago.Client{Addr: kafkago.TCP(strings.Split(replicatedKafka, ",")...), Timeout: 10 * time.Second}
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		t.Fatalf("kafka metadata: %v", err)
	}
	leaders := map[string]map[int]int{} // topic -> partition -> leader
	req := map[string][]kafkago.OffsetRequest{}
	for _, tp := range md.Topics {
		if !strings.HasPrefix(tp.Name, prefix) {
			continue
		}
		leaders[tp.Name] = map[int]int{}
		for _, p := range tp.Partitions {
			leaders[tp.Name][p.ID] = p.Leader.ID
			req[tp.Name] = append(req[tp.Name], kafkago.LastOffsetOf(p.ID))
		}
	}
	offs, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: req})
	if err != nil {
		t.Fatalf("kafka offsets: %v", err)
	}
	load := map[int]int64{}
	for topic, parts := range offs.Topics {
		for _, p := range parts {
			load[leaders[topic][p.Partition]] += p.LastOffset
		}
	}
	best, bestLoad := 0, int64(-1)
	for id, n := range load {
		if n > bestLoad || (n == bestLoad && id < best) {
			best, bestLoad = id, n
		}
	}
	if best == 0 {
		t.Fatalf("no partition of %s* has a leader: %v", prefix, load)
	}
	return fmt.Sprintf("kafka-%d", best), fmt.Sprintf("records per leader %v", load)
}

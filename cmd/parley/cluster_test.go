package main

// Multi-process topologies on the real engines: every node is a separate
// `parley serve` process (built from this package) with a subset of the
// roles, sharing the real Kafka, Cassandra, Elasticsearch and MinIO that
// deploy/local/services starts (make test starts them). Each test gets a
// keyspace, topic prefix and index prefix of its own. A test that cannot
// reach an engine fails; it never skips.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testutil"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// parleyBinary builds this command once per test run.
func parleyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "parley-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "parley")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// requireService fails the test when addr does not accept connections.
func requireService(t *testing.T, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s at %s does not answer (%v): run `deploy/local/services up %s` (make test does)", name, addr, err, name)
	}
	c.Close()
}

// cluster is one deployment: shared engines, a fresh keyspace and topic
// prefix, and the nodes started so far.
type cluster struct {
	t       *testing.T
	args    []string
	mu      sync.Mutex
	nodes   []*node
	logsDir string
}

func newCluster(t *testing.T, partitions int) *cluster {
	t.Helper()
	brokers := envOr("PARLEY_KAFKA_BROKERS", "127.0.0.1:9092")
	hosts := envOr("PARLEY_CASSANDRA_HOSTS", "127.0.0.1:9042")
	esURL := envOr("PARLEY_ELASTICSEARCH_URLS", "http://127.0.0.1:9200")
	s3 := envOr("PARLEY_S3_ENDPOINT", "http://127.0.0.1:9000")
	requireService(t, "kafka", strings.Split(brokers, ",")[0])
	requireService(t, "cassandra", withPort(strings.Split(hosts, ",")[0], "9042"))
	requireService(t, "elasticsearch", strings.TrimPrefix(strings.Split(esURL, ",")[0], "http://"))
	requireService(t, "minio", strings.TrimPrefix(s3, "http://"))
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	esPrefix := "parley-test-" + id + "-"
	t.Cleanup(func() {
		// The test's keyspace goes (runs after the nodes are killed: cleanups
		// run last-registered first). Left behind, hundreds of test keyspaces
		// make every later schema change on the shared node slow enough to
		// time out.
		dropKeyspace(hosts, "parley_test_"+id)
	})
	t.Cleanup(func() {
		// The test's index, alias and template go; topics stay (cheap).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dropIndices(ctx, esURL, esPrefix)
	})
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	c := &cluster{
		t:       t,
		logsDir: t.TempDir(),
		args: []string{
			"--kafka.brokers", brokers,
			"--kafka.topic-prefix", "parley-test-" + id + ".",
			"--kafka.session-timeout", "6s",
			"--cassandra.hosts", hosts,
			"--cassandra.keyspace", "parley_test_" + id,
			"--elasticsearch.urls", esURL,
			"--elasticsearch.index-prefix", esPrefix,
			"--s3.endpoint", s3,
			"--s3.access-key", envOr("PARLEY_S3_ACCESS_KEY", "parley"),
			"--s3.secret-key", envOr("PARLEY_S3_SECRET_KEY", "parleysecret"),
			"--s3.bucket", envOr("PARLEY_S3_BUCKET", "parley"),
			"--partitions", fmt.Sprint(partitions),
			"--auth-secret", hex.EncodeToString(secret),
			"--dev-auth", "true",
			"--send-rate", "100000", "--send-burst", "100000",
			"--log.format", "text",
		},
	}
	t.Cleanup(func() {
		c.mu.Lock()
		nodes := c.nodes
		c.mu.Unlock()
		for _, n := range nodes {
			n.kill()
		}
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("--- log of %s (last 40 lines)\n%s", n.name, tail(n.logPath, 40))
			}
		}
	})
	return c
}

func withPort(hostport, port string) string {
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	return net.JoinHostPort(hostport, port)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// node is one `parley serve` process.
type node struct {
	name    string
	roles   string
	url     string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// start runs a node with roles and waits until it serves.
func (c *cluster) start(name, roles string) *node {
	c.t.Helper()
	n := &node{name: name, roles: roles, logPath: filepath.Join(c.logsDir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(n.logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--roles", roles, "--data-dir", filepath.Join(c.logsDir, name+"-data")}, c.args...)
	n.cmd = exec.Command(parleyBinary(c.t), args...)
	n.cmd.Stderr = logf
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = n.cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "http://"); i >= 0 {
				got <- sc.Text()[i:]
			}
		}
	}()
	select {
	case u := <-got:
		n.url = u
	case <-n.exited:
		c.t.Fatalf("%s exited at start:\n%s", name, tail(n.logPath, 20))
	case <-time.After(90 * time.Second):
		n.kill()
		c.t.Fatalf("%s did not start in 90s:\n%s", name, tail(n.logPath, 20))
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// kill is kill -9.
func (n *node) kill() {
	if n.cmd.Process != nil {
		_ = n.cmd.Process.Kill()
	}
	<-n.exited
}

// api is the harness's HTTP client pointed at a node.
func (n *node) api(t *testing.T) *server { return &server{t: t, url: n.url} }

// trySend sends once and reports the status and the message, without
// failing on an error status.
func trySend(base, token, cid, text, clientID string) (int, map[string]any, error) {
	status, m, _, err := trySendH(base, token, cid, text, clientID)
	return status, m, err
}

// trySendH is trySend that also returns the answer's header.
func trySendH(base, token, cid, text, clientID string) (int, map[string]any, http.Header, error) {
	body, _ := json.Marshal(map[string]string{"text": text, "client_id": clientID})
	req, _ := http.NewRequest("POST", base+"/v1/conversations/"+cid+"/messages", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return res.StatusCode, m, res.Header, nil
}

// checkOrder asserts that evs are message.created events with seqs from
// first on, gap-free, each message once, and returns the message ids.
func checkOrder(t *testing.T, who string, evs []map[string]any, first int64) []string {
	t.Helper()
	seen := map[string]bool{}
	var ids []string
	for i, ev := range evs {
		msg := ev["message"].(map[string]any)
		if s := seqOf(ev); s != first+int64(i) {
			t.Fatalf("%s: event %d has seq %d, want %d (gap or reorder)", who, i, s, first+int64(i))
		}
		id := msg["id"].(string)
		if seen[id] {
			t.Fatalf("%s: message %s delivered twice", who, id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids
}

func TestClusterMessagesCrossGatewaysInOrder(t *testing.T) {
	c := newCluster(t, 8)
	c.start("sequencer-1", "sequencer")
	c.start("sequencer-2", "sequencer")
	c.start("indexer", "indexer")
	c.start("media", "media")
	a := c.start("gateway-a", "gateway")
	b := c.start("gateway-b", "gateway")
	apiA, apiB := a.api(t), b.api(t)

	alice := apiA.signIn(t, "alice")
	bob := apiB.signIn(t, "bob")
	carol := apiA.signIn(t, "carol")
	cid := apiA.createGroup(t, alice, "cluster", "bob", "carol")

	bobWS, _ := apiB.connect(t, transportWS, bob, "")
	carolSSE, _ := apiA.connect(t, transportSSE, carol, "")
	bobPoll, _ := apiB.connect(t, transportPoll, bob, "")

	const n = 60
	for i := 0; i < n; i++ {
		api, tok := apiA, alice
		if i%2 == 1 {
			api, tok = apiB, bob // both gateways take sends
		}
		api.send(t, tok, cid, fmt.Sprintf("m%02d", i), fmt.Sprintf("c%02d", i))
	}
	var want []string
	for name, st := range map[string]stream{"bob on B by websocket": bobWS, "carol on A by SSE": carolSSE, "bob on B by long-poll": bobPoll} {
		evs := collect(t, st, n, "message.created")
		ids := checkOrder(t, name, evs, seqOf(evs[0]))
		for i, ev := range evs {
			if got := textOf(ev); got != fmt.Sprintf("m%02d", i) {
				t.Fatalf("%s: message %d is %q", name, i, got)
			}
		}
		if want == nil {
			want = ids
		} else if strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Fatalf("%s saw another order than the others:\n%v\n%v", name, ids, want)
		}
	}
	// Search on B finds what was sent through A, indexed by the indexer
	// node into Elasticsearch.
	testutil.Eventually(t, 5*time.Second, func() error {
		r := apiB.do(t, "GET", "/v1/search?q=m07", bob, nil)
		if r.status != 200 {
			t.Fatalf("search: %d %s", r.status, r.body)
		}
		if res := r.json(t)["results"].([]any); len(res) != 1 {
			return fmt.Errorf("m07 not found on gateway B: %s", r.body)
		}
		return nil
	})
	// An image uploaded to MinIO through A's signed URL gets its thumbnail
	// from the media node; bob on B sees the update.
	img := pngBytes(640, 480)
	att, status := apiA.upload(t, alice, "cluster.png", "image/png", int64(len(img)), img)
	if status/100 != 2 {
		t.Fatalf("upload to MinIO: %d", status)
	}
	if r := apiA.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]any{"text": "picture", "attachments": []string{att}}); r.status != 201 {
		t.Fatalf("post with attachment: %d %s", r.status, r.body)
	}
	up := nextOfType(t, bobWS, "message.updated")
	if a := up["message"].(map[string]any)["attachments"].([]any)[0].(map[string]any); a["thumbnail"] != true {
		t.Fatalf("update does not announce the thumbnail: %v", a)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", b.url+"/v1/attachments/"+att+"/thumbnail", nil)
	req.Header.Set("Authorization", "Bearer "+bob)
	res, err := noRedirect.Do(req)
	if err != nil || res.StatusCode != 302 {
		t.Fatalf("thumbnail through B: %v %v", res, err)
	}
	res.Body.Close()
	thumb, err := http.Get(res.Header.Get("Location"))
	if err != nil || thumb.StatusCode != 200 || thumb.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("thumbnail from MinIO: %v %v", thumb, err)
	}
	thumb.Body.Close()

	// History is the same through either gateway.
	// Both read Cassandra, which may answer one of them before the
	// thumbnail's update is visible to it: wait for the two to agree.
	testutil.Eventually(t, 5*time.Second, func() error {
		ra := apiA.do(t, "GET", "/v1/conversations/"+cid+"/messages?limit=100", alice, nil)
		rb := apiB.do(t, "GET", "/v1/conversations/"+cid+"/messages?limit=100", bob, nil)
		if ra.status != 200 || rb.status != 200 || !bytes.Equal(ra.body, rb.body) {
			return fmt.Errorf("history differs between gateways: %d %d", ra.status, rb.status)
		}
		return nil
	})
	// A node without the gateway role answers probes, not the API.
	for _, n := range c.nodes[:4] {
		w := n.api(t)
		if r := w.do(t, "GET", "/readyz", "", nil); r.status != 200 {
			t.Fatalf("%s /readyz: %d %s", n.name, r.status, r.body)
		}
		// Not through w.do: the API reference documents the API of a
		// gateway, and this node is not one.
		req, _ := http.NewRequest("GET", n.url+"/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+alice)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s /v1/me: %v", n.name, err)
		}
		res.Body.Close()
		if res.StatusCode != 404 {
			t.Fatalf("%s /v1/me: %d, want 404", n.name, res.StatusCode)
		}
	}
}

// load sends from senders goroutines, round robin over convs, until stop
// is closed; a send that fails (a 503 while partitions move, a timeout) is
// retried with the same client_id until it is acknowledged. It returns the
// acknowledged message ids per conversation.
// rateBetween is how many acknowledgements per second came in [from, to).
func rateBetween(times []time.Time, from, to time.Time) float64 {
	n := 0
	for _, at := range times {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return float64(n) / to.Sub(from).Seconds()
}

// reader reads a stream from the start, as a client does, keeping its
// message.created events: a client that stops reading is, rightly, closed
// as a slow reader.
type reader struct {
	mu   sync.Mutex
	evs  []map[string]any
	err  error
	done chan struct{}
}

func readAll(st stream) *reader {
	r := &reader{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			// Long: no message comes while an engine is down, and a
			// restarted Cassandra takes most of a minute to serve again
			// (drain, not this, decides how long delivery may take).
			m, err := st.next(5 * time.Minute)
			r.mu.Lock()
			if err != nil {
				r.err = err
				r.mu.Unlock()
				return
			}
			if m["type"] == "message.created" {
				r.evs = append(r.evs, m)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// drain waits until r has every acknowledged message, then checks per
// conversation: seqs gap-free in order, each message once, exactly the
// acknowledged ones, and nothing more. "Nothing more" is proved, not
// waited for: mark sends one more message in each conversation, after
// every acknowledged one, and a conversation's events reach a stream in
// seq order, so once r has every marker it has everything the log held
// before them, duplicates and strays included.
func drain(t *testing.T, who string, r *reader, acked map[string]map[string]bool, mark func(cid string) string) {
	t.Helper()
	total := 0
	for _, ids := range acked {
		total += len(ids)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.evs) < total && r.err == nil {
			return fmt.Errorf("%s: %d of %d messages", who, len(r.evs), total)
		}
		return nil
	})
	markers := map[string]bool{}
	for cid := range acked {
		markers[mark(cid)] = true
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.err != nil {
			t.Fatalf("%s: %v", who, r.err)
		}
		seen := 0
		for _, m := range r.evs {
			if markers[messageID(m)] {
				seen++
			}
		}
		if seen < len(markers) {
			return fmt.Errorf("%s: %d of %d end markers", who, seen, len(markers))
		}
		return nil
	})
	r.mu.Lock()
	var evs []map[string]any
	for _, m := range r.evs {
		if !isEndMarker(m) { // this drain's markers, or an earlier drain's
			evs = append(evs, m)
		}
	}
	r.mu.Unlock()
	if len(evs) != total {
		t.Fatalf("%s: %d messages delivered, %d acknowledged", who, len(evs), total)
	}
	byConv := map[string][]map[string]any{}
	for _, m := range evs {
		cid := m["conversation_id"].(string)
		byConv[cid] = append(byConv[cid], m)
	}
	for cid, ids := range acked {
		evs := byConv[cid]
		if len(evs) == 0 {
			continue
		}
		have := checkOrder(t, who+" in "+cid, evs, seqOf(evs[0]))
		if len(have) != len(ids) {
			t.Fatalf("%s: %s has %d messages, %d were acknowledged", who, cid, len(have), len(ids))
		}
		for _, id := range have {
			if !ids[id] {
				t.Fatalf("%s: %s delivered %s, which was never acknowledged", who, cid, id)
			}
		}
	}
}

// messageID is the id of a message.created event's message.
func messageID(ev map[string]any) string {
	m, _ := ev["message"].(map[string]any)
	id, _ := m["id"].(string)
	return id
}

// isEndMarker reports whether ev is the creation of an endMarker message.
func isEndMarker(ev map[string]any) bool {
	m, _ := ev["message"].(map[string]any)
	return m["text"] == endMarkerText
}

const endMarkerText = "end marker (not a message of the load)"

// endMarker returns a drain mark: a message sent by token through api.
func endMarker(t *testing.T, api *server, token string) func(cid string) string {
	return func(cid string) string {
		r := api.do(t, "POST", "/v1/conversations/"+cid+"/messages", token, map[string]any{"text": endMarkerText, "client_id": fmt.Sprint("end-", time.Now().UnixNano())})
		if r.status != 201 {
			t.Fatalf("end marker in %s: %d %s", cid, r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
}

// spreadConversations creates groups of alice with the watchers until they
// fall in at least want different partitions.
func spreadConversations(t *testing.T, api *server, alice string, n int, members ...string) []string {
	t.Helper()
	var convs []string
	for i := 0; i < n; i++ {
		convs = append(convs, api.createGroup(t, alice, fmt.Sprint("load ", i), members...))
	}
	return convs
}

func TestClusterSequencerKillLosesNothing(t *testing.T) {
	c := newCluster(t, 8)
	seq1 := c.start("sequencer-1", "sequencer")
	c.start("sequencer-2", "sequencer")
	a := c.start("gateway-a", "gateway")
	b := c.start("gateway-b", "gateway")
	apiA, apiB := a.api(t), b.api(t)
	alice, bob := apiA.signIn(t, "alice"), apiB.signIn(t, "bob")
	carol, dave := apiB.signIn(t, "carol"), apiA.signIn(t, "dave")
	convs := spreadConversations(t, apiA, alice, 8, "bob", "carol", "dave")
	carolWS, _ := apiB.connect(t, transportWS, carol, "")
	daveSSE, _ := apiA.connect(t, transportSSE, dave, "")
	carolR, daveR := readAll(carolWS), readAll(daveSSE)

	// 2,000 sends a second offered, over two connections per gateway.
	const rate = 2000
	stop := make(chan struct{})
	start := time.Now()
	l, done := startPacedLoad(t, []string{a.url, b.url}, []string{alice, bob}, convs, 2, rate, stop)
	// These two sleeps are the test's subject, not waits for a condition:
	// the load runs 5 s on two sequencers, then 12 s on the survivor, and
	// the rates are measured in those windows.
	time.Sleep(5 * time.Second)
	killedAt := time.Now()
	seq1.kill() // kill -9 under load: sequencer-2 takes its partitions
	time.Sleep(12 * time.Second)
	close(stop)
	<-done
	elapsed := time.Since(start)
	l.mu.Lock()
	acked, ackTimes := l.acked, l.ackTimes
	total := 0
	for _, ids := range acked {
		total += len(ids)
	}
	t.Logf("%d sends offered at %d/s, %d acknowledged in %v (%.0f/s), %d retried (refused as unavailable around the kill)",
		l.offered, rate, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), l.retries)
	t.Logf("acknowledged/s: %.0f in the 3 s before the kill (two sequencers), %.0f in the 3 s after it, %.0f in the last 3 s (one)",
		rateBetween(ackTimes, killedAt.Add(-3*time.Second), killedAt), rateBetween(ackTimes, killedAt, killedAt.Add(3*time.Second)),
		rateBetween(ackTimes, killedAt.Add(9*time.Second), killedAt.Add(12*time.Second)))
	if total != l.offered {
		t.Errorf("%d sends offered, %d acknowledged", l.offered, total)
	}
	l.mu.Unlock()
	drain(t, "carol on gateway B (websocket)", carolR, acked, endMarker(t, apiA, alice))
	drain(t, "dave on gateway A (SSE)", daveR, acked, endMarker(t, apiA, alice))
}

func TestClusterGatewayKillClientsResumeOnTheOther(t *testing.T) {
	c := newCluster(t, 8)
	c.start("sequencer", "sequencer")
	a := c.start("gateway-a", "gateway")
	b := c.start("gateway-b", "gateway")
	apiA, apiB := a.api(t), b.api(t)
	alice, bob := apiB.signIn(t, "alice"), apiA.signIn(t, "bob")
	cid := apiB.createGroup(t, alice, "failover", "bob")
	other := apiB.createGroup(t, alice, "failover 2", "bob")

	st, _ := apiA.connect(t, transportWS, bob, "")
	apiB.send(t, alice, cid, "before", "before")
	last := collect(t, st, 1, "message.created")[0]
	a.kill() // kill -9: bob's connection drops without a close frame
	if _, err := st.next(5 * time.Second); err == nil {
		t.Fatal("the connection to a killed gateway still delivers")
	}
	for i := 0; i < 100; i++ {
		conv := cid
		if i%3 == 0 {
			conv = other
		}
		apiB.send(t, alice, conv, fmt.Sprint("missed ", i), fmt.Sprint("m", i))
	}
	for _, tr := range []string{transportWS, transportSSE, transportPoll} {
		st2, _ := apiB.connect(t, tr, bob, last["cursor"].(string))
		got := collect(t, st2, 100, "message.created")
		seen := map[string]bool{}
		for i, m := range got {
			txt := textOf(m)
			if seen[txt] || !strings.HasPrefix(txt, "missed ") {
				t.Fatalf("%s: resumed event %d is %q (a repeat or not a missed one)", tr, i, txt)
			}
			seen[txt] = true
		}
		expectQuiet(t, st2, 300*time.Millisecond)
		st2.close()
	}
}

func TestClusterPresenceAndTypingAreGlobal(t *testing.T) {
	c := newCluster(t, 8)
	c.start("sequencer", "sequencer")
	a := c.start("gateway-a", "gateway")
	b := c.start("gateway-b", "gateway")
	apiA, apiB := a.api(t), b.api(t)
	alice, bob := apiA.signIn(t, "alice"), apiB.signIn(t, "bob")
	cid := apiA.createGroup(t, alice, "presence", "bob")
	watch, _ := apiA.connect(t, transportSSE, alice, "")

	online := func(api *server, token string) string {
		return fmt.Sprint(api.do(t, "GET", "/v1/conversations/"+cid+"/presence", token, nil).json(t)["online"])
	}
	apiB.connect(t, transportWS, bob, "")
	for {
		m := nextOfType(t, watch, "presence")
		if m["user_id"] == "bob" && m["online"] == true {
			break
		}
	}
	// Both gateways know both users, wherever they are connected.
	testutil.Eventually(t, 5*time.Second, func() error {
		if a, b := online(apiA, alice), online(apiB, bob); a != "[alice bob]" || b != "[alice bob]" {
			return fmt.Errorf("presence on A %s, on B %s; want [alice bob] on both", a, b)
		}
		return nil
	})
	// Typing on B reaches alice on A.
	if r := apiB.do(t, "POST", "/v1/conversations/"+cid+"/typing", bob, nil); r.status != 204 {
		t.Fatalf("typing: %d %s", r.status, r.body)
	}
	if m := nextOfType(t, watch, "typing"); m["user_id"] != "bob" || m["conversation_id"] != cid {
		t.Fatalf("typing event %v", m)
	}
	// kill -9 of bob's gateway: bob goes offline once B is missed.
	b.kill()
	start := time.Now()
	for {
		m, err := watch.next(30 * time.Second)
		if err != nil {
			t.Fatalf("bob never went offline after his gateway died: %v", err)
		}
		if m["type"] == "presence" && m["user_id"] == "bob" && m["online"] == false {
			break
		}
	}
	t.Logf("bob offline %v after his gateway was killed", time.Since(start).Round(100*time.Millisecond))
	if got := online(apiA, alice); got != "[alice]" {
		t.Fatalf("presence after the kill: %s", got)
	}
}

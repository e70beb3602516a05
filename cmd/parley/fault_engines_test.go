//go:build replicated

package main

// Fault primitives against the replicated engines of
// deploy/local/replicated (three Kafka brokers, three Cassandra nodes, a
// Toxiproxy server), and the workload the fault tests run under: clients
// that retry each send with its client_id until it is acknowledged, and
// receivers that resume with their cursor, all recorded as a history for
// cmd/parley-check's checker. Built only with -tags replicated (make
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
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parleychat/parley/cmd/parley-check/check"
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
	time.Sleep(d)
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

// ------------------------------------------------------------- workload

// faultScale is a fault run's load: the short versions run in make test,
// the long ones (PARLEY_FAULTS=long) in make chaos.
type faultScale struct {
	rate          int           // sends offered per second, in all
	convs         int           // conversations, two members each: 2×convs clients
	warm, between time.Duration // load before the first fault, and between faults
}

func faultLoadScale() faultScale {
	if os.Getenv("PARLEY_FAULTS") == "long" {
		return faultScale{rate: 300, convs: 200, warm: 20 * time.Second, between: 20 * time.Second}
	}
	return faultScale{rate: 100, convs: 200, warm: 8 * time.Second, between: 8 * time.Second}
}

// faultLoad is a run's clients: 2×convs users, each a member of one
// conversation (with the auditor, who reads everything back), each
// connected to a gateway and sending to its conversation; every send is
// retried with its client_id until acknowledged, and every operation and
// received event is recorded.
type faultLoad struct {
	t        *testing.T
	gateways []*node
	scale    faultScale
	auditor  string
	convs    []string
	users    []string // user k is a member of convs[k/2]
	tokens   map[string]string
	rec      *recorder
	client   *http.Client

	stop     chan struct{}
	senders  sync.WaitGroup
	rwg      sync.WaitGroup
	mu       sync.Mutex
	rcv      []*faultReceiver
	ackTimes []time.Time
	statuses map[string]int // "gateway status" -> count, of every try
	retries  int
	pending  atomic.Int64 // sends invoked, not yet acknowledged
	unacked  []string     // client_ids given up on
}

const faultMarker = "faultmark"

type faultReceiver struct {
	user, name, cid string
	gw              int
	mu              sync.Mutex
	st              stream
	cursor          string
	last            int64
	events, resumes int
	closed          bool
}

// newFaultLoad signs the users in, creates the conversations and connects
// every user (half on each gateway, alternating WebSocket and SSE).
func newFaultLoad(t *testing.T, gateways []*node, sc faultScale) *faultLoad {
	t.Helper()
	l := &faultLoad{t: t, gateways: gateways, scale: sc, tokens: map[string]string{}, rec: &recorder{},
		stop: make(chan struct{}), statuses: map[string]int{},
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 0}}}
	api := gateways[0].api(t)
	l.auditor = api.signIn(t, "auditor")
	for k := range 2 * sc.convs {
		l.users = append(l.users, fmt.Sprintf("u%03d", k))
	}
	l.convs = make([]string, sc.convs)
	l.rcv = make([]*faultReceiver, len(l.users))
	var tokMu sync.Mutex
	// Sign-ins, then conversations, then connections, 8 at a time; each
	// receiver reads from the moment it is connected (a client that does
	// not read misses its pings and is dropped).
	t.Cleanup(l.closeReceivers)
	parallel(t, len(l.users), func(k int) error {
		tok := gateways[k%len(gateways)].api(t).signIn(t, l.users[k])
		tokMu.Lock()
		l.tokens[l.users[k]] = tok
		tokMu.Unlock()
		return nil
	})
	parallel(t, sc.convs, func(i int) error {
		// Retried while the engines warm up (a 503 is the server's "send
		// it again"); a conversation created twice is harmless here.
		for deadline := time.Now().Add(3 * time.Minute); ; {
			r := api.do(t, "POST", "/v1/conversations", l.auditor, map[string]any{"kind": "group", "title": fmt.Sprint("fault ", i), "members": []string{l.users[2*i], l.users[2*i+1]}})
			if r.status == 201 {
				l.convs[i] = r.json(t)["id"].(string)
				return nil
			}
			if r.status != 503 || time.Now().After(deadline) {
				return fmt.Errorf("create conversation %d: %d %s", i, r.status, r.body)
			}
			time.Sleep(time.Second)
		}
	})
	parallel(t, sc.convs, func(i int) error {
		last := api.lastSeq(t, l.auditor, l.convs[i])
		for _, k := range []int{2 * i, 2*i + 1} {
			u := l.users[k]
			r := &faultReceiver{user: u, cid: l.convs[i], gw: k % len(gateways), name: u, last: last}
			l.rec.add(check.Record{Kind: check.KindWatch, Receiver: r.name, ConversationID: r.cid, AfterSeq: last})
			tr := transportWS
			if k%4 == 3 {
				tr = transportSSE
			}
			st, err := l.dial(tr, r.gw, u, "")
			if err != nil {
				return fmt.Errorf("connect %s: %v", u, err)
			}
			r.st = st
			l.mu.Lock()
			l.rcv[k] = r
			l.mu.Unlock()
			l.rwg.Go(func() { l.receive(r) })
		}
		return nil
	})
	return l
}

// parallel runs f(0..n-1), 8 at a time, and fails the test with the
// first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	sem := make(chan struct{}, 8)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i); err != nil {
				once.Do(func() { first = err })
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// dial opens a stream on a gateway and consumes its ready.
func (l *faultLoad) dial(tr string, gw int, user, cursor string) (stream, error) {
	var st stream
	var err error
	base := l.gateways[gw].url
	if tr == transportSSE {
		st, err = dialSSE(base, l.tokens[user], cursor)
	} else {
		st, err = dialWS(base, l.tokens[user], cursor)
	}
	if err != nil {
		return nil, err
	}
	ready, err := st.next(20 * time.Second)
	if err != nil || ready["type"] != "ready" {
		st.close()
		return nil, fmt.Errorf("no ready: %v %v", ready, err)
	}
	return st, nil
}

// receive records r's events; when its stream ends it resumes with its
// cursor, on the other gateway, until the load is closed.
func (l *faultLoad) receive(r *faultReceiver) {
	tr := transportWS
	if _, ok := r.st.(*sseStream); ok {
		tr = transportSSE
	}
	for {
		r.mu.Lock()
		st := r.st
		r.mu.Unlock()
		m, err := st.next(10 * time.Minute)
		if err == nil {
			if ev, ok := check.EventRecord(r.name, tr, m); ok {
				l.rec.add(ev)
				r.mu.Lock()
				r.events++
				r.last = max(r.last, ev.Seq)
				r.cursor, _ = m["cursor"].(string)
				r.mu.Unlock()
			}
			continue
		}
		for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
			r.mu.Lock()
			closed, cursor := r.closed, r.cursor
			r.mu.Unlock()
			if closed {
				return
			}
			r.gw = (r.gw + 1) % len(l.gateways)
			st, err := l.dial(tr, r.gw, r.user, cursor)
			if err == nil {
				r.mu.Lock()
				r.st = st
				r.resumes++
				closed = r.closed
				r.mu.Unlock()
				if closed {
					st.close()
					return
				}
				break
			}
			time.Sleep(backoff)
		}
	}
}

func (l *faultLoad) closeReceivers() {
	l.mu.Lock()
	rcv := slices.Clone(l.rcv)
	l.mu.Unlock()
	for _, r := range rcv {
		if r == nil {
			continue
		}
		r.mu.Lock()
		if !r.closed {
			r.closed = true
			r.st.close()
		}
		r.mu.Unlock()
	}
	l.rwg.Wait()
}

// start offers scale.rate sends a second: one client per conversation,
// its two members taking turns, each send retried until acknowledged.
func (l *faultLoad) start() {
	interval := time.Duration(float64(time.Second) * float64(len(l.convs)) / float64(l.scale.rate))
	for i, cid := range l.convs {
		l.senders.Go(func() {
			time.Sleep(time.Duration(rand.Int64N(int64(interval))))
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				k := 2*i + n%2
				l.sendUntilAcked(fmt.Sprintf("w%03d", i), l.users[k], k%len(l.gateways), cid, fmt.Sprintf("%s-%d", l.users[k], n),
					fmt.Sprintf("%s from %s number %d", faultMarker, l.users[k], n))
			}
		})
	}
}

// sendUntilAcked sends over REST, retrying with the same client_id (on
// the other gateway, after a backoff) until the send is acknowledged or
// two minutes passed since the load stopped.
func (l *faultLoad) sendUntilAcked(process, user string, gw int, cid, clientID, text string) {
	l.pending.Add(1)
	defer l.pending.Add(-1)
	backoff := 250 * time.Millisecond
	var giveUp time.Time
	for attempt := 0; ; attempt++ {
		l.rec.add(check.Record{Kind: check.KindOp, Time: time.Now(), Process: process, Phase: check.Invoke, F: "send", ConversationID: cid, SenderID: user, ClientID: clientID})
		status, m, err := l.trySend(l.gateways[gw].url, l.tokens[user], cid, text, clientID)
		r := check.Record{Kind: check.KindOp, Time: time.Now(), Process: process, F: "send", ConversationID: cid, SenderID: user, ClientID: clientID, Note: strconv.Itoa(status)}
		switch {
		case status == 200 || status == 201:
			r.Phase = check.OK
			r.MessageID, _ = m["id"].(string)
			seq, _ := m["seq"].(float64)
			r.Seq = int64(seq)
		case status >= 400 && status < 500 && status != 408 && status != 429:
			r.Phase = check.Fail
		default:
			r.Phase = check.Unknown
			if err != nil {
				r.Note = err.Error()
			}
		}
		l.rec.add(r)
		l.mu.Lock()
		l.statuses[fmt.Sprintf("%s %d", l.gateways[gw].name, status)]++
		if r.Phase == check.OK {
			l.ackTimes = append(l.ackTimes, r.Time)
		} else {
			l.retries++
		}
		l.mu.Unlock()
		if r.Phase == check.OK {
			return
		}
		if r.Phase == check.Fail {
			l.t.Errorf("send %s refused: %d %v", clientID, status, m)
			return
		}
		select {
		case <-l.stop:
			if giveUp.IsZero() {
				giveUp = time.Now().Add(2 * time.Minute)
			}
		default:
		}
		if !giveUp.IsZero() && time.Now().After(giveUp) {
			l.mu.Lock()
			l.unacked = append(l.unacked, clientID)
			l.mu.Unlock()
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
		gw = (gw + 1) % len(l.gateways)
	}
}

func (l *faultLoad) trySend(base, token, cid, text, clientID string) (int, map[string]any, error) {
	body, _ := json.Marshal(map[string]string{"text": text, "client_id": clientID})
	req, _ := http.NewRequest("POST", base+"/v1/conversations/"+cid+"/messages", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return res.StatusCode, m, nil
}

// ackRate is acknowledgements per second in [from, to).
func (l *faultLoad) ackRate(from, to time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return rateBetween(l.ackTimes, from, to)
}

// finish stops offering sends, waits for every send to be acknowledged
// and every receiver to catch up with the store, closes the receivers,
// and checks the whole history (with the store's log and the index read
// back, waiting up to indexWait for the indexer). Every anomaly count
// must be 0, and every client_id must be stored exactly once.
func (l *faultLoad) finish(indexWait time.Duration) check.Report {
	t := l.t
	t.Helper()
	close(l.stop)
	l.senders.Wait()
	l.mu.Lock()
	unacked := l.unacked
	l.mu.Unlock()
	if len(unacked) > 0 {
		t.Errorf("%d sends never acknowledged, e.g. %v", len(unacked), unacked[:min(5, len(unacked))])
	}
	api := l.gateways[len(l.gateways)-1].api(t)
	target := map[string]int64{}
	for _, cid := range l.convs {
		target[cid] = api.lastSeq(t, l.auditor, cid)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		behind := 0
		var example string
		for _, r := range l.rcv {
			r.mu.Lock()
			if r.last < target[r.cid] {
				behind++
				example = fmt.Sprintf("%s at seq %d of %d", r.name, r.last, target[r.cid])
			}
			r.mu.Unlock()
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d receivers did not catch up in 60 s, e.g. %s", behind, example)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // anything extra (a duplicate) would come now
	l.closeReceivers()
	resumes := 0
	for _, r := range l.rcv {
		resumes += r.resumes
	}

	src := check.Source{URL: api.url, Token: l.auditor, Query: faultMarker, IndexWait: indexWait, Client: l.client}
	start := time.Now()
	read, err := src.Collect(context.Background(), l.convs)
	if err != nil {
		t.Fatal(err)
	}
	l.client.CloseIdleConnections()
	l.rec.mu.Lock()
	h := append(slices.Clone(l.rec.h), read...)
	l.rec.mu.Unlock()
	rep := check.Check(h)
	var b bytes.Buffer
	_ = rep.WriteText(&b)
	t.Logf("history: %d records; store and index read back in %v; receivers resumed %d times\n%s", len(h), time.Since(start).Round(time.Millisecond), resumes, b.String())
	if dir := os.Getenv("PARLEY_FAULT_HISTORY_DIR"); dir != "" {
		if f, err := os.Create(fmt.Sprintf("%s/%s.jsonl", dir, t.Name())); err == nil {
			_ = check.Write(f, h)
			f.Close()
		}
	}
	if !rep.OK() {
		t.Error("the history has anomalies")
	}
	// Exactly one stored message per client_id, and one per
	// acknowledged send.
	clientIDs := map[string]int{}
	acked := map[string]bool{}
	for _, r := range h {
		switch {
		case r.Kind == check.KindStored && r.Type == "message.created":
			clientIDs[r.SenderID+"/"+r.ClientID]++
		case r.Kind == check.KindOp && r.Phase == check.OK:
			acked[r.SenderID+"/"+r.ClientID] = true
		}
	}
	for id, n := range clientIDs {
		if n != 1 {
			t.Errorf("client_id %s is stored %d times", id, n)
		}
	}
	if len(clientIDs) != len(acked) {
		t.Errorf("%d client_ids stored, %d acknowledged", len(clientIDs), len(acked))
	}
	if rep.Acked == 0 || rep.Receivers != len(l.rcv) {
		t.Errorf("checked too little: %d acknowledged, %d receivers of %d", rep.Acked, rep.Receivers, len(l.rcv))
	}
	return rep
}

// statusCounts is how many tries were answered with each status so far,
// per gateway ("gateway-a 201").
func (l *faultLoad) statusCounts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]int, len(l.statuses))
	for k, n := range l.statuses {
		m[k] = n
	}
	return m
}

// statusSummary is how every try was answered, per gateway.
func (l *faultLoad) statusSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.statuses))
	for k := range l.statuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, l.statuses[k]))
	}
	return strings.Join(parts, ", ")
}

// ------------------------------------------------------------ resources

// nodeResources is what a node's /metrics says of its goroutines,
// descriptors and resident memory.
type nodeResources struct {
	goroutines, fds int
	rss             int64
}

func readResources(t *testing.T, n *node) nodeResources {
	t.Helper()
	res, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", n.name, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var r nodeResources
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_goroutines":
			r.goroutines = int(v)
		case "process_open_fds":
			r.fds = int(v)
		case "process_resident_memory_bytes":
			r.rss = int64(v)
		}
	}
	if r.goroutines == 0 || r.fds == 0 || r.rss == 0 {
		t.Fatalf("%s /metrics lacks go_goroutines, process_open_fds or process_resident_memory_bytes", n.name)
	}
	return r
}

func (r nodeResources) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %d MiB", r.goroutines, r.fds, r.rss>>20)
}

// resourcesBack waits up to 30 s for each node's goroutines and
// descriptors to come back near idle (before the clients connected: at
// most 10% + 25 above) and its RSS near its value under load before the
// fault (at most 50% + 64 MiB above): what a fault's recovery left behind
// would show as growth here.
func resourcesBack(t *testing.T, nodes []*node, idle, loaded map[string]nodeResources) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		for {
			now := readResources(t, n)
			i, w := idle[n.name], loaded[n.name]
			okG := now.goroutines <= i.goroutines+i.goroutines/10+25
			okF := now.fds <= i.fds+i.fds/10+25
			okR := now.rss <= w.rss+w.rss/2+64<<20
			if okG && okF && okR {
				t.Logf("%s: idle %v; under load %v; after %v", n.name, i, w, now)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s did not come back near its baseline in 30 s: idle %v, under load %v, now %v", n.name, i, w, now)
				break
			}
			time.Sleep(time.Second)
		}
	}
}

func resourcesOf(t *testing.T, nodes []*node) map[string]nodeResources {
	m := map[string]nodeResources{}
	for _, n := range nodes {
		m[n.name] = readResources(t, n)
	}
	return m
}

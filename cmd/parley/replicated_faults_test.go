//go:build replicated

package main

// Faults 1-3 of issue 13 against the replicated engines, in distributed
// mode: two gateway+sequencer nodes and an indexer, 200 conversations of
// two members, every member connected (400 clients, a quarter by SSE),
// sends offered at a steady rate and retried with their client_id until
// acknowledged. Each run's history (every try and its outcome, every
// event every client got, the store's log and the index read back) must
// check valid: lost, duplicate, reorder, gap, inconsistent and
// index_mismatch all 0, one stored message per client_id. The short
// versions of faults 1 and 2 run in make test (make test-faults), the
// long ones and fault 3 in make chaos (PARLEY_FAULTS=long).

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startFaultTopology starts two gateway+sequencer nodes (a with extra
// flags) and an indexer on the replicated engines.
func startFaultTopology(t *testing.T, aFlags ...string) (c *cluster, es *toxiProxy, a, b, ix *node) {
	c, es = newReplicatedCluster(t, 8)
	a = c.startWith("gateway-a", "gateway,sequencer", aFlags...)
	b = c.start("gateway-b", "gateway,sequencer")
	ix = c.start("indexer", "indexer")
	return c, es, a, b, ix
}

// logRates logs the acknowledgements per second from start to stop and
// in each window (name, from, to).
func logRates(t *testing.T, l *faultLoad, start, stop time.Time, windows ...any) {
	t.Helper()
	msg := fmt.Sprintf("offered %d sends/s over %d conversations to %d clients for %v; acknowledged/s overall %.0f",
		l.scale.rate, len(l.convs), len(l.rcv), stop.Sub(start).Round(time.Second), l.ackRate(start, stop))
	for i := 0; i+2 < len(windows); i += 3 {
		msg += fmt.Sprintf("; %s %.0f", windows[i], l.ackRate(windows[i+1].(time.Time), windows[i+2].(time.Time)))
	}
	t.Logf("%s; tries answered: %s; %d retried", msg, l.statusSummary(), l.retries)
}

// Fault 1: the broker leading the busiest partitions is SIGKILLed (and
// restarted 10 s later), then another broker is SIGSTOPped for 15 s.
// With three replicas and min.insync.replicas=2, every acknowledged send
// survives both.
func TestFaultEnginesKafkaLeaderKillAndBrokerPause(t *testing.T) {
	sc := faultLoadScale()
	c, _, a, b, ix := startFaultTopology(t)
	nodes := []*node{a, b, ix}
	idle := resourcesOf(t, nodes)
	l := newFaultLoad(t, []*node{a, b}, sc)
	start := time.Now()
	l.start()
	time.Sleep(sc.warm)
	loaded := resourcesOf(t, nodes)

	victim, why := busiestKafkaLeader(t, c.topicPrefix())
	t.Logf("killing %s, the busiest leader (%s)", victim, why)
	killedAt := time.Now()
	killEngine(t, victim)
	time.Sleep(10 * time.Second)
	took := restartEngine(t, victim)
	restartedAt := time.Now()
	t.Logf("%s restarted and answering in %v", victim, took.Round(100*time.Millisecond))
	time.Sleep(sc.between)

	paused, why := busiestKafkaLeader(t, c.topicPrefix())
	if paused == victim {
		paused = map[string]string{"kafka-1": "kafka-2", "kafka-2": "kafka-3", "kafka-3": "kafka-1"}[victim]
	}
	t.Logf("pausing %s for 15 s (%s)", paused, why)
	pausedAt := time.Now()
	pauseEngine(t, paused, 15*time.Second)
	contAt := time.Now()
	time.Sleep(sc.between)

	stopAt := time.Now()
	rep := l.finish(60 * time.Second)
	logRates(t, l, start, stopAt, "before the kill", start, killedAt, "while "+victim+" was dead and restarting", killedAt, restartedAt,
		"while "+paused+" was paused", pausedAt, contAt, "after", contAt, stopAt)
	t.Logf("checked: %d ops, %d acknowledged, %d events at %d receivers, %d stored, %d indexed", rep.Ops, rep.Acked, rep.Events, rep.Receivers, rep.Stored, rep.Indexed)
	resourcesBack(t, nodes, idle, loaded)
}

// Fault 2: one Cassandra node is SIGKILLed (and restarted), then one
// Parley node (gateway-a, which reaches Cassandra only through Toxiproxy)
// is cut off from every Cassandra node for 20 s. Clients retry with the
// same client_id throughout: exactly one message per client_id.
func TestFaultEnginesCassandraNodeKillAndPartition(t *testing.T) {
	sc := faultLoadScale()
	proxies, flags := cassandraProxies(t)
	_, _, a, b, ix := startFaultTopology(t, flags...)
	nodes := []*node{a, b, ix}
	idle := resourcesOf(t, nodes)
	l := newFaultLoad(t, []*node{a, b}, sc)
	start := time.Now()
	l.start()
	time.Sleep(sc.warm)
	loaded := resourcesOf(t, nodes)

	killedAt := time.Now()
	killEngine(t, "cassandra-2")
	t.Logf("killed cassandra-2")
	time.Sleep(sc.between)
	took := restartEngine(t, "cassandra-2")
	restartedAt := time.Now()
	t.Logf("cassandra-2 restarted and answering CQL in %v", took.Round(100*time.Millisecond))
	time.Sleep(sc.between)

	cutAt := time.Now()
	for _, p := range proxies {
		p.cut()
	}
	time.Sleep(20 * time.Second)
	for _, p := range proxies {
		p.heal()
	}
	healedAt := time.Now()
	t.Logf("gateway-a was cut off from Cassandra for %v", healedAt.Sub(cutAt).Round(100*time.Millisecond))
	time.Sleep(sc.between)

	stopAt := time.Now()
	rep := l.finish(60 * time.Second)
	logRates(t, l, start, stopAt, "before the kill", start, killedAt, "while cassandra-2 was dead and restarting", killedAt, restartedAt,
		"between", restartedAt, cutAt, "while gateway-a was cut off", cutAt, healedAt, "after", healedAt, stopAt)
	t.Logf("checked: %d ops, %d acknowledged, %d events at %d receivers, %d stored, %d indexed", rep.Ops, rep.Acked, rep.Events, rep.Receivers, rep.Stored, rep.Indexed)
	resourcesBack(t, nodes, idle, loaded)
}

// Fault 3: Elasticsearch is gone for 60 s for every Parley node (its
// Toxiproxy proxy refuses connections, which is what a stopped
// Elasticsearch is to Parley; the shared Elasticsearch itself keeps
// running for the other tests). Chat is unaffected: no send is answered
// otherwise than before (2xx, or a 503 "send it again" when the engines
// are slow), every one is acknowledged, every client gets every event,
// and the gateways' readiness is logged. Within
// 120 s of Elasticsearch's return the index holds exactly the stored,
// undeleted messages.
func TestFaultEnginesElasticsearchDown60s(t *testing.T) {
	sc := faultLoadScale()
	_, es, a, b, ix := startFaultTopology(t)
	nodes := []*node{a, b, ix}
	idle := resourcesOf(t, nodes)
	l := newFaultLoad(t, []*node{a, b}, sc)
	start := time.Now()
	l.start()
	time.Sleep(sc.warm)
	loaded := resourcesOf(t, nodes)

	before := l.statusCounts()
	downAt := time.Now()
	es.setEnabled(false)
	notReady := map[string]int{}
	for time.Since(downAt) < 60*time.Second {
		for _, g := range []*node{a, b} {
			if res, err := http.Get(g.url + "/readyz"); err != nil || res.StatusCode != 200 {
				notReady[g.name]++
			} else {
				res.Body.Close()
			}
		}
		time.Sleep(time.Second)
	}
	es.setEnabled(true)
	backAt := time.Now()
	during := l.statusCounts()
	for k, n := range before {
		during[k] -= n
	}
	t.Logf("tries while Elasticsearch was down: %v (before it: %v); gateway /readyz not 200 (of 60 probes each): %v", during, before, notReady)
	for k, n := range during {
		if n > 0 && !strings.HasSuffix(k, " 200") && !strings.HasSuffix(k, " 201") && !strings.HasSuffix(k, " 503") {
			t.Errorf("%d tries answered %s while Elasticsearch was down", n, k)
		}
	}
	time.Sleep(sc.between)

	stopAt := time.Now()
	wait := 120*time.Second - time.Since(backAt)
	rep := l.finish(wait)
	agreedIn := time.Since(backAt)
	logRates(t, l, start, stopAt, "before", start, downAt, "while Elasticsearch was down", downAt, backAt, "after", backAt, stopAt)
	t.Logf("checked: %d ops, %d acknowledged, %d events at %d receivers, %d stored, %d indexed; index == store %v after Elasticsearch came back (bound 120 s, checked last)",
		rep.Ops, rep.Acked, rep.Events, rep.Receivers, rep.Stored, rep.Indexed, agreedIn.Round(time.Second))
	if rep.Count("index_mismatch") > 0 {
		t.Errorf("the index did not agree with the store within 120 s of Elasticsearch's return")
	}
	resourcesBack(t, nodes, idle, loaded)
}

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the server's /metrics as metric families.
func (s *server) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	r := s.do(t, "GET", "/metrics", "", nil, "Accept", "")
	if r.status != 200 {
		t.Fatalf("/metrics answered %d", r.status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("/metrics is not the text format: %v", err)
	}
	return fams
}

// sample is the value of the series of name whose labels include want (a
// histogram's count), and whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// metricCheck is one series a test expects with a value of at least min.
type metricCheck struct {
	name   string
	labels map[string]string
	min    float64
}

// waitMetrics scrapes until every check holds, failing with the missing
// ones after 10 s.
func (s *server) waitMetrics(t *testing.T, checks ...metricCheck) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := s.scrape(t)
		var missing []string
		for _, c := range checks {
			if v, ok := sample(fams, c.name, c.labels); !ok || v < c.min {
				missing = append(missing, fmt.Sprintf("%s%v >= %v (have %v, %v)", c.name, c.labels, c.min, v, ok))
			}
		}
		if len(missing) == 0 {
			return fams
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Fatalf("metrics missing after real actions:\n%s", strings.Join(missing, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsFollowRealActions: sign-in, a group, sends over REST and
// WebSocket to a recipient on a WebSocket, a search, an upload and
// typing past its limit show up in the node's /metrics with the labels
// operators query (see docs/operations.md, the metrics reference).
func TestMetricsFollowRealActions(t *testing.T) {
	s := startServer(t)
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "metrics", "bob")
	bs, _ := s.connect(t, transportWS, bob, "")
	defer bs.close()
	as, _ := s.connect(t, transportWS, alice, "")
	defer as.close()
	ws := as.(*wsStream)

	s.send(t, alice, cid, "over rest", "c-rest")
	if err := ws.write(map[string]any{"type": "send", "ref": "r1", "conversation_id": cid, "client_id": "c-ws", "text": "over ws"}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := ws.next(10 * time.Second)
		if err != nil {
			t.Fatalf("no ack: %v", err)
		}
		if m["type"] == "ack" {
			break
		}
	}
	collect(t, bs, 2, "message.created")
	if r := s.do(t, "GET", "/v1/search?q=rest", alice, nil); r.status != 200 {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	if _, status := s.upload(t, alice, "a.txt", "text/plain", 3, []byte("abc")); status/100 != 2 {
		t.Fatalf("upload: %d", status)
	}
	limited := false
	for i := 0; i < 20 && !limited; i++ {
		limited = s.do(t, "POST", "/v1/conversations/"+cid+"/typing", alice, nil).status == 429
	}
	if !limited {
		t.Fatal("typing was never rate limited")
	}

	s.waitMetrics(t,
		metricCheck{"parley_connections", labels("transport", "websocket"), 2},
		metricCheck{"parley_send_duration_seconds", labels("transport", "rest", "result", "ok"), 1},
		metricCheck{"parley_send_duration_seconds", labels("transport", "ws", "result", "ok"), 1},
		metricCheck{"parley_delivery_duration_seconds", labels("transport", "websocket"), 2},
		metricCheck{"parley_gateway_hop_seconds", labels("hop", "events_to_socket"), 2},
		metricCheck{"parley_sequencer_hop_seconds", labels("hop", "store_commit"), 1},
		metricCheck{"parley_port_call_seconds", labels("port", "store", "op", "commit"), 1},
		metricCheck{"parley_port_call_seconds", labels("port", "index", "op", "put"), 1},
		metricCheck{"parley_port_call_seconds", labels("port", "index", "op", "search"), 1},
		metricCheck{"parley_port_call_seconds", labels("port", "blobs", "op", "upload_url"), 1},
		metricCheck{"parley_port_call_seconds", labels("port", "log", "op", "append"), 1},
		metricCheck{"parley_log_records_appended_total", labels("topic", "commands"), 2},
		metricCheck{"parley_log_records_appended_total", labels("topic", "events"), 2},
		metricCheck{"parley_log_records_read_total", labels("topic", "commands", "group", "sequencer"), 2},
		metricCheck{"parley_log_records_read_total", labels("topic", "events", "group", "indexer"), 2},
		metricCheck{"parley_log_handle_seconds", labels("topic", "commands", "group", "sequencer"), 1},
		metricCheck{"parley_consumer_lag", labels("group", "sequencer", "topic", "commands", "partition", "0"), 0},
		metricCheck{"parley_consumer_lag", labels("group", "indexer", "topic", "events", "partition", "0"), 0},
		metricCheck{"parley_rate_limited_total", labels("limit", "typing"), 1},
		metricCheck{"parley_submit_queued", nil, 0},
		metricCheck{"parley_submit_waiting", nil, 0},
		metricCheck{"parley_submit_shed_total", nil, 0},
	)
}

// TestQueueDepthsShowASlowReader: under a stream of sends, a WebSocket
// client that reads nothing shows in /metrics as the deepest queue of
// its transport, with the queue size beside it: the warning an operator
// gets before slow-consumer closes.
func TestQueueDepthsShowASlowReader(t *testing.T) {
	s := startServer(t, "--queue-size", "100000")
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "deep", "bob")
	slow, _ := s.connect(t, transportWS, bob, "")
	defer slow.close()
	big := strings.Repeat("x", 3900)

	// Four senders, so that once the kernel's socket buffers are full the
	// queue grows well within the server's 10 s write timeout (after it
	// the slow reader is closed and its queue is gone).
	stop := make(chan struct{})
	failed := make(chan error, 4)
	var senders sync.WaitGroup
	for w := range 4 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"text":%q,"client_id":"c%d-%d"}`, fmt.Sprint(i, big), w, i)
				req, _ := http.NewRequest("POST", s.url+"/v1/conversations/"+cid+"/messages", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+alice)
				res, err := http.DefaultClient.Do(req)
				if err == nil {
					res.Body.Close()
					if res.StatusCode != 201 {
						err = fmt.Errorf("send answered %d", res.StatusCode)
					}
				}
				if err != nil {
					failed <- err
					return
				}
			}
		}()
	}
	defer senders.Wait()
	defer close(stop)

	const want = 32 // events queued beyond what the kernel buffers hold
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-failed:
			t.Fatal(err)
		default:
		}
		fams := s.scrape(t)
		deepest, ok := sample(fams, "parley_connection_queue_depth_max", labels("transport", "websocket"))
		if !ok {
			t.Fatalf("no parley_connection_queue_depth_max for websockets: %v", fams["parley_connection_queue_depth_max"])
		}
		if limit, _ := sample(fams, "parley_connection_queue_limit", labels("transport", "websocket")); limit != 100000 {
			t.Fatalf("queue limit %v, want --queue-size 100000", limit)
		}
		if queued, _ := sample(fams, "parley_connection_queued_items", labels("transport", "websocket")); queued < deepest {
			t.Fatalf("%v queued on websockets, fewer than the deepest queue %v", queued, deepest)
		}
		if deepest >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow reader's queue shows %v deep, want %d", deepest, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

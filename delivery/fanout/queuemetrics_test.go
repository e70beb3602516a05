package fanout

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gauges gathers reg's gauges as name{transport} -> value.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.Metric {
			if f.GetType() != dto.MetricType_GAUGE {
				t.Fatalf("%s is a %v, want a gauge", f.GetName(), f.GetType())
			}
			out[fmt.Sprintf("%s{%s}", f.GetName(), m.Label[0].GetValue())] = m.Gauge.GetValue()
		}
	}
	return out
}

// TestQueueCollectorReportsDepthsByTransport: the queued items of every
// connection, the deepest queue and the queue size show per transport,
// as the queues are at the scrape: items taken by a writer leave them, a
// closed connection leaves them, and a transport without connections has
// no series.
func TestQueueCollectorReportsDepthsByTransport(t *testing.T) {
	h := NewHub(Config{ID: "gw", Log: &fakeLog{parts: 4}, Store: fakeStore{}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.QueueCollector())
	conn := func(user, transport string, queued int) *Conn {
		c := NewConn(user, 64)
		c.Transport = transport
		if _, ok := h.Register(c, 0); !ok {
			t.Fatalf("%s not registered", user)
		}
		for i := range queued {
			c.Enqueue(EventItem(benchEvent(int64(i+1)), time.Time{}))
		}
		return c
	}
	ws1 := conn("alice", "websocket", 3)
	conn("bob", "websocket", 10)
	sse := conn("carol", "sse", 2)
	sse.Control([]byte(`{"type":"pong"}`)) // the control lane counts too
	conn("dave", "", 1)

	want := map[string]float64{
		"parley_connection_queued_items{websocket}":    13,
		"parley_connection_queue_depth_max{websocket}": 10,
		"parley_connection_queue_limit{websocket}":     64,
		"parley_connection_queued_items{sse}":          3,
		"parley_connection_queue_depth_max{sse}":       3,
		"parley_connection_queue_limit{sse}":           64,
		"parley_connection_queued_items{other}":        1,
		"parley_connection_queue_depth_max{other}":     1,
		"parley_connection_queue_limit{other}":         64,
	}
	check := func(want map[string]float64) {
		t.Helper()
		have := gauges(t, reg)
		if len(have) != len(want) {
			t.Errorf("series %v, want %v", have, want)
		}
		for k, v := range want {
			if have[k] != v {
				t.Errorf("%s = %v, want %v", k, have[k], v)
			}
		}
	}
	check(want)

	// alice's writer takes her 3; carol's connection goes away.
	if items, err := ws1.take(nil, nil); err != nil || len(items) != 3 {
		t.Fatalf("take: %d items, %v", len(items), err)
	}
	h.Unregister(sse)
	want["parley_connection_queued_items{websocket}"] = 10
	delete(want, "parley_connection_queued_items{sse}")
	delete(want, "parley_connection_queue_depth_max{sse}")
	delete(want, "parley_connection_queue_limit{sse}")
	check(want)
}

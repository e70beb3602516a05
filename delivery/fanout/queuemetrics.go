package fanout

import "github.com/prometheus/client_golang/prometheus"

// QueueCollector returns the collector of the hub's connection queues,
// read at scrape time, by transport (Conn.Transport; "other" when unset):
//
//   - parley_connection_queued_items: events and answers queued on the
//     connections and not yet taken by their writers;
//   - parley_connection_queue_depth_max: the deepest queue: a connection
//     whose depth reaches parley_connection_queue_limit is closed as too
//     slow (1013), so this nearing the limit is the warning before
//     slow-consumer closes;
//   - parley_connection_queue_limit: the queue size of one connection.
//
// It costs the fan-out nothing: a scrape copies the hub's connection list
// (one lock) and reads each queue's length under that connection's lock.
// A transport with no open connection has no series.
func (h *Hub) QueueCollector() prometheus.Collector {
	return &queueCollector{
		hub:     h,
		queued:  prometheus.NewDesc("parley_connection_queued_items", "Events and answers queued on realtime connections and not yet taken by their writers, by transport (read at scrape time).", []string{"transport"}, nil),
		deepest: prometheus.NewDesc("parley_connection_queue_depth_max", "The deepest queue among the realtime connections of a transport (read at scrape time); at parley_connection_queue_limit the connection is closed as too slow.", []string{"transport"}, nil),
		limit:   prometheus.NewDesc("parley_connection_queue_limit", "The queue size of one realtime connection (--queue-size), by transport.", []string{"transport"}, nil),
	}
}

type queueCollector struct {
	hub                    *Hub
	queued, deepest, limit *prometheus.Desc
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.queued
	ch <- q.deepest
	ch <- q.limit
}

// queueStats are one transport's queues at a scrape.
type queueStats struct{ queued, deepest, limit int }

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	by := map[string]*queueStats{}
	q.hub.Each(func(c *Conn) {
		t := c.Transport
		if t == "" {
			t = "other"
		}
		s := by[t]
		if s == nil {
			s = &queueStats{}
			by[t] = s
		}
		n := c.depth()
		s.queued += n
		s.deepest = max(s.deepest, n)
		s.limit = max(s.limit, c.max)
	})
	for t, s := range by {
		ch <- prometheus.MustNewConstMetric(q.queued, prometheus.GaugeValue, float64(s.queued), t)
		ch <- prometheus.MustNewConstMetric(q.deepest, prometheus.GaugeValue, float64(s.deepest), t)
		ch <- prometheus.MustNewConstMetric(q.limit, prometheus.GaugeValue, float64(s.limit), t)
	}
}

// depth is how many items wait in c's lanes (an overflowed or closed
// connection holds none that will be written).
func (c *Conn) depth() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) + len(c.control)
}

package realtime

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/delivery/fanout"
)

// metrics are the transports' collectors.
type metrics struct {
	connections *prometheus.GaugeVec
	slowClosed  prometheus.Counter
	overflows   prometheus.Counter
	// dropped counts connections the server closed because the client did
	// not answer (a ping without pong, a write that timed out or failed).
	dropped *prometheus.CounterVec
	// writes counts socket writes (a WebSocket frame, an SSE flush, a
	// long-poll answer) and written the events they carried, by transport:
	// writes / written is the writes per delivery.
	writes         *prometheus.CounterVec
	written        *prometheus.CounterVec
	eventsToSocket prometheus.Observer
	// delivery times a live event from its sequencing (the event's at,
	// the sequencer's clock) until written to a socket, by transport.
	delivery *prometheus.HistogramVec
	// limited counts connections refused by the per-user limit.
	limited prometheus.Counter
	// shed counts connections refused because MaxOpening were opening.
	shed prometheus.Counter
}

func newMetrics(r prometheus.Registerer, eventsToSocket prometheus.Observer) *metrics {
	m := &metrics{
		connections:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_connections", Help: "Open realtime connections by transport."}, []string{"transport"}),
		slowClosed:     prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_slow_connections_closed_total", Help: "Connections closed because they could not keep up (their queue overflowed): with 1013, or at the write timeout when their socket was full."}),
		overflows:      prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_connection_queue_overflows_total", Help: "Connection queues that overflowed (the connection is then closed with 1013)."}),
		dropped:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_connections_dropped_total", Help: "Realtime connections the server closed because the client stopped answering, by reason (ping_timeout, write_failed)."}, []string{"reason"}),
		writes:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_socket_writes_total", Help: "Writes to realtime connections (WebSocket frames, SSE flushes, long-poll answers) by transport; many events share one."}, []string{"transport"}),
		written:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_socket_written_items_total", Help: "Events and answers written to realtime connections by transport."}, []string{"transport"}),
		eventsToSocket: eventsToSocket,
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_delivery_duration_seconds",
			Help:    "A live event from its sequencing (the sequencer's clock) until written to a realtime connection, by transport.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"transport"}),
		limited: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_connection_limit_hits_total", Help: "Realtime connections refused because the user had --max-conns-per-user open on this gateway."}),
		shed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_connections_shed_total", Help: "Realtime connections refused with 503 because --max-opening connections were opening at once (a reconnect storm shed)."}),
	}
	if m.eventsToSocket == nil {
		m.eventsToSocket = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "unregistered"})
	}
	if r != nil {
		r.MustRegister(m.connections, m.slowClosed, m.overflows, m.dropped, m.writes, m.written, m.delivery, m.limited, m.shed)
	}
	return m
}

// writeFailed counts a connection closed because a write to it failed:
// as too slow when its queue had overflowed meanwhile (a reader that
// stops reading fills its socket, so the write times out and not even
// the 1013 close frame can reach it), else as dropped (write_failed).
func (m *metrics) writeFailed(c *fanout.Conn) {
	if c.Overflowed() {
		m.slowClosed.Inc()
		return
	}
	m.dropped.WithLabelValues("write_failed").Inc()
}

// wrote counts one socket write of transport that carried items, and the
// events_to_socket hop of each live event among them.
func (m *metrics) wrote(transport string, items []*fanout.Item, n int) {
	m.writes.WithLabelValues(transport).Inc()
	m.written.WithLabelValues(transport).Add(float64(n))
	var now time.Time
	var delivery prometheus.Observer
	for _, it := range items {
		if it.Kind != fanout.KindEvent || it.Received.IsZero() {
			continue
		}
		if now.IsZero() {
			now = time.Now()
			delivery = m.delivery.WithLabelValues(transport)
		}
		m.eventsToSocket.Observe(now.Sub(it.Received).Seconds())
		if it.Trace != "" {
			traceWrite(it, transport, now)
		}
		if !it.Sequenced.IsZero() {
			delivery.Observe(max(now.Sub(it.Sequenced), 0).Seconds())
		}
	}
}

package gateway

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleychat/parley/delivery/fanout"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// rawJSON is already-encoded JSON.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// limiter is a token bucket per user.
type limiter struct {
	rate  float64
	burst float64
	mu    sync.Mutex
	users map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), users: map[string]*bucket{}}
}

// allow takes one token for user, or says how long until one is free.
func (l *limiter) allow(user string) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.users[user]
	if b == nil {
		if len(l.users) > 100_000 {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.users[user] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep drops full buckets so the map does not grow without bound.
func (l *limiter) sweep(now time.Time) {
	for u, b := range l.users {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.users, u)
		}
	}
}

type metrics struct {
	gatherer    prometheus.Gatherer
	deliveries  prometheus.Counter
	sends       prometheus.Counter
	connections *prometheus.GaugeVec
	slowClosed  prometheus.Counter
	overflows   prometheus.Counter
	// dropped counts connections the server closed because the client did
	// not answer (a ping without pong, a write that timed out or failed).
	dropped *prometheus.CounterVec
	// writes counts socket writes (a WebSocket frame, an SSE flush, a
	// long-poll answer) and written the events they carried, by transport:
	// writes / written is the writes per delivery.
	writes  *prometheus.CounterVec
	written *prometheus.CounterVec
	// hop times one hop of a message's way through this gateway.
	hop            *prometheus.HistogramVec
	appendHop      prometheus.Observer
	eventsToSocket prometheus.Observer
}

// Hops of parley_gateway_hop_seconds.
const (
	hopLogAppend      = "log_append"       // a command, from submission until the commands log took it
	hopEventsToSocket = "events_to_socket" // an event, from its record's read until written to a socket
)

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		deliveries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_deliveries_total", Help: "Durable events queued to connections."}),
		sends:       prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_sends_total", Help: "Messages sent (acknowledged)."}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_connections", Help: "Open realtime connections by transport."}, []string{"transport"}),
		slowClosed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_slow_connections_closed_total", Help: "Connections closed because they could not keep up."}),
		overflows:   prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_connection_queue_overflows_total", Help: "Connection queues that overflowed (the connection is then closed with 1013)."}),
		dropped:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_connections_dropped_total", Help: "Realtime connections the server closed because the client stopped answering, by reason (ping_timeout, write_failed)."}, []string{"reason"}),
		writes:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_socket_writes_total", Help: "Writes to realtime connections (WebSocket frames, SSE flushes, long-poll answers) by transport; many events share one."}, []string{"transport"}),
		written:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_socket_written_items_total", Help: "Events and answers written to realtime connections by transport."}, []string{"transport"}),
		hop: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_gateway_hop_seconds",
			Help:    "Time of one hop through the gateway: log_append (a command until the commands log took it), events_to_socket (an event from its record's read until written to a socket).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"hop"}),
	}
	m.appendHop = m.hop.WithLabelValues(hopLogAppend)
	m.eventsToSocket = m.hop.WithLabelValues(hopEventsToSocket)
	if r == nil {
		reg := prometheus.NewRegistry()
		r, m.gatherer = reg, reg
	} else if g, ok := r.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	r.MustRegister(m.deliveries, m.sends, m.connections, m.slowClosed, m.overflows, m.dropped, m.writes, m.written, m.hop)
	return m
}

func (m *metrics) observeAppend(d time.Duration) { m.appendHop.Observe(d.Seconds()) }

// wrote counts one socket write of transport that carried items, and the
// events_to_socket hop of each live event among them.
func (m *metrics) wrote(transport string, items []*fanout.Item, n int) {
	m.writes.WithLabelValues(transport).Inc()
	m.written.WithLabelValues(transport).Add(float64(n))
	var now time.Time
	for _, it := range items {
		if it.Kind != fanout.KindEvent || it.Received.IsZero() {
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		m.eventsToSocket.Observe(now.Sub(it.Received).Seconds())
	}
}

func (m *metrics) handler() http.Handler {
	if m.gatherer == nil {
		return promhttp.Handler()
	}
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}

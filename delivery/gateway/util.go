package gateway

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		deliveries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_deliveries_total", Help: "Durable events queued to connections."}),
		sends:       prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_sends_total", Help: "Messages sent (acknowledged)."}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_connections", Help: "Open realtime connections by transport."}, []string{"transport"}),
		slowClosed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_slow_connections_closed_total", Help: "Connections closed because they could not keep up."}),
		overflows:   prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_connection_queue_overflows_total", Help: "Connection queues that overflowed (the connection is then closed with 1013)."}),
	}
	if r == nil {
		reg := prometheus.NewRegistry()
		r, m.gatherer = reg, reg
	} else if g, ok := r.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	r.MustRegister(m.deliveries, m.sends, m.connections, m.slowClosed, m.overflows)
	return m
}

func (m *metrics) handler() http.Handler {
	if m.gatherer == nil {
		return promhttp.Handler()
	}
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}

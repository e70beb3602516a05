package gateway

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the gateway's own collectors and the registry its parts
// register theirs with.
type metrics struct {
	registerer prometheus.Registerer
	gatherer   prometheus.Gatherer
	deliveries prometheus.Counter
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
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_deliveries_total", Help: "Durable events queued to connections."}),
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
	m.registerer = r
	r.MustRegister(m.deliveries, m.hop)
	return m
}

func (m *metrics) observeAppend(d time.Duration) { m.appendHop.Observe(d.Seconds()) }

func (m *metrics) handler() http.Handler {
	if m.gatherer == nil {
		return promhttp.Handler()
	}
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}

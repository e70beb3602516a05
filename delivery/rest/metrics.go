package rest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
)

// sendBuckets span a send on one embedded node (a few ms) to one that
// waits out the submit timeout (seconds).
var sendBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// apiMetrics are the REST API's collectors beyond parley_sends_total.
type apiMetrics struct {
	// sendDuration times a send from its acceptance (the REST POST or the
	// WebSocket frame reached the API) until its answer (the ack or the
	// error), by transport (rest, ws) and result (ok or the error code).
	sendDuration *prometheus.HistogramVec
	// rateLimited counts refusals by a rate limit: send, typing.
	rateLimited *prometheus.CounterVec
}

func newAPIMetrics(r prometheus.Registerer) *apiMetrics {
	m := &apiMetrics{
		sendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_send_duration_seconds",
			Help:    "A send from its acceptance (REST POST or WebSocket frame) until its answer (ack or error), by transport (rest, ws) and result (ok or the error code).",
			Buckets: sendBuckets,
		}, []string{"transport", "result"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_rate_limited_total",
			Help: "Requests refused by a rate limit, by limit (send, typing).",
		}, []string{"limit"}),
	}
	if r != nil {
		r.MustRegister(m.sendDuration, m.rateLimited)
	}
	return m
}

// sent observes one send over transport that started at start and was
// answered with err.
func (m *apiMetrics) sent(transport string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = chat.ErrorCode(err)
	}
	m.sendDuration.WithLabelValues(transport, result).Observe(time.Since(start).Seconds())
}

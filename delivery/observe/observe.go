// Package observe measures the four ports (chat.Store, chat.Index,
// chat.Blobs, chat.Log) from the outside: decorators that time every call
// and count its errors by operation, whatever adapter is behind the port.
// cmd/parley wraps the engines it opens with them, so every role exports
// the same metrics for the ports it uses and no adapter carries metric
// code of its own.
//
// Metrics (registered with the Registerer given to New):
//
//	parley_port_call_seconds{port,op}           histogram of call latency
//	parley_port_call_errors_total{port,op,code} failed calls, by chat error code
//	parley_log_records_appended_total{topic}    records this process appended (out)
//	parley_log_records_read_total{topic,group}  records handed to this process's consumers (in)
//	parley_log_handle_seconds{topic,group}      time a consumer took over one batch
//
// port is store, index, blobs or log; op the method name in snake case.
// A CodeNotFound answer of the store is an answer, not an error, and is
// not counted as one.
package observe

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
)

// Metrics holds the ports' collectors; one per process, shared by the
// decorators it makes.
type Metrics struct {
	calls    *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	appended *prometheus.CounterVec
	read     *prometheus.CounterVec
	handle   *prometheus.HistogramVec
}

// callBuckets span a local embedded call (tens of µs) to a slow remote
// engine (seconds).
var callBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New makes the collectors and registers them with r.
func New(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_port_call_seconds", Help: "Latency of calls to the store, index, blobs and log ports, by port and operation.", Buckets: callBuckets,
		}, []string{"port", "op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_port_call_errors_total", Help: "Failed calls to the store, index, blobs and log ports, by port, operation and error code (unavailable, conflict, internal …).",
		}, []string{"port", "op", "code"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_log_records_appended_total", Help: "Records this process appended to the log, by topic (events out).",
		}, []string{"topic"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_log_records_read_total", Help: "Records of the log handed to this process's consumers, by topic and consumer group (subscribe for a broadcast read) (events in).",
		}, []string{"topic", "group"}),
		handle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_log_handle_seconds", Help: "Time a consumer took to handle one batch of records, by topic and group.", Buckets: callBuckets,
		}, []string{"topic", "group"}),
	}
	r.MustRegister(m.calls, m.errors, m.appended, m.read, m.handle)
	return m
}

// done observes one call of port.op that started at start and ended with
// err.
func (m *Metrics) done(port, op string, start time.Time, err error) {
	m.calls.WithLabelValues(port, op).Observe(time.Since(start).Seconds())
	if err == nil {
		return
	}
	code := chat.ErrorCode(err)
	if errors.Is(err, context.Canceled) {
		code = "canceled"
	}
	if port == "store" && code == chat.CodeNotFound {
		return
	}
	m.errors.WithLabelValues(port, op, code).Inc()
}

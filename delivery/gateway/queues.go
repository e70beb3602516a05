package gateway

import "github.com/prometheus/client_golang/prometheus"

// registerQueues registers the depths of the gateway's send queues,
// read at scrape time: commands waiting for the commands log, commands
// waiting for their result, and the realtime connections' queues.
func (g *Gateway) registerQueues() {
	g.metrics.registerer.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_submit_queued", Help: "Commands waiting in the gateway's lanes for the commands log."},
			func() float64 { return float64(g.submitter.Queued()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_submit_waiting", Help: "Commands appended whose result the gateway still waits for."},
			func() float64 { return float64(g.submitter.Waiting()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parley_submit_shed_total", Help: "Commands answered 503 at once, never appended, because their partition's oldest command had waited past --command-shed-after."},
			func() float64 { return float64(g.submitter.Shed()) }),
		g.hub.QueueCollector(),
	)
}

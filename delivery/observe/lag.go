package observe

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/delivery/admin"
)

// lagTimeout bounds one scrape's look at the consumer groups (a Kafka
// round trip): a slow log costs the scrape this much, never more.
const lagTimeout = 3 * time.Second

var lagDesc = prometheus.NewDesc("parley_consumer_lag",
	"Records of a topic a consumer group has yet to handle, per partition (end offset minus committed), read at scrape time.",
	[]string{"group", "topic", "partition"}, nil)

// lagCollector reads consumer lag from the log at each scrape.
type lagCollector struct{ cluster admin.Cluster }

// RegisterLag registers parley_consumer_lag{group,topic,partition} with r,
// read from cluster (the same view the admin page shows) at each scrape.
// A scrape when the log does not answer has no lag samples.
func RegisterLag(r prometheus.Registerer, cluster admin.Cluster) {
	r.MustRegister(lagCollector{cluster: cluster})
}

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), lagTimeout)
	defer cancel()
	groups, err := c.cluster.Groups(ctx)
	if err != nil {
		return
	}
	for _, g := range groups {
		for _, l := range g.Lag {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(l.Lag), g.Role, g.Topic, strconv.Itoa(l.Partition))
		}
	}
}

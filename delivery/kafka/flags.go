package kafka

import (
	"flag"
	"strings"
)

// RegisterFlags registers the settings an operator gives on fs, with the
// package defaults. -kafka.brokers takes comma-separated host:ports;
// leaving it empty keeps the embedded log. Partitions is left to the
// caller: it is the deployment's partition count, shared with the store.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Func("kafka.brokers", "Kafka brokers (host:port, comma-separated); replaces the embedded log", func(v string) error {
		c.Brokers = c.Brokers[:0]
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Brokers = append(c.Brokers, b)
			}
		}
		return nil
	})
	fs.IntVar(&c.ReplicationFactor, "kafka.replication-factor", DefaultReplicationFactor, "replication factor of the topics Parley creates")
	fs.DurationVar(&c.BatchTimeout, "kafka.batch-timeout", DefaultBatchTimeout, "how long a produce waits for more records to the same partition (at most 1s)")
	fs.StringVar(&c.ClientID, "kafka.client-id", DefaultClientID, "name of this process in the brokers' logs and metrics")
	fs.StringVar(&c.TopicPrefix, "kafka.topic-prefix", "", "put before every topic and consumer group name, so that deployments can share a cluster")
	fs.DurationVar(&c.SessionTimeout, "kafka.session-timeout", DefaultSessionTimeout, "consumer group session timeout: how soon the partitions of a dead node move to a live one (at least the broker's group.min.session.timeout.ms, 6s by default)")
	fs.DurationVar(&c.HeartbeatInterval, "kafka.heartbeat-interval", DefaultHeartbeatInterval, "consumer group heartbeat interval: how soon a member notices a rebalance (below --kafka.session-timeout)")
	fs.DurationVar(&c.RebalanceTimeout, "kafka.rebalance-timeout", DefaultRebalanceTimeout, "how long a rebalance waits for every member to rejoin")
	fs.DurationVar(&c.MaxWait, "kafka.max-wait", DefaultMaxWait, "how long an idle fetch waits for records")
}

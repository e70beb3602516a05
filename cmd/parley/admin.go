package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/admin"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/kafka"
	"github.com/parleychat/parley/delivery/memlog"
)

// adminHandler is the operators' view of this node (delivery/admin),
// served on every node whatever its roles. With Kafka it shows the whole
// cluster as the consumer groups see it; embedded, this node is all of it.
func adminHandler(cfg config, eng *engines, verifier *auth.Verifier, reg prometheus.Gatherer, errs *admin.ErrorLog, started time.Time, logger *slog.Logger) http.Handler {
	roles, _ := cfg.roles()
	var rs []string
	for _, r := range allRoles {
		if roles[r] {
			rs = append(rs, string(r))
		}
	}
	d := admin.Deps{
		Node: admin.Node{
			ID:         nodeID(cfg.Addr),
			Roles:      rs,
			Version:    version,
			StartedAt:  started,
			Partitions: cfg.Partitions,
			Engines:    eng.names,
		},
		Verifier: verifier,
		Gatherer: reg,
		Errors:   errs,
		Logger:   logger,
		Config:   cfg.Admin,
	}
	d.Cluster = logCluster(eng.log, d.Node.ID)
	return admin.Handler(d)
}

// logCluster reads the consumer groups of log (the admin view and the
// parley_consumer_lag metric); nil for a log it does not know.
func logCluster(log chat.Log, node string) admin.Cluster {
	switch l := log.(type) {
	case *kafka.Log:
		return kafkaCluster{log: l}
	case *memlog.Log:
		return embeddedCluster{log: l, node: node}
	}
	return nil
}

// nodeID names this node in the admin view: its host name and address.
func nodeID(addr string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "parley"
	}
	return host + " (" + addr + ")"
}

// roleTopics are the consumer groups of the roles that consume, with the
// topic each reads: the sequencer the commands, the others the events.
func roleTopics() map[string]string {
	out := map[string]string{}
	for _, r := range allRoles {
		switch r {
		case roleGateway:
		case roleSequencer:
			out[string(r)] = chat.TopicCommands
		default:
			out[string(r)] = chat.TopicEvents
		}
	}
	return out
}

// kafkaCluster reads the consumer groups from Kafka for the admin view.
type kafkaCluster struct{ log *kafka.Log }

func (k kafkaCluster) Groups(ctx context.Context) ([]admin.Group, error) {
	states, err := k.log.Groups(ctx, roleTopics())
	if err != nil {
		return nil, err
	}
	out := make([]admin.Group, 0, len(states))
	for _, s := range states {
		g := admin.Group{Role: s.Group, Topic: s.Topic, State: strings.ToLower(s.State), Members: []admin.Member{}, Lag: []admin.Lag{}}
		for _, m := range s.Members {
			parts := m.Partitions
			if parts == nil { // a member not yet given partitions (mid-rebalance) lists none, not null
				parts = []int{}
			}
			g.Members = append(g.Members, admin.Member{ID: m.ID, Host: strings.TrimPrefix(m.Host, "/"), Partitions: parts}) // brokers write "/10.0.0.3"
		}
		for _, l := range s.Lag {
			g.Lag = append(g.Lag, admin.Lag{Partition: l.Partition, Committed: l.Committed, End: l.End, Lag: l.Lag})
		}
		out = append(out, g)
	}
	return out, nil
}

// embeddedCluster reads the embedded log's consumer groups: this process
// is their only member.
type embeddedCluster struct {
	log  *memlog.Log
	node string
}

func (e embeddedCluster) Groups(context.Context) ([]admin.Group, error) {
	topics := roleTopics()
	roles := make([]string, 0, len(topics))
	for r := range topics {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	out := []admin.Group{}
	for _, role := range roles {
		lag, members, ok := e.log.Lag(topics[role], role)
		if !ok {
			continue // the role does not run here
		}
		g := admin.Group{Role: role, Topic: topics[role], State: "embedded", Members: []admin.Member{}, Lag: []admin.Lag{}}
		all := make([]int, len(lag))
		for i, p := range lag {
			all[i] = p.Partition
			g.Lag = append(g.Lag, admin.Lag{Partition: p.Partition, Committed: p.Next, End: p.End, Lag: p.End - p.Next})
		}
		if members > 0 {
			g.Members = append(g.Members, admin.Member{ID: "embedded", Host: e.node, Partitions: all})
		}
		out = append(out, g)
	}
	return out, nil
}

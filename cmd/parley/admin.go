package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/admin"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/kafka"
)

// adminHandler is the operators' view of this node (delivery/admin),
// served on every node whatever its roles. With Kafka it shows the whole
// cluster as the consumer groups see it; embedded, this node is all of it.
func adminHandler(cfg config, eng *engines, verifier *auth.Verifier, reg prometheus.Gatherer, errs *admin.ErrorLog, started time.Time, logger *slog.Logger) http.Handler {
	roles, _ := cfg.roles()
	var rs []string
	for _, r := range allRoles {
		if roles[r] {
			rs = append(rs, r)
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
	}
	if l, ok := eng.log.(*kafka.Log); ok {
		d.Cluster = kafkaCluster{log: l}
	}
	return admin.Handler(d)
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
		case "gateway":
		case "sequencer":
			out[r] = chat.TopicCommands
		default:
			out[r] = chat.TopicEvents
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
			g.Members = append(g.Members, admin.Member{ID: m.ID, Host: m.Host, Partitions: m.Partitions})
		}
		for _, l := range s.Lag {
			g.Lag = append(g.Lag, admin.Lag{Partition: l.Partition, Committed: l.Committed, End: l.End, Lag: l.Lag})
		}
		out = append(out, g)
	}
	return out, nil
}

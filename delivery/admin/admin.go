// Package admin is the operators' view of a Parley node and its cluster:
// GET /admin is a small page, GET /admin/status its JSON. Both are built
// from what the node already has: its own Prometheus registry (connections
// and every parley_ metric), the consumer groups as the log sees them
// (nodes, their roles, partition owners, lag), the /metrics of the peers
// it is told of (--admin.peers: every gateway's connections) and the
// warnings and errors it logged last. Only tokens with the admin claim (auth.AdminClaim) read
// the status; other valid tokens get 403, no token 401.
package admin

import (
	"context"
	"embed"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/httpx"
)

// MountPath is where Handler expects to be mounted.
const MountPath = "/admin"

// Verifier checks an operator's token: a *chat.Error with code
// unauthorized for a bad token, forbidden for one without the admin claim.
type Verifier interface {
	VerifyAdmin(token string) (chat.User, error)
}

// Cluster describes the consumer groups of the deployment's log; nil in
// embedded mode, where this node is the whole cluster.
type Cluster interface {
	Groups(ctx context.Context) ([]Group, error)
}

// Group is one consumer group: the role whose nodes share a topic's
// partitions.
type Group struct {
	Role    string   `json:"role"`
	Topic   string   `json:"topic"`
	State   string   `json:"state"`
	Members []Member `json:"members"`
	Lag     []Lag    `json:"lag"`
	// TotalLag is the records of the topic the group has yet to handle.
	TotalLag int64 `json:"total_lag"`
}

// Member is one node in a group.
type Member struct {
	ID         string `json:"id"`
	Host       string `json:"host"`
	Partitions []int  `json:"partitions"`
}

// Lag is one partition of a group: committed offset (-1 for none), end
// offset, and the records between.
type Lag struct {
	Partition int   `json:"partition"`
	Committed int64 `json:"committed"`
	End       int64 `json:"end"`
	Lag       int64 `json:"lag"`
}

// Node describes the node serving the view.
type Node struct {
	ID         string            `json:"id"`
	Roles      []string          `json:"roles"`
	Version    string            `json:"version"`
	StartedAt  time.Time         `json:"started_at"`
	Partitions int               `json:"partitions"`
	Engines    map[string]string `json:"engines"`
}

// Deps is what the view reads.
type Deps struct {
	Node     Node
	Verifier Verifier
	Gatherer prometheus.Gatherer
	Cluster  Cluster // nil in embedded mode
	Errors   *ErrorLog
	Logger   *slog.Logger
	// Config names the peers whose /metrics the view reads.
	Config Config
	// Client scrapes the peers; nil uses a client with a 2 s timeout.
	Client *http.Client
}

// Status is the JSON of GET /admin/status.
type Status struct {
	Node Node `json:"node"`
	// Connections are this node's open realtime connections by transport
	// (from parley_connections).
	Connections map[string]float64 `json:"connections"`
	// Nodes are the cluster's nodes as the consumer groups see them, with
	// the roles they run; in embedded mode, this node.
	Nodes []ClusterNode `json:"nodes"`
	// Groups are the consumer groups with their members and lag.
	Groups []Group `json:"groups"`
	// PartitionOwners maps each partition to the host of the sequencer
	// that owns it ("" while no sequencer holds it).
	PartitionOwners []Owner `json:"partition_owners"`
	// ClusterError says why groups could not be read, if they could not.
	ClusterError string `json:"cluster_error,omitempty"`
	// Metrics are this node's parley_ series: counters and gauges by
	// their labels, histograms as count and sum.
	Metrics map[string]float64 `json:"metrics"`
	// RecentErrors are the newest warnings and errors this node logged.
	RecentErrors []LogEntry `json:"recent_errors"`
	// Peers are the nodes of --admin.peers as their /metrics show them
	// (connections by transport); gateways, which join no consumer group,
	// appear here.
	Peers []Peer `json:"peers"`
}

// ClusterNode is a host and the roles its group memberships show.
type ClusterNode struct {
	Host  string   `json:"host"`
	Roles []string `json:"roles"`
}

// Owner is a partition and the sequencer host that owns it.
type Owner struct {
	Partition int    `json:"partition"`
	Owner     string `json:"owner"`
}

//go:embed page
var page embed.FS

// Handler serves the page (public: it holds no data), its script, and the
// status (admin tokens only).
func Handler(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpx.WriteCode(w, r, "method_not_allowed", "method not allowed")
			return
		}
		switch r.URL.Path {
		case MountPath, MountPath + "/":
			serveFile(w, "page/admin.html", "text/html; charset=utf-8")
		case MountPath + "/admin.js":
			serveFile(w, "page/admin.js", "text/javascript; charset=utf-8")
		case MountPath + "/status":
			token := auth.FromRequest(r, false)
			if token == "" {
				httpx.WriteCode(w, r, chat.CodeUnauthorized, "an admin token is needed (Authorization: Bearer)")
				return
			}
			if _, err := d.Verifier.VerifyAdmin(token); err != nil {
				httpx.WriteError(d.Logger, w, r, err)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			httpx.WriteJSON(w, http.StatusOK, d.status(ctx))
		default:
			httpx.WriteCode(w, r, chat.CodeNotFound, "no such page")
		}
	})
}

func serveFile(w http.ResponseWriter, name, contentType string) {
	b, err := page.ReadFile(name)
	if err != nil {
		http.Error(w, "missing "+name, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
	_, _ = w.Write(b)
}

func (d Deps) status(ctx context.Context) Status {
	s := Status{
		Node:        d.Node,
		Connections: map[string]float64{},
		Metrics:     map[string]float64{},
	}
	if d.Gatherer != nil {
		if mfs, err := d.Gatherer.Gather(); err == nil {
			for _, mf := range mfs {
				addFamily(s.Metrics, mf)
				if mf.GetName() == "parley_connections" {
					for _, m := range mf.GetMetric() {
						s.Connections[label(m, "transport")] += m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	if d.Errors != nil {
		s.RecentErrors = d.Errors.Entries()
	}
	s.Peers = []Peer{}
	if peers := splitPeers(d.Config.Peers); len(peers) > 0 {
		client := d.Client
		if client == nil {
			client = &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
		pctx, cancel := context.WithTimeout(ctx, peerTimeout)
		s.Peers = scrapePeers(pctx, client, peers)
		cancel()
	}
	if s.RecentErrors == nil {
		s.RecentErrors = []LogEntry{}
	}
	if d.Cluster == nil {
		s.Nodes = []ClusterNode{{Host: d.Node.ID, Roles: d.Node.Roles}}
		s.Groups = []Group{}
		for p := 0; p < d.Node.Partitions; p++ {
			s.PartitionOwners = append(s.PartitionOwners, Owner{Partition: p, Owner: d.Node.ID})
		}
		return s
	}
	groups, err := d.Cluster.Groups(ctx)
	if err != nil {
		s.ClusterError = err.Error()
		s.Groups, s.Nodes, s.PartitionOwners = []Group{}, []ClusterNode{}, []Owner{}
		return s
	}
	s.Groups = groups
	roles := map[string]map[string]bool{}
	for i, g := range groups {
		var total int64
		for _, l := range g.Lag {
			total += l.Lag
		}
		s.Groups[i].TotalLag = total
		for _, m := range g.Members {
			if roles[m.Host] == nil {
				roles[m.Host] = map[string]bool{}
			}
			roles[m.Host][g.Role] = true
		}
		if g.Role == "sequencer" {
			owner := map[int]string{}
			for _, m := range g.Members {
				for _, p := range m.Partitions {
					owner[p] = m.Host
				}
			}
			for p := 0; p < d.Node.Partitions; p++ {
				s.PartitionOwners = append(s.PartitionOwners, Owner{Partition: p, Owner: owner[p]})
			}
		}
	}
	for host, rs := range roles {
		n := ClusterNode{Host: host}
		for r := range rs {
			n.Roles = append(n.Roles, r)
		}
		sort.Strings(n.Roles)
		s.Nodes = append(s.Nodes, n)
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return s.Nodes[i].Host < s.Nodes[j].Host })
	if s.Nodes == nil {
		s.Nodes = []ClusterNode{}
	}
	if s.PartitionOwners == nil {
		s.PartitionOwners = []Owner{}
	}
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// addFamily flattens a parley_ family into out: "name{a=x,b=y}" -> value
// for counters and gauges, name_count and name_sum for histograms and
// summaries.
func addFamily(out map[string]float64, mf *dto.MetricFamily) {
	name := mf.GetName()
	if !strings.HasPrefix(name, "parley_") {
		return
	}
	for _, m := range mf.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		key := name
		if len(labels) > 0 {
			key += "{" + strings.Join(labels, ",") + "}"
		}
		put := func(k string, v float64) {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				out[k] = v
			}
		}
		switch {
		case m.Counter != nil:
			put(key, m.GetCounter().GetValue())
		case m.Gauge != nil:
			put(key, m.GetGauge().GetValue())
		case m.Histogram != nil:
			put(key+"_count", float64(m.GetHistogram().GetSampleCount()))
			put(key+"_sum", m.GetHistogram().GetSampleSum())
		case m.Summary != nil:
			put(key+"_count", float64(m.GetSummary().GetSampleCount()))
			put(key+"_sum", m.GetSummary().GetSampleSum())
		case m.Untyped != nil:
			put(key, m.GetUntyped().GetValue())
		}
	}
}

package admin

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Config says where the admin view finds the other nodes.
type Config struct {
	// Peers are host:port addresses of the cluster's nodes (every role),
	// comma-separated; a host that resolves to many addresses (a headless
	// Kubernetes Service) stands for all of them. The view scrapes each
	// one's /metrics for its connections. Empty: this node only.
	Peers string
}

// RegisterFlags registers the settings on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Peers, "admin.peers", "", "host:port of the other nodes whose /metrics the admin view reads (comma-separated; a name that resolves to many addresses, such as a headless Service, counts for all)")
}

// Validate reports peers that are not host:port.
func (c Config) Validate() error {
	for _, p := range splitPeers(c.Peers) {
		if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			return fmt.Errorf("--admin.peers: %q is not host:port", p)
		}
	}
	return nil
}

func splitPeers(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Peer is one scraped node.
type Peer struct {
	Address string `json:"address"`
	Up      bool   `json:"up"`
	Error   string `json:"error,omitempty"`
	// Connections are its open realtime connections by transport (none
	// for a node without the gateway role).
	Connections map[string]float64 `json:"connections"`
	// DeepestQueue is, by transport, the most events queued on one of
	// its connections (parley_connection_queue_depth_max); beside
	// QueueLimit, how near its slowest client is to a 1013 close.
	DeepestQueue map[string]float64 `json:"deepest_queue"`
	// QueueLimit is a connection's queue size (--queue-size), 0 when the
	// node has no connection.
	QueueLimit float64 `json:"queue_limit"`
}

// maxMetricsBytes bounds what one peer's /metrics may send.
const maxMetricsBytes = 8 << 20

// scrapePeers resolves the peers and reads each address's /metrics, all
// at once, each within the context's deadline.
func scrapePeers(ctx context.Context, client *http.Client, peers []string) []Peer {
	var addrs []string
	seen := map[string]bool{}
	for _, p := range peers {
		host, port, _ := net.SplitHostPort(p)
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil || len(ips) == 0 {
			ips = []string{host} // reported as down by the scrape
		}
		for _, ip := range ips {
			a := net.JoinHostPort(ip, port)
			if !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
	}
	sort.Strings(addrs)
	out := make([]Peer, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = scrape(ctx, client, a)
		}()
	}
	wg.Wait()
	return out
}

func scrape(ctx context.Context, client *http.Client, addr string) Peer {
	p := Peer{Address: addr, Connections: map[string]float64{}, DeepestQueue: map[string]float64{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4, */*;q=0.1") // the gateway answers 406 to an Accept naming text/plain alone
	res, err := client.Do(req)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		p.Error = "GET /metrics: " + res.Status
		return p
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(res.Body, maxMetricsBytes))
	if err != nil {
		p.Error = "metrics: " + err.Error()
		return p
	}
	p.Up = true
	if mf := families["parley_connections"]; mf != nil {
		for _, m := range mf.GetMetric() {
			p.Connections[label(m, "transport")] += m.GetGauge().GetValue()
		}
	}
	if mf := families["parley_connection_queue_depth_max"]; mf != nil {
		for _, m := range mf.GetMetric() {
			p.DeepestQueue[label(m, "transport")] = m.GetGauge().GetValue()
		}
	}
	if mf := families["parley_connection_queue_limit"]; mf != nil {
		for _, m := range mf.GetMetric() {
			p.QueueLimit = max(p.QueueLimit, m.GetGauge().GetValue())
		}
	}
	return p
}

// peerTimeout bounds the scrape of all peers.
const peerTimeout = 3 * time.Second

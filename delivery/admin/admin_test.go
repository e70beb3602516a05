package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
)

type fakeVerifier struct{}

func (fakeVerifier) VerifyAdmin(token string) (chat.User, error) {
	switch token {
	case "admin-token":
		return chat.User{ID: "ops"}, nil
	case "user-token":
		return chat.User{}, &chat.Error{Code: chat.CodeForbidden, Message: "this token has no admin claim"}
	}
	return chat.User{}, &chat.Error{Code: chat.CodeUnauthorized, Message: "invalid token"}
}

type fakeCluster struct {
	groups []Group
	err    error
}

func (f fakeCluster) Groups(context.Context) ([]Group, error) { return f.groups, f.err }

func testDeps(t *testing.T, cluster Cluster) Deps {
	reg := prometheus.NewRegistry()
	conns := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_connections", Help: "h"}, []string{"transport"})
	conns.WithLabelValues("websocket").Set(3)
	conns.WithLabelValues("sse").Set(1)
	sends := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_send_duration_seconds", Help: "h"})
	sends.Observe(0.01)
	sends.Observe(0.03)
	reg.MustRegister(conns, sends, prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_like_other", Help: "h"}))
	errs := NewErrorLog(10)
	logger := slog.New(errs.Wrap(slog.NewTextHandler(io.Discard, nil)))
	logger.With("component", "indexer").Error("index batch failed", "err", errors.New("es: 503"), "partition", 3)
	return Deps{
		Node:     Node{ID: "node-a", Roles: []string{"gateway", "sequencer"}, Version: "v0.4.0", StartedAt: time.Unix(0, 0).UTC(), Partitions: 4, Engines: map[string]string{"log": "kafka"}},
		Verifier: fakeVerifier{},
		Gatherer: reg,
		Cluster:  cluster,
		Errors:   errs,
	}
}

func get(h http.Handler, path, token string) *http.Response {
	req := httptest.NewRequest("GET", path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// TestStatusIsForAdminsOnly: no token 401, a user's token 403, both in
// the API's error shape; an admin's token reads the status.
func TestStatusIsForAdminsOnly(t *testing.T) {
	h := Handler(testDeps(t, nil))
	for token, want := range map[string]int{"": 401, "garbage": 401, "user-token": 403, "admin-token": 200} {
		res := get(h, "/admin/status", token)
		if res.StatusCode != want {
			t.Errorf("token %q: status %d, want %d", token, res.StatusCode, want)
		}
		if want != 200 {
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Error.Code == "" {
				t.Errorf("token %q: error body %v", token, err)
			}
		}
	}
	// The page itself holds no data and loads nothing from elsewhere.
	res := get(h, "/admin", "")
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(b), `src="/admin/admin.js"`) || strings.Contains(string(b), "http") {
		t.Errorf("page: %d %q", res.StatusCode, b)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("page CSP %q", csp)
	}
	if res := get(h, "/admin/admin.js", ""); res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("script: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

func status(t *testing.T, d Deps) Status {
	t.Helper()
	res := get(Handler(d), "/admin/status", "admin-token")
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	var s Status
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStatusOfAnEmbeddedNode: one node with every role and partition;
// connections and metrics come from the node's registry, errors from its log.
func TestStatusOfAnEmbeddedNode(t *testing.T) {
	s := status(t, testDeps(t, nil))
	if s.Connections["websocket"] != 3 || s.Connections["sse"] != 1 {
		t.Errorf("connections %v", s.Connections)
	}
	if s.Metrics["parley_send_duration_seconds_count"] != 2 || s.Metrics["parley_connections{transport=websocket}"] != 3 {
		t.Errorf("metrics %v", s.Metrics)
	}
	if _, ok := s.Metrics["go_like_other"]; ok {
		t.Error("non-parley series listed")
	}
	if len(s.Nodes) != 1 || s.Nodes[0].Host != "node-a" || len(s.PartitionOwners) != 4 || s.PartitionOwners[3].Owner != "node-a" {
		t.Errorf("nodes %v owners %v", s.Nodes, s.PartitionOwners)
	}
	if len(s.RecentErrors) != 1 || s.RecentErrors[0].Component != "indexer" || s.RecentErrors[0].Error != "es: 503" || s.RecentErrors[0].Level != "ERROR" {
		t.Errorf("recent errors %+v", s.RecentErrors)
	}
}

// TestStatusOfACluster: nodes and their roles, partition owners and lag
// come from the consumer groups.
func TestStatusOfACluster(t *testing.T) {
	groups := []Group{
		{Role: "indexer", Topic: "events", Members: []Member{{ID: "m3", Host: "10.0.0.2", Partitions: []int{0, 1, 2, 3}}},
			Lag: []Lag{{Partition: 0, Committed: 5, End: 9, Lag: 4}, {Partition: 1, Committed: -1, End: 2, Lag: 2}}},
		{Role: "sequencer", Topic: "commands", Members: []Member{
			{ID: "m1", Host: "10.0.0.1", Partitions: []int{0, 1}},
			{ID: "m2", Host: "10.0.0.2", Partitions: []int{2}},
		}},
	}
	s := status(t, testDeps(t, fakeCluster{groups: groups}))
	if len(s.Nodes) != 2 || s.Nodes[1].Host != "10.0.0.2" || strings.Join(s.Nodes[1].Roles, ",") != "indexer,sequencer" {
		t.Errorf("nodes %+v", s.Nodes)
	}
	want := []string{"10.0.0.1", "10.0.0.1", "10.0.0.2", ""}
	for i, o := range s.PartitionOwners {
		if o.Partition != i || o.Owner != want[i] {
			t.Errorf("owner of %d: %q, want %q", o.Partition, o.Owner, want[i])
		}
	}
	if s.Groups[0].TotalLag != 6 {
		t.Errorf("indexer lag %d, want 6", s.Groups[0].TotalLag)
	}
	s = status(t, testDeps(t, fakeCluster{err: errors.New("kafka: no brokers")}))
	if s.ClusterError == "" || s.Groups == nil || s.Nodes == nil {
		t.Errorf("cluster error not reported: %+v", s)
	}
}

// TestErrorLogKeepsTheNewestWarningsOnly: info is passed on but not kept;
// the ring keeps the newest n, newest first.
func TestErrorLogKeepsTheNewestWarningsOnly(t *testing.T) {
	errs := NewErrorLog(3)
	var out strings.Builder
	logger := slog.New(errs.Wrap(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError})))
	logger.Info("hello")
	for i := 0; i < 5; i++ {
		logger.Warn("w", "n", i, "err", errors.New(string(rune('a'+i))))
	}
	got := errs.Entries()
	if len(got) != 3 || got[0].Error != "e" || got[2].Error != "c" {
		t.Fatalf("entries %+v", got)
	}
	if out.Len() != 0 {
		t.Errorf("the wrapped handler's level was not kept: %q", out.String())
	}
}

// TestStatusScrapesPeers: every address a peer name resolves to is read,
// its connections summed by transport; one that does not answer is down
// with the reason, and the rest still show.
func TestStatusScrapesPeers(t *testing.T) {
	metrics := "# TYPE parley_connections gauge\nparley_connections{transport=\"websocket\"} 7\nparley_connections{transport=\"sse\"} 2\n# TYPE parley_sends_total counter\nparley_sends_total 5\n" +
		"# TYPE parley_connection_queue_depth_max gauge\nparley_connection_queue_depth_max{transport=\"websocket\"} 310\nparley_connection_queue_depth_max{transport=\"sse\"} 0\n" +
		"# TYPE parley_connection_queue_limit gauge\nparley_connection_queue_limit{transport=\"websocket\"} 4096\nparley_connection_queue_limit{transport=\"sse\"} 4096\n"
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, metrics)
	}))
	defer gw.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := dead.Listener.Addr().String()
	dead.Close()
	d := testDeps(t, nil)
	d.Config.Peers = strings.TrimPrefix(gw.URL, "http://") + ", " + deadAddr
	s := status(t, d)
	if len(s.Peers) != 2 {
		t.Fatalf("peers %+v", s.Peers)
	}
	byAddr := map[string]Peer{}
	for _, p := range s.Peers {
		byAddr[p.Address] = p
	}
	up := byAddr[strings.TrimPrefix(gw.URL, "http://")]
	if !up.Up || up.Connections["websocket"] != 7 || up.Connections["sse"] != 2 ||
		up.DeepestQueue["websocket"] != 310 || up.DeepestQueue["sse"] != 0 || up.QueueLimit != 4096 {
		t.Errorf("live peer %+v", up)
	}
	if down := byAddr[deadAddr]; down.Up || down.Error == "" {
		t.Errorf("dead peer %+v", down)
	}
	if err := (Config{Peers: "gateway-1:8080,nowhere"}).Validate(); err == nil {
		t.Error("a peer without a port was accepted")
	}
}

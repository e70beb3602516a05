package verify

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// The monitoring under deploy/ is checked like the manifests: the alert
// rules load with Prometheus's own rule loader, every dashboard query
// parses as PromQL, and every metric either queries is one the code
// declares, so a renamed metric fails the build instead of a blank panel.

var root = filepath.Join("..", "..")

// declaredMetrics are the metric names the Go code (tests aside)
// declares: the Name of its collectors' options and its descriptors.
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	decl := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(parley_[a-z0-9_]+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("only %d metrics found in the code: the scan is broken", len(out))
	}
	return out
}

// queried are the metric names expr selects, a histogram's series
// (_bucket, _count, _sum) by the histogram's name.
func queried(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q is not PromQL: %v", where, expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				name = strings.TrimSuffix(name, suf)
			}
			names = append(names, name)
		}
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
	return names
}

// checkExported fails for a parley_ metric the code does not declare;
// Go's and the process's own collectors and Prometheus's up are allowed.
func checkExported(t *testing.T, where string, names []string, declared map[string]bool) {
	t.Helper()
	for _, n := range names {
		switch {
		case n == "up", strings.HasPrefix(n, "go_"), strings.HasPrefix(n, "process_"):
		case !declared[n]:
			t.Errorf("%s queries %s, which no role exports", where, n)
		}
	}
}

func TestAlertRulesLoadAndQueryExportedMetrics(t *testing.T) {
	file := filepath.Join(root, "deploy", "prometheus", "alerts.yml")
	groups, errs := rulefmt.ParseFile(file, false)
	for _, err := range errs {
		t.Errorf("alerts.yml: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	declared := declaredMetrics(t)
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("rule %q needs a name, a severity and a summary", r.Alert+r.Record)
			}
			checkExported(t, "alert "+r.Alert, queried(t, "alert "+r.Alert, r.Expr), declared)
		}
	}
	if n < 5 {
		t.Errorf("only %d alert rules", n)
	}
}

// TestRuleLoaderRefusesBadRules: the loader above refuses an expression
// that is not PromQL and a rule with an unknown field.
func TestRuleLoaderRefusesBadRules(t *testing.T) {
	for name, body := range map[string]string{
		"bad PromQL":    "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]\n",
		"unknown field": "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    severity: page\n",
	} {
		if _, errs := rulefmt.Parse([]byte(body), false); len(errs) == 0 {
			t.Errorf("%s: loaded", name)
		}
	}
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func TestDashboardQueriesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "parley.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("parley.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	dsUID := provisionedDatasource(t)
	declared := declaredMetrics(t)
	seen := map[string]bool{}
	queries := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsUID {
			t.Errorf("panel %q does not use the provisioned data source %q", p.Title, dsUID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			names := queried(t, "panel "+p.Title, q.Expr)
			checkExported(t, "panel "+p.Title, names, declared)
			for _, n := range names {
				seen[n] = true
			}
		}
	}
	// The list: each has a panel.
	for _, want := range []string{
		"parley_connections", "parley_log_records_appended_total", "parley_log_records_read_total",
		"parley_send_duration_seconds", "parley_delivery_duration_seconds", "parley_gateway_hop_seconds",
		"parley_sequencer_hop_seconds", "parley_slow_connections_closed_total", "parley_consumer_lag",
		"parley_port_call_seconds", "parley_port_call_errors_total", "parley_rate_limited_total",
	} {
		if !seen[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	var unshown []string
	for n := range declared {
		if !seen[n] {
			unshown = append(unshown, n)
		}
	}
	sort.Strings(unshown)
	t.Logf("%d queries; metrics without a panel: %s", queries, strings.Join(unshown, ", "))
}

// provisionedDatasource is the uid of the Prometheus data source Grafana
// is provisioned with in docker-compose.yml.
func provisionedDatasource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Datasources []struct {
			UID  string `json:"uid"`
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("datasource provisioning: %v", err)
	}
	if len(f.Datasources) != 1 || f.Datasources[0].Type != "prometheus" || f.Datasources[0].URL != "http://prometheus:9090" {
		t.Fatalf("want one Prometheus data source at http://prometheus:9090: %+v", f.Datasources)
	}
	return f.Datasources[0].UID
}

package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeService is the part of a docker-compose service the test reads.
type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]any    `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) map[string]composeService {
	t.Helper()
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return doc.Services
}

// TestComposeFileMatchesTheCode checks docker-compose.yml against the
// code: every Parley node's command and PARLEY_ variables are flags this
// binary has and make a configuration it accepts, every address names a
// service of the file on a port that service listens on, the roles add up
// to a whole deployment with two gateways, and nginx balances exactly the
// gateways.
func TestComposeFileMatchesTheCode(t *testing.T) {
	services := loadCompose(t)
	for _, want := range []string{"kafka", "cassandra", "elasticsearch", "minio", "nginx", "gateway-1", "gateway-2", "sequencer", "indexer", "media", "push"} {
		if _, ok := services[want]; !ok {
			t.Errorf("docker-compose.yml has no service %q", want)
		}
	}
	if _, err := os.Stat("../../deploy/docker/Dockerfile"); err != nil {
		t.Errorf("the Parley image's Dockerfile: %v", err)
	}

	// The port each engine listens on inside the compose network.
	listens := map[string]string{"kafka": "9092", "cassandra": "9042", "elasticsearch": "9200", "minio": "9000"}
	if l := services["kafka"].Environment["KAFKA_ADVERTISED_LISTENERS"]; !strings.Contains(l, "//kafka:9092") {
		t.Errorf("kafka advertises %q; Parley reaches it at kafka:9092", l)
	}

	roles := map[string]int{}
	var gateways []string
	for name, svc := range services {
		if svc.Build == nil && svc.Image != "parley:local" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if len(svc.Command) == 0 || svc.Command[0] != "serve" {
				t.Fatalf("command %q does not start with serve", svc.Command)
			}
			var cfg config
			fs := flag.NewFlagSet(name, flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg.registerFlags(fs)
			if err := fs.Parse(svc.Command[1:]); err != nil {
				t.Fatalf("command %q: %v", svc.Command, err)
			}
			known := map[string]bool{}
			fs.VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
			for k := range svc.Environment {
				if strings.HasPrefix(k, "PARLEY_") && !known[k] {
					t.Errorf("environment %s is no flag's twin", k)
				}
			}
			if err := applyEnv(fs, func(k string) string { return svc.Environment[k] }); err != nil {
				t.Fatal(err)
			}
			if err := cfg.validate(); err != nil {
				t.Fatalf("the node's configuration is refused: %v", err)
			}
			if cfg.distributed() == "" || cfg.ElasticsearchURLs == "" || cfg.S3Endpoint == "" || len(cfg.Cassandra.Hosts) == 0 {
				t.Fatal("a compose node must use all four real engines")
			}
			if on, err := cfg.devAuthOn(); err != nil || !on {
				t.Errorf("dev sign-in must be on for the local stack: %v %v", on, err)
			}
			// Every engine address names a compose service on its port.
			addrs := append(splitList(cfg.KafkaBrokers), cfg.Cassandra.Hosts...)
			for _, u := range append(splitList(cfg.ElasticsearchURLs), cfg.S3Endpoint) {
				pu, err := url.Parse(u)
				if err != nil {
					t.Fatalf("%s: %v", u, err)
				}
				addrs = append(addrs, pu.Host)
			}
			for _, a := range addrs {
				host, port, err := net.SplitHostPort(a)
				if err != nil {
					t.Errorf("address %q has no port", a)
					continue
				}
				if _, ok := services[host]; !ok {
					t.Errorf("address %s names no service", a)
				} else if listens[host] != port {
					t.Errorf("address %s: %s listens on %s", a, host, listens[host])
				}
				if !slices.Contains(dependsOn(svc), host) {
					t.Errorf("%s does not wait for %s", name, host)
				}
			}
			if _, port, _ := net.SplitHostPort(cfg.Addr); port != "8080" {
				t.Errorf("--addr %s: nginx and the health check expect port 8080", cfg.Addr)
			}
			r, _ := cfg.roles()
			for role := range r {
				roles[role]++
			}
			if r["gateway"] {
				gateways = append(gateways, name)
				if hc := svc.Healthcheck.Test; len(hc) < 3 || hc[1] != "/parley" || hc[2] != "probe" {
					t.Errorf("gateway health check %q is not `/parley probe …`", hc)
				}
			}
		})
	}
	for _, role := range allRoles {
		if roles[role] == 0 {
			t.Errorf("no node runs the %s role", role)
		}
	}
	if len(gateways) != 2 {
		t.Errorf("%d gateways, want 2", len(gateways))
	}

	// nginx: published on 8080, balancing exactly the gateways.
	ng := services["nginx"]
	if !slices.Contains(ng.Ports, "8080:80") {
		t.Errorf("nginx ports %q do not publish 8080", ng.Ports)
	}
	var conf string
	for _, v := range ng.Volumes {
		if src, _, ok := strings.Cut(v, ":"); ok && strings.HasSuffix(src, ".conf") {
			b, err := os.ReadFile(filepath.Join("../..", src))
			if err != nil {
				t.Fatalf("nginx config: %v", err)
			}
			conf = string(b)
		}
	}
	upstreams := regexp.MustCompile(`(?m)^\s*server\s+([\w.-]+):(\d+)`).FindAllStringSubmatch(conf, -1)
	var balanced []string
	for _, m := range upstreams {
		balanced = append(balanced, m[1])
		if m[2] != "8080" {
			t.Errorf("nginx upstream %s:%s, gateways listen on 8080", m[1], m[2])
		}
	}
	slices.Sort(balanced)
	slices.Sort(gateways)
	if !slices.Equal(balanced, gateways) {
		t.Errorf("nginx balances %q, the gateways are %q", balanced, gateways)
	}
	for _, want := range []string{"proxy_set_header Upgrade $http_upgrade", "proxy_buffering off", "proxy_read_timeout", "proxy_http_version 1.1"} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx config lacks %q (WebSocket upgrade, unbuffered SSE and long-poll, long reads)", want)
		}
	}
	for _, svc := range gateways {
		if !slices.Contains(dependsOn(ng), svc) {
			t.Errorf("nginx does not wait for %s", svc)
		}
	}
}

func dependsOn(s composeService) []string {
	var out []string
	for k := range s.DependsOn {
		out = append(out, k)
	}
	return out
}

func TestProbeSucceedsOnlyOn200(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"probe", srv.URL + "/readyz"}, os.Getenv, &out, io.Discard); err != nil {
		t.Fatalf("probe of a 200: %v", err)
	}
	if err := run(context.Background(), []string{"probe", srv.URL + "/other"}, os.Getenv, &out, io.Discard); err == nil {
		t.Fatal("probe of a 503 succeeded")
	}
	if err := run(context.Background(), []string{"probe", "http://127.0.0.1:1/"}, os.Getenv, &out, io.Discard); err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
}

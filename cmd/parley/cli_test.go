package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestServeHelpListsFlagsWithTheirEnvironmentTwins(t *testing.T) {
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--help"}, func(string) string { return "" }, io.Discard, &errOut)
	if err != errHelp {
		t.Fatalf("--help returned %v", err)
	}
	for _, flag := range []string{"-addr", "-data-dir", "-roles", "-dev-auth", "-auth-secret", "-kafka.brokers", "-cassandra.hosts", "-cassandra.keyspace", "-elasticsearch.urls", "-s3.endpoint", "-partitions", "-allowed-origins", "PARLEY_"} {
		if !strings.Contains(errOut.String(), flag) {
			t.Errorf("help does not mention %s", flag)
		}
	}
}

func TestInvalidConfigurationIsRefusedWithOneLine(t *testing.T) {
	cases := map[string][]string{
		"zero partitions":             {"--partitions", "0"},
		"unknown role":                {"--roles", "gateway,chef"},
		"bad address":                 {"--addr", "nowhere"},
		"dev auth on public addr":     {"--addr", "0.0.0.0:0", "--dev-auth", "true"},
		"no verification":             {"--addr", "0.0.0.0:0"},
		"unknown flag":                {"--frobnicate"},
		"log without store":           {"--kafka.brokers", "127.0.0.1:9092"},
		"store without log":           {"--cassandra.hosts", "127.0.0.1"},
		"broker without port":         {"--kafka.brokers", "kafka", "--cassandra.hosts", "127.0.0.1"},
		"bad keyspace":                {"--kafka.brokers", "127.0.0.1:9092", "--cassandra.hosts", "127.0.0.1", "--cassandra.keyspace", "no-dash"},
		"batch timeout over 1s":       {"--kafka.brokers", "127.0.0.1:9092", "--cassandra.hosts", "127.0.0.1", "--kafka.batch-timeout", "2s"},
		"part of the roles, embedded": {"--roles", "gateway"},
		"profiles on a public addr":   {"--debug.addr", "0.0.0.0:6060"},
		"webhook without secret":      {"--push.webhook-url", "https://push.example.com/parley"},
		"webhook secret not whsec":    {"--push.webhook-url", "https://push.example.com/parley", "--push.webhook-secret", "hunter2"},
		"vapid subject not a URL":     {"--push.vapid-subject", "ops@example.com"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			args := append(args, "--data-dir", t.TempDir())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, args, func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil || strings.Contains(err.Error(), "\n") {
				t.Fatalf("want a one-line error, got %v", err)
			}
		})
	}
}

func TestEnvironmentTwinsConfigure(t *testing.T) {
	env := map[string]string{"PARLEY_PARTITIONS": "0"}
	err := run(context.Background(), []string{"--data-dir", t.TempDir()}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "partitions") {
		t.Fatalf("PARLEY_PARTITIONS was not applied: %v", err)
	}
}

func TestPartitionCountIsFixedPerDeployment(t *testing.T) {
	dir := t.TempDir()
	s := &server{t: t, dataDir: dir}
	s.start()
	s.stop()
	err := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--partitions", "8"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "partitions") {
		t.Fatalf("changing the partition count must be refused, got %v", err)
	}
}

func TestShutdownClosesWebSocketsWith1001AndExitsClean(t *testing.T) {
	s := startServer(t)
	alice := s.signIn(t, "alice")
	st, _ := s.connect(t, transportWS, alice, "")
	start := time.Now()
	s.stop() // asserts run returned nil within 15 s
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	var err error
	for err == nil {
		_, err = st.next(5 * time.Second)
	}
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("WebSocket ended with %v, want 1001", err)
	}
}

func TestConnectionsPerUserAreLimited(t *testing.T) {
	s := startServer(t, "--max-connections-per-user", "3")
	alice := s.signIn(t, "alice")
	for i := 0; i < 3; i++ {
		s.connect(t, transportWS, alice, "")
	}
	r := s.do(t, "GET", "/v1/ws?access_token="+alice, "", nil)
	checkError(t, r, 429, "rate_limited")
	r = s.do(t, "GET", "/v1/events?access_token="+alice, "", nil, "Accept", "text/event-stream")
	checkError(t, r, 429, "rate_limited")
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	s := startServer(t)
	if r := s.do(t, "GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	if r := s.do(t, "GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	r := s.do(t, "GET", "/metrics", "", nil, "Accept", "")
	if r.status != 200 || !strings.Contains(string(r.body), "parley_deliveries_total") {
		t.Fatalf("metrics %d", r.status)
	}
	if r := s.do(t, "GET", "/", "", nil, "Accept", "text/html"); r.status != 200 || !strings.Contains(string(r.body), "<html") {
		t.Fatalf("web client at / answered %d", r.status)
	}
}

// TestDebugAddrServesProfilesOnLoopback: --debug.addr serves Go's
// profiles next to the API, for an operator on the machine.
func TestDebugAddrServesProfilesOnLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startServer(t, "--debug.addr", addr)
	res, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Contains(body, []byte("goroutine profile")) {
		t.Fatalf("profiles: %d %.200s", res.StatusCode, body)
	}
}

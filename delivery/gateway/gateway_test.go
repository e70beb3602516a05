package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/delivery/sequencer"
	"github.com/parleychat/parley/internal/testutil"
	"github.com/parleychat/parley/storage/pebble"
)

// TestDownDependencyAnswers503WithRetryAfter: when the command log is
// gone, a send answers 503 with Retry-After promptly (never a 500, never a
// hang), and /readyz names the failing dependency.
func TestDownDependencyAnswers503WithRetryAfter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, st, v, logger := testEngines(t)
	cfg := Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 3 * time.Second, DevAuth: true}
	g := New(cfg, Deps{Log: lg, Store: st, Verifier: v, Logger: logger, Checks: map[string]func(context.Context) error{"log": lg.Ping, "store": st.Ping}})
	go func() { _ = g.Run(ctx) }()
	go func() { _ = sequencer.New(lg, st, logger).Run(ctx) }()
	<-g.Hub().Ready()
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()

	tok, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	call := func(method, path string, body any) *http.Response {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := call("POST", "/v1/conversations", map[string]any{"kind": "group", "title": "t"})
	var conv chat.Conversation
	_ = json.NewDecoder(res.Body).Decode(&conv)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("create: %d", res.StatusCode)
	}

	lg.Close() // the log goes down
	start := time.Now()
	res = call("POST", "/v1/conversations/"+conv.ID+"/messages", map[string]string{"text": "hi"})
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("send with the log down: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the 503 took %v", d)
	}
	res = call("GET", "/readyz", nil)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 503 || !bytes.Contains(body, []byte(`"log"`)) {
		t.Fatalf("readyz: %d %s", res.StatusCode, body)
	}
}

// TestReadyzExceptLeavesOutOnlyOptionalChecks: a probe that routes
// traffic asks /readyz?except=index,blobs, so that a search outage keeps
// the gateway in service (200, the outage still named under "excepted"),
// while the log going down still takes it out (503); the log, the store,
// the fan-out and a drain cannot be excepted (400).
func TestReadyzExceptLeavesOutOnlyOptionalChecks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, st, v, logger := testEngines(t)
	indexDown := func(context.Context) error { return errors.New("index: connection refused") }
	cfg := Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 3 * time.Second, DevAuth: true}
	g := New(cfg, Deps{Log: lg, Store: st, Verifier: v, Logger: logger, Checks: map[string]func(context.Context) error{"log": lg.Ping, "store": st.Ping, "index": indexDown}})
	go func() { _ = g.Run(ctx) }()
	<-g.Hub().Ready()
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, `"index"`) {
		t.Fatalf("readyz with the index down: %d %s", code, body)
	}
	if code, body := get("/readyz?except=index,blobs"); code != 200 || !strings.Contains(body, `"excepted":{"index"`) {
		t.Fatalf("readyz?except=index,blobs with the index down: %d %s, want 200 naming index as excepted", code, body)
	}
	for _, bad := range []string{"store", "log", "fanout", "server", "index,store", ""} {
		if code, body := get("/readyz?except=" + bad); bad != "" && code != 400 {
			t.Errorf("readyz?except=%s: %d %s, want 400", bad, code, body)
		}
	}
	lg.Close() // the log goes down: no exception keeps the gateway in
	if code, body := get("/readyz?except=index,blobs"); code != 503 || !strings.Contains(body, `"log"`) {
		t.Fatalf("readyz?except=index,blobs with the log down: %d %s", code, body)
	}
}

// headsDown is a store whose partition heads cannot be read.
type headsDown struct{ chat.Store }

func (headsDown) Heads(ctx context.Context, n int) ([]int64, error) {
	return nil, chat.Errorf(chat.CodeUnavailable, "store: heads: connection refused")
}

// TestReadyzSaysTheHeadsAreUnread: a gateway whose hub cannot read the
// partition heads is not ready, and /readyz answers 503 naming why (before,
// the hub went ready from a zero frontier).
func TestReadyzSaysTheHeadsAreUnread(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, st, v, logger := testEngines(t)
	cfg := Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 3 * time.Second}
	g := New(cfg, Deps{Log: lg, Store: headsDown{st}, Verifier: v, Logger: logger})
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()

	testutil.Eventually(t, 10*time.Second, func() error {
		res, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 503 {
			t.Fatalf("readyz with the heads unread: %d %s", res.StatusCode, body)
		}
		if !bytes.Contains(body, []byte("partition heads")) {
			return fmt.Errorf("readyz does not name the heads: %s", body)
		}
		return nil
	})
	select {
	case <-g.Hub().Ready():
		t.Fatal("hub ready without the partition heads")
	default:
	}
}

// testEngines opens the embedded log and store a gateway test runs on
// (both closed when the test ends), a verifier with a test secret and a
// quiet logger.
func testEngines(t testing.TB) (*memlog.Log, *pebble.Store, *auth.Verifier, *slog.Logger) {
	t.Helper()
	ctx := context.Background()
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lg.Close() })
	st, err := pebble.Open(ctx, pebble.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v, err := auth.Open(auth.Config{Secret: "0123456789abcdef0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	return lg, st, v, slog.New(slog.NewTextHandler(io.Discard, nil))
}

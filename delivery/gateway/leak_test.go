package gateway

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleychat/parley/chat"
)

// TestGatewayRoleLeavesNoGoroutine runs the gateway (hub, presence,
// appender lanes, realtime tickers) with a WebSocket session and an SSE
// stream open, stops it while the clients stay connected, and finds that
// Run returned only after both sessions had ended (their clients see the
// socket close without closing it themselves) and, once the test's own
// clients and the engines are closed, no goroutine left running.
func TestGatewayRoleLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	lg, st, v, logger := testEngines(t)
	cfg := Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 3 * time.Second,
		PingInterval: 20 * time.Millisecond, SSEHeartbeat: 20 * time.Millisecond}
	g := New(cfg, Deps{Log: lg, Store: st, Verifier: v, Logger: logger})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- g.Run(ctx) }()
	<-g.Hub().Ready()
	srv := httptest.NewServer(g.Handler())
	client := &http.Client{Transport: &http.Transport{}}

	tok, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	ws := dialWS(t, srv.URL, tok)
	ws.next("ready")

	req, _ := http.NewRequest("GET", srv.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sseEnded := make(chan struct{})
	sseReady := make(chan struct{})
	go func() {
		defer close(sseEnded)
		sc := bufio.NewScanner(res.Body)
		ready := false
		for sc.Scan() {
			if !ready && strings.HasPrefix(sc.Text(), "event: ready") {
				ready = true
				close(sseReady)
			}
		}
	}()
	select {
	case <-sseReady:
	case <-time.After(10 * time.Second):
		t.Fatal("the SSE stream never got ready")
	}

	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// Run has returned, so the sessions it owns have ended: the server
	// closed both sockets though neither client closed its own.
	ws.closeCode()
	select {
	case <-sseEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("the SSE stream outlived Run")
	}

	res.Body.Close()
	ws.c.CloseNow()
	srv.Close()
	client.CloseIdleConnections()
	if err := lg.Close(); err != nil {
		t.Error(err)
	}
	if err := st.Close(); err != nil {
		t.Error(err)
	}
}

package realtime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/internal/testutil"
)

// TestAWriterTooLateStillSaysGoodbye: a WebSocket whose writer would start
// only after Run began stopping (it finished opening during the shutdown,
// after Run closed every registered connection) is still closed with 1001,
// and Run returns. Before, the writer was refused, nothing closed the
// socket, and Run waited for its reader forever.
func TestAWriterTooLateStillSaysGoodbye(t *testing.T) {
	lg, err := memlog.Open(context.Background(), memlog.Config{Dir: t.TempDir(), Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lg.Close() })
	hub := fanout.NewHub(fanout.Config{ID: "gw-test", Log: lg})
	srv := New(Config{PingInterval: time.Hour}, Deps{Hub: hub, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); srv.Run(ctx) }()

	s, cl := wsPair(t, 0)
	s.t = srv
	s.conn = srv.newConn("alice", "websocket")
	// The session's reader, counted like every session's.
	if !srv.spawn(func() {
		for {
			if _, _, err := s.ws.Read(context.Background()); err != nil {
				return
			}
		}
	}) {
		t.Fatal("spawn refused before Run stopped")
	}

	cancel()
	testutil.Eventually(t, 10*time.Second, func() error {
		srv.spawnMu.Lock()
		defer srv.spawnMu.Unlock()
		if !srv.stopping {
			return errors.New("Run is not stopping yet")
		}
		return nil
	})
	// What open does once its ready frame is written, too late.
	s.conn.Close()
	s.conn.StartWriter(func() { srv.spawnWriter(s.write, s.goingAway) })

	rctx, rcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer rcancel()
	_, _, err = cl.Read(rctx)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("the client read %v, want a close with 1001", err)
	}
	select {
	case <-ran:
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
}

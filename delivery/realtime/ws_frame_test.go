package realtime

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// wsPair is a server session on a real loopback WebSocket, accepted the
// way serveWS accepts one, and its client.
func wsPair(t testing.TB, writeBuffer int) (*wsSession, *websocket.Conn) {
	t.Helper()
	got := make(chan *wsSession, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &smallHijacker{ResponseWriter: w, writeBuffer: writeBuffer}
		ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			t.Error(err)
			return
		}
		got <- &wsSession{ws: ws, out: hj.out}
	}))
	t.Cleanup(srv.Close)
	cl, _, err := websocket.Dial(context.Background(), strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.SetReadLimit(1 << 20)
	t.Cleanup(func() { cl.CloseNow() })
	s := <-got
	t.Cleanup(func() { s.ws.CloseNow() })
	return s, cl
}

// TestAFrameLargerThanTheWriteBufferIsOneWrite: a data frame many times
// the connection's small write buffer reaches the socket in one write and
// the client intact; a ping, written uncorked, still passes through.
func TestAFrameLargerThanTheWriteBufferIsOneWrite(t *testing.T) {
	s, cl := wsPair(t, 0)
	cc := &countingConn{Conn: s.out.Conn}
	s.out.Conn = cc
	frame := bytes.Repeat([]byte("0123456789"), 1000) // 10 KB, the buffer is 256 B
	b := &wsBuffer{frame: frame}
	for i := 0; i < 3; i++ {
		if err := s.writeFrame(b); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		_, got, err := cl.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, frame) {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(got), len(frame))
		}
	}
	if n := cc.writes.Load(); n != 3 {
		t.Fatalf("3 frames took %d socket writes, want 3", n)
	}
	if s.out.corked || s.out.gather != nil {
		t.Fatal("the connection stayed corked or kept the gather buffer")
	}
	// A ping goes out uncorked; the client's reader answers it.
	go func() { _, _, _ = cl.Read(ctx) }()
	go func() { _, _, _ = s.ws.Read(ctx) }()
	if err := s.ws.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if cc.writes.Load() <= 3 {
		t.Fatal("the ping was not written")
	}
}

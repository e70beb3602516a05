package realtime

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSmallHijackerKeepsWhatTheClientSentAlready: bytes that came with the
// request (a WebSocket client's first frame) are in the new, smaller read
// buffer itself, where the WebSocket library looks for them.
func TestSmallHijackerKeepsWhatTheClientSentAlready(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := (&smallHijacker{ResponseWriter: w}).Hijack()
		if err != nil {
			got <- err.Error()
			return
		}
		defer conn.Close()
		n := brw.Reader.Buffered()
		early, _ := brw.Reader.Peek(n)
		if brw.Reader.Size() > hijackReadBuffer || brw.Writer.Size() > hijackWriteBuffer {
			got <- "buffers not small"
			return
		}
		got <- string(early)
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\nHELLO"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "HELLO" {
			t.Fatalf("buffered after hijack: %q, want HELLO", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no hijack")
	}
}

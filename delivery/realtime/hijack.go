package realtime

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Buffers of a hijacked realtime connection. net/http hands over 4 KiB
// each way, held for the connection's whole life; an idle WebSocket
// needs far less: client frames are small, and a big server frame goes
// past the buffer straight to the socket (the same two writes either way).
//
// The write buffer only has to hold what is written uncorked (pings and
// close frames: at most 2+4+125 bytes); a data frame is gathered by the
// frameConn underneath, whatever its size.
const (
	hijackReadBuffer  = 512
	hijackWriteBuffer = 256
)

// smallHijacker is a ResponseWriter whose Hijack swaps the server's
// connection buffers for small ones, keeping what the client already sent,
// and puts a frameConn under the write buffer (out, once hijacked).
type smallHijacker struct {
	http.ResponseWriter
	out *frameConn
	// writeBuffer, when not zero, replaces hijackWriteBuffer (benchmarks).
	writeBuffer int
}

func (w *smallHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // the 101 response, if still buffered
		conn.Close()
		return nil, nil, err
	}
	// What the client sent already goes into the new buffer itself: the
	// WebSocket library keeps only what is buffered.
	size := hijackReadBuffer
	var rd io.Reader = conn
	n := brw.Reader.Buffered()
	if n > 0 {
		early, _ := brw.Reader.Peek(n)
		rd = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
		size = max(size, n)
	}
	br := bufio.NewReaderSize(rd, size)
	if n > 0 {
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	w.out = &frameConn{Conn: conn}
	wsize := hijackWriteBuffer
	if w.writeBuffer > 0 {
		wsize = w.writeBuffer
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(w.out, wsize)), nil
}

// frameConn is the connection under a WebSocket's small write buffer.
// The session's writer corks it around each data frame: what the WebSocket
// library writes meanwhile (the buffered header and the start of the
// payload, then the rest of it) is gathered and leaves in one write on
// uncork. A frame then costs one system call and reaches the client in one
// train of segments, however small the idle buffer; through the buffer
// alone, every frame larger than it took two. Uncorked writes (pings,
// close frames) pass straight through, in order with gathered ones.
type frameConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	gather []byte
}

// Write gathers p while corked and writes it otherwise.
func (c *frameConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.gather = append(c.gather, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// cork starts gathering writes into buf (its length reset).
func (c *frameConn) cork(buf []byte) {
	c.mu.Lock()
	c.corked, c.gather = true, buf[:0]
	c.mu.Unlock()
}

// uncork writes what was gathered within timeout, and returns the buffer,
// which the connection no longer holds.
func (c *frameConn) uncork(timeout time.Duration) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.gather
	c.corked, c.gather = false, nil
	if len(b) == 0 {
		return b, nil
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.Conn.Write(b)
	_ = c.Conn.SetWriteDeadline(time.Time{}) // uncorked writes are bounded by their context
	return b, err
}

package realtime

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffers of a hijacked realtime connection. net/http hands over 4 KiB
// each way, held for the connection's whole life; an idle WebSocket
// needs far less: client frames are small, and a big server frame goes
// past the buffer straight to the socket (the same two writes either way).
const (
	hijackReadBuffer  = 1 << 10
	hijackWriteBuffer = 1 << 10
)

// smallHijacker is a ResponseWriter whose Hijack swaps the server's
// connection buffers for small ones, keeping what the client already sent.
type smallHijacker struct {
	http.ResponseWriter
}

func (w smallHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
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
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, hijackWriteBuffer)), nil
}

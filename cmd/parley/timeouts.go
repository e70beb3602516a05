package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/parleychat/parley/storage/fsblob"
)

// Request read limits. The header has ReadHeaderTimeout; a body is read
// under these, so a client that declares a body and stalls (or trickles
// it) cannot hold a connection and a handler for ever. A whole-request
// ReadTimeout would do it too, but it would also cut long uploads and
// stay on hijacked WebSockets.
var (
	// readHeaderTimeout bounds reading a request's line and headers.
	readHeaderTimeout = 10 * time.Second
	// bodyIdleTimeout is the longest pause between two reads of an API
	// request's body, and bodyTimeout its whole read (bodies are at
	// most 64 KiB).
	bodyIdleTimeout = 30 * time.Second
	bodyTimeout     = 60 * time.Second
	// uploadIdleTimeout is the longest pause within an attachment upload
	// to the embedded blob folder: generous, for slow links, but finite;
	// an upload as a whole is bounded by its size and the URL's expiry.
	uploadIdleTimeout = 2 * time.Minute
)

// withBodyTimeouts reads every request body of h under a per-read
// deadline on the connection (http.ResponseController), renewed as bytes
// arrive: bodyIdleTimeout and bodyTimeout for the API, uploadIdleTimeout
// for uploads under fsblob.MountPath. A read past its deadline fails, the
// handler answers its error, and the server closes the connection.
func withBodyTimeouts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		b := &deadlineBody{rc: r.Body, ctrl: http.NewResponseController(w), idle: bodyIdleTimeout}
		if strings.HasPrefix(r.URL.Path, fsblob.MountPath) {
			b.idle = uploadIdleTimeout
		} else {
			b.end = time.Now().Add(bodyTimeout)
		}
		r.Body = b
		h.ServeHTTP(w, r)
		if !b.eof {
			// The server discards what the handler left unread (up to
			// 256 KiB) before the next request: bound that read too, and
			// end it at once when the body already failed.
			d := time.Now()
			if !b.failed {
				d = d.Add(b.idle)
			}
			_ = b.ctrl.SetReadDeadline(d)
		}
	})
}

// deadlineBody sets the connection's read deadline before each read of
// the body and clears it once the body was read to its end: after the body, the server
// reads the connection in the background to notice a client leaving, and
// a deadline left behind would look like one (and cancel the request's
// context while its handler still works).
type deadlineBody struct {
	rc   io.ReadCloser
	ctrl *http.ResponseController
	idle time.Duration
	end  time.Time // zero: no bound on the whole body
	// eof: the body was read to its end; failed: a read failed.
	eof, failed bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.eof || b.failed {
		return b.rc.Read(p)
	}
	d := time.Now().Add(b.idle)
	if !b.end.IsZero() && b.end.Before(d) {
		d = b.end
	}
	if err := b.ctrl.SetReadDeadline(d); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		_ = b.ctrl.SetReadDeadline(time.Time{})
	case err != nil:
		// The deadline stays: the connection is done for.
		b.failed = true
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = errBodyTimeout
		}
	}
	return n, err
}

func (b *deadlineBody) Close() error { return b.rc.Close() }

// errBodyTimeout is a body that stopped arriving.
var errBodyTimeout = errors.New("the request body stopped arriving")

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Client sockets to a loopback server come from 127.0.0.1 … 127.0.0.N in
// turn, so each source address brings its own ephemeral ports.
func TestDialSpreadsSourceAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	defer sources.Store(sources.Load())
	sources.Store(4)
	seen := map[string]int{}
	for i := 0; i < 8; i++ {
		c, err := dialSpread(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		seen[s.RemoteAddr().(*net.TCPAddr).IP.String()]++
		s.Close()
		c.Close()
	}
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		if seen[ip] != 2 {
			t.Fatalf("connections per source address: %v, want 2 from each of 127.0.0.1-4", seen)
		}
	}
}

// TestReadProcRereadsThroughOneDescriptor: readProc reads a /proc file
// afresh each time through the descriptor it opened first, so a reading
// needs no free descriptor once the connections took them all.
func TestReadProcRereadsThroughOneDescriptor(t *testing.T) {
	pid := os.Getpid()
	a, err := rssKiB(pid)
	if err != nil || a <= 0 {
		t.Fatalf("rss: %d, %v", a, err)
	}
	procFiles.Lock()
	n := len(procFiles.open)
	procFiles.Unlock()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	saved := lim
	lim.Cur = 3 // stdin, stdout, stderr: no descriptor left to open
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("lowering the file limit: %v", err)
	}
	_, err = rssKiB(pid)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("reading again with no descriptor free: %v", err)
	}
	procFiles.Lock()
	defer procFiles.Unlock()
	if len(procFiles.open) != n {
		t.Fatalf("%d files open, want %d", len(procFiles.open), n)
	}
}

// TestSetupRetriesOnlyUnavailable: adding a member is tried again after a
// 503 until it succeeds, and not after any other refusal.
func TestSetupRetriesOnlyUnavailable(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/forbidden":
			w.WriteHeader(http.StatusForbidden)
		case n <= 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	if err := callIdempotent(context.Background(), srv.URL, "PUT", "/member", "tok"); err != nil {
		t.Fatalf("after two 503s: %v", err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
	calls.Store(10)
	if err := callIdempotent(context.Background(), srv.URL, "PUT", "/forbidden", "tok"); err == nil {
		t.Fatal("403 answered no error")
	}
	if n := calls.Load(); n != 11 {
		t.Fatalf("403 tried %d times, want once", n-10)
	}
}

// TestSenderKeepsOnlyUnavailableRefs: the refs of sends answered
// unavailable are kept for sending again; other refusals are not.
func TestSenderKeepsOnlyUnavailableRefs(t *testing.T) {
	var s sender
	s.noteRefused([]byte(`{"type":"error","ref":"r1","error":{"code":"unavailable","message":"timed out"}}`))
	s.noteRefused([]byte(`{"type":"error","ref":"r2","error":{"code":"forbidden","message":"no"}}`))
	s.noteRefused([]byte(`{"type":"error","ref":"r3","error":{"code":"unavailable","message":"timed out"}}`))
	if got := s.takeUnavailable(); len(got) != 2 || got[0] != "r1" || got[1] != "r3" {
		t.Fatalf("unavailable refs %v, want [r1 r3]", got)
	}
	if got := s.takeUnavailable(); len(got) != 0 {
		t.Fatalf("taken twice: %v", got)
	}
}

// A long-poll client keeps one connection from poll to poll, sends its
// token and the last answer's cursor, skips an informational answer,
// dials again when the server has closed the kept connection, and a Close
// ends a poll that is waiting.
func TestPollKeepsOneConnectionAndRedialsAClosedOne(t *testing.T) {
	var conns, polls atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/poll" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		n := polls.Add(1)
		if want := fmt.Sprintf("c%d", n-1); n > 1 && r.URL.Query().Get("cursor") != want {
			http.Error(w, "cursor "+r.URL.Query().Get("cursor")+", want "+want, http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("wait") == "9" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		if n == 2 {
			// An informational answer first, which the client skips.
			w.Header().Set("Link", "</x>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
		}
		fmt.Fprintf(w, `{"events":[{"n":%d}],"cursor":"c%d"}`, n, n)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer close(release)

	c := &client{transport: "poll", base: srv.URL, token: "tok"}
	defer c.Close()
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		ev, err := c.poll(ctx, 1)
		if err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
		if want := fmt.Sprintf(`{"n":%d}`, i); len(ev) != 1 || string(ev[0]) != want {
			t.Fatalf("poll %d: events %q, want [%s]", i, ev, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("3 polls over %d connections, want 1", n)
	}
	srv.CloseClientConnections()
	if _, err := c.poll(ctx, 1); err != nil {
		t.Fatalf("poll after the server closed the connection: %v", err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections after the server closed the first, want 2", n)
	}

	done := make(chan error, 1)
	go func() {
		_, err := c.poll(ctx, 9) // waits until released
		done <- err
	}()
	waitPolls := func(n int32) {
		for deadline := time.Now().Add(10 * time.Second); polls.Load() < n; {
			if time.Now().After(deadline) {
				panic(fmt.Sprintf("poll %d never reached the server", n))
			}
			time.Sleep(time.Millisecond) // the poll for the waiting poll's arrival
		}
	}
	waitPolls(5)
	c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a poll ended by Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the waiting poll")
	}
	if _, err := c.poll(ctx, 1); err == nil {
		t.Fatal("a poll after Close succeeded")
	}

	// A done context ends a waiting poll too.
	c2 := &client{transport: "poll", base: srv.URL, token: "tok", cursor: "c5"}
	defer c2.Close()
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		waitPolls(6)
		cancel()
	}()
	if _, err := c2.poll(cctx, 9); !errors.Is(err, context.Canceled) {
		t.Fatalf("poll with its context cancelled: %v, want context.Canceled", err)
	}
}

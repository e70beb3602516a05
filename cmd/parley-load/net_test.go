package main

import (
	"context"
	"net"
	"os"
	"syscall"
	"testing"
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

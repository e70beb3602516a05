package main

import (
	"context"
	"net"
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

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// shortBodyTimeouts makes the body limits short for one test.
func shortBodyTimeouts(t *testing.T) {
	t.Helper()
	saved := [...]time.Duration{bodyIdleTimeout, bodyTimeout, uploadIdleTimeout}
	bodyIdleTimeout, bodyTimeout, uploadIdleTimeout = time.Second, 2*time.Second, time.Second
	t.Cleanup(func() { bodyIdleTimeout, bodyTimeout, uploadIdleTimeout = saved[0], saved[1], saved[2] })
}

// stall sends head and the first bytes of a body, then nothing, over a
// raw TCP connection, and returns what the server sent before it closed
// the connection, or fails when it holds the connection past limit.
func stall(t *testing.T, addr, head, partial string, limit time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, head+partial); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	got, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("the server still held the connection after %v (read %q): %v", time.Since(start).Round(time.Millisecond), got, err)
	}
	return string(got)
}

// A request whose body stalls is answered and its connection closed once
// the body read times out, on the API and on uploads; a body that
// trickles within the idle limit is still read.
func TestStalledRequestBodiesDoNotHoldConnections(t *testing.T) {
	shortBodyTimeouts(t)
	s := startServer(t)
	tok := s.signIn(t, "alice")
	cid := s.createGroup(t, tok, "stall")
	addr := strings.TrimPrefix(s.url, "http://")
	r := s.do(t, "POST", "/v1/attachments", tok, map[string]any{"name": "big.bin", "content_type": "application/octet-stream", "size": 1 << 20})
	upload := strings.TrimPrefix(r.json(t)["upload_url"].(string), s.url)

	for _, tc := range []struct {
		name, head, partial, want string
	}{
		{"API body declared 1000 bytes, 1 sent",
			"POST /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", "{", "HTTP/1.1 400"},
		{"API body the handler does not read",
			"POST /v1/conversations/" + cid + "/typing HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Length: 1000\r\n\r\n", "x", "HTTP/1.1 204"},
		{"API body declared 100 MB",
			"POST /v1/conversations/" + cid + "/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n", "{\"text\":", "HTTP/1.1 4"},
		{"upload of 1 MiB, 10 bytes sent",
			"PUT " + upload + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n", "0123456789", "HTTP/1.1 400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := stall(t, addr, tc.head, tc.partial, 15*time.Second)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("answer %.200q, want %s… then a closed connection", got, tc.want)
			}
		})
	}

	// A trickle inside the idle limit is not cut: 8 bytes every 300 ms
	// for 1.8 s, past the 1 s idle limit in all.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"kind":"group","title":"slow one"}`
	fmt.Fprintf(c, "POST /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", tok, len(body))
	for i := 0; i < len(body); i += 8 {
		time.Sleep(300 * time.Millisecond) // the trickle's pace is the subject
		io.WriteString(c, body[i:min(i+8, len(body))])
	}
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	got, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(got), "HTTP/1.1 201") {
		t.Fatalf("a trickled body: %.200q, want 201", got)
	}
}

// A handler that works on after reading its body (a send waits for
// sequencing) keeps its request's context past the body's idle limit:
// the deadline bounds reading the body, not the request.
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	shortBodyTimeouts(t)
	bodyIdleTimeout = 200 * time.Millisecond
	srv := httptest.NewServer(withBodyTimeouts(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		time.Sleep(3 * bodyIdleTimeout) // working after the body
		if err := r.Context().Err(); err != nil {
			http.Error(w, "context: "+err.Error(), 500)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})))
	defer srv.Close()
	for _, chunked := range []bool{false, true} {
		body := io.Reader(strings.NewReader(`{"text":"hi"}`))
		if chunked {
			body = io.MultiReader(body) // no length: sent chunked
		}
		res, err := http.Post(srv.URL, "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Errorf("chunked %v: %d %s, want 204", chunked, res.StatusCode, msg)
		}
	}
}

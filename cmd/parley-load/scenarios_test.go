package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runJSON runs the tool and returns its one result, read back from --json.
func runJSON(t *testing.T, args ...string) (*Result, string, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "out.json")
	var out bytes.Buffer
	err := run(context.Background(), append(args, "-json", file, "-quiet"), &out)
	raw, rerr := os.ReadFile(file)
	if rerr != nil {
		t.Fatalf("%v: no JSON written (%v): %v\n%s", args, rerr, err, out.String())
	}
	var doc struct {
		Results []*Result `json:"results"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Results) != 1 {
		t.Fatalf("JSON %s: %v", raw, err)
	}
	return doc.Results[0], out.String(), err
}

// Every room scenario counts every delivery on each of the three
// transports, and times them where it says it does.
func TestRoomScenariosCountEveryDeliveryOnEachTransport(t *testing.T) {
	url, pid := startParleyProc(t)
	for _, tr := range []string{"ws", "sse", "poll"} {
		t.Run(tr, func(t *testing.T) {
			r, out, err := runJSON(t, "-url", url, "-transport", tr, "-mode", "burst", "-members", "20", "-messages", "15", "-pid", itoa(pid))
			if err != nil || r.Expected != 300 || r.Delivered != 300 || r.Missing != 0 || r.SilentConns != 0 || r.DeliveriesPer <= 0 || r.Acked != 15 ||
				r.WriteSyscalls <= 0 || r.WritesPerDelivery <= 0 || !strings.Contains(out, "write syscalls/delivery") {
				t.Errorf("burst: %v %+v\n%s", err, r, out)
			}
			r, out, err = runJSON(t, "-url", url, "-transport", tr, "-mode", "latency", "-members", "10", "-rate", "500", "-duration", "1s")
			if err != nil || r.Expected != 500 || r.Delivered != 500 || r.Acked != 50 || r.Latency == nil || r.Latency.Count != 500 || r.Latency.P99 <= 0 || r.Latency.Max < r.Latency.P50 {
				t.Errorf("latency: %v %+v\n%s", err, r, out)
			}
			r, out, err = runJSON(t, "-url", url, "-transport", tr, "-mode", "resume", "-events", "300")
			if err != nil || r.Delivered != 300 || r.Missing != 0 || r.Seconds <= 0 {
				t.Errorf("resume: %v %+v\n%s", err, r, out)
			}
			r, out, err = runJSON(t, "-url", url, "-transport", tr, "-mode", "idle", "-conns", "40", "-pid", itoa(pid))
			if err != nil || r.Conns != 40 || r.RSSBeforeKiB <= 0 || r.RSSAfterKiB <= 0 || !strings.Contains(out, "40 "+tr+" connections to parley") {
				t.Errorf("idle: %v %+v\n%s", err, r, out)
			}
		})
	}
}

// With -proto the WebSocket receivers speak parley.v1+proto: every
// delivery counted and timed, a resume from the binary cursor, and the
// server's CPU time readable.
func TestProtoReceiversCountEveryDelivery(t *testing.T) {
	url, pid := startParleyProc(t)
	r, out, err := runJSON(t, "-url", url, "-proto", "-mode", "burst", "-members", "20", "-messages", "15", "-pid", itoa(pid))
	if err != nil || r.Transport != "wsproto" || r.Delivered != 300 || r.Missing != 0 || r.SilentConns != 0 || r.WriteSyscalls <= 0 {
		t.Errorf("burst: %v %+v\n%s", err, r, out)
	}
	r, out, err = runJSON(t, "-url", url, "-proto", "-mode", "latency", "-members", "10", "-rate", "500", "-duration", "1s")
	if err != nil || r.Delivered != 500 || r.Latency == nil || r.Latency.Count != 500 {
		t.Errorf("latency: %v %+v\n%s", err, r, out)
	}
	r, out, err = runJSON(t, "-url", url, "-proto", "-mode", "resume", "-events", "300")
	if err != nil || r.Delivered != 300 || r.Missing != 0 {
		t.Errorf("resume: %v %+v\n%s", err, r, out)
	}
	if err := run(context.Background(), []string{"-url", url, "-proto", "-transport", "sse", "-quiet"}, io.Discard); err == nil {
		t.Error("-proto with SSE accepted")
	}
	// The server's CPU time is read from /proc (in clock ticks: a burst
	// this small may take none).
	if d, err := processCPU(pid); err != nil || d <= 0 {
		t.Errorf("server CPU time %v, %v", d, err)
	}
}

func TestStormTimesTheSmallRoomBeforeAndDuring(t *testing.T) {
	url := startParley(t)
	r, out, err := runJSON(t, "-url", url, "-mode", "storm", "-members", "60", "-window", "1s", "-small", "3", "-small-rate", "20")
	if err != nil || r.Connected != 60 || r.ConnectFailed != 0 || r.Baseline == nil || r.Latency == nil || r.Baseline.Count < 60 || r.Latency.Count < 20 {
		t.Fatalf("storm: %v %+v\n%s", err, r, out)
	}
}

// pace makes rate × (end - start) calls when that is whole, even where
// the float rounding of the due times puts the next one a hair before end:
// 60 members dialled over 900 ms once made a 61st call.
func TestPaceMakesTheWholeNumberOfCalls(t *testing.T) {
	for _, c := range []struct {
		n    int
		span time.Duration
	}{{60, 900 * time.Millisecond}, {5000, 9 * time.Second}, {30, 1500 * time.Millisecond}, {7, 3 * time.Second}} {
		start := time.Now().Add(-time.Hour) // every call is due already: no waiting
		calls := 0
		n, err := pace(context.Background(), float64(c.n)/c.span.Seconds(), start, start.Add(c.span), func(int, time.Time) error {
			calls++
			return nil
		})
		if err != nil || n != c.n || calls != c.n {
			t.Errorf("%d over %v: pace returned %d (%v) after %d calls, want %d", c.n, c.span, n, err, calls, c.n)
		}
	}
}

func TestStormLeavesTheHandshakesTheWindowsLastTenth(t *testing.T) {
	for _, c := range []struct{ window, want time.Duration }{
		{10 * time.Second, 9 * time.Second},
		{time.Second, 900 * time.Millisecond},
		{30 * time.Second, 29 * time.Second},
	} {
		if got := stormDialSpan(c.window); got != c.want {
			t.Errorf("window %v: dials over %v, want %v", c.window, got, c.want)
		}
	}
}

func TestListTimesConversationsOfABusyUser(t *testing.T) {
	url := startParley(t)
	r, out, err := runJSON(t, "-url", url, "-mode", "list", "-convs", "30", "-rate", "20", "-duration", "1s")
	if err != nil || r.Convs != 30 || r.Errors != 0 || r.Latency == nil || r.Latency.Count != 20 {
		t.Fatalf("list: %v %+v\n%s", err, r, out)
	}
}

func TestStampsRoundTrip(t *testing.T) {
	due := time.Unix(1_800_000_000, 123456789)
	line := []byte(`{"type":"message.created","message":{"id":"m","text":"` + stamp(due, 100) + `","sender_id":"tom"}}`)
	got, ok := stamped(line)
	if !ok || !got.Equal(due) || len(stamp(due, 100)) != 100 {
		t.Fatalf("stamped(%s) = %v %v", line, got, ok)
	}
	if _, ok := stamped([]byte(`{"type":"message.created","message":{"text":"t12-x","sender_id":"t-1"}}`)); ok {
		t.Fatal("found a stamp in an unstamped message")
	}
}

func TestRefusesBadTransportAndTarget(t *testing.T) {
	for want, args := range map[string][]string{
		"unknown --transport": {"-transport", "carrier-pigeon"},
		"unknown --target":    {"-target", "nats"},
		"unknown mode":        {"-target", "centrifugo", "-mode", "resume"},
		"needs --api-key":     {"-target", "centrifugo", "-mode", "burst"},
	} {
		err := run(context.Background(), append([]string{"-url", "http://127.0.0.1:1", "-quiet"}, args...), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error saying %q", args, err, want)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

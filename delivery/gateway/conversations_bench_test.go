package gateway

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/chat"
)

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkListConversations1000 measures GET /v1/conversations for a user
// in 1,000 conversations, each with 3 or 30 messages from another member
// that the user has not read, on the embedded store, through HTTP. It
// reports the median and p99 latency of one listing; run it with
// -benchtime=200x.
func BenchmarkListConversations1000(b *testing.B) {
	for _, unread := range []int{3, 30} {
		b.Run(fmt.Sprintf("unread=%d", unread), func(b *testing.B) { benchmarkList(b, 1000, unread) })
	}
}

func benchmarkList(b *testing.B, convs, msgsEach int) {
	h := newRESTHarness(b)
	var g errgroup.Group
	g.SetLimit(32)
	for i := range convs {
		g.Go(func() error {
			var c chat.Conversation
			if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": fmt.Sprint("c", i), "members": []string{"bob"}}, &c); st != 201 {
				return fmt.Errorf("create: %d", st)
			}
			for j := range msgsEach {
				var m chat.Message
				if st := h.call("bob", "POST", "/v1/conversations/"+c.ID+"/messages", map[string]string{"text": fmt.Sprint("message ", j, " of a benchmark conversation")}, &m); st != 201 {
					return fmt.Errorf("send: %d", st)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	var out struct {
		Conversations []chat.Conversation `json:"conversations"`
	}
	h.call("alice", "GET", "/v1/conversations", nil, &out)
	if len(out.Conversations) != convs || out.Conversations[0].Unread != int64(msgsEach) {
		b.Fatalf("listed %d conversations, the first with %d unread", len(out.Conversations), out.Conversations[0].Unread)
	}
	lat := make([]time.Duration, 0, b.N)
	cpu0 := processCPU()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if st := h.call("alice", "GET", "/v1/conversations", nil, nil); st != 200 {
			b.Fatalf("list: %d", st)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	// CPU time (server and client together) per listing says more than
	// latency on a shared machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

//go:build replicated

package main

// The soak of issue 13, point 7: the standard load for a long time with
// 1% of the connections churning each minute; after warm-up, every
// node's goroutines, descriptors and RSS stay flat. make chaos runs it for
// 30 minutes (PARLEY_SOAK=30m); it runs only when PARLEY_SOAK is set.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestChaosSoak(t *testing.T) {
	if os.Getenv("PARLEY_SOAK") == "" {
		// Not a skip of a test that could run: the soak is a make chaos
		// run whose length the caller chooses.
		t.Log("PARLEY_SOAK is not set (make chaos sets 30m): no soak")
		return
	}
	soak := envDuration(t, "PARLEY_SOAK", 30*time.Minute)
	warm := min(soak/3, 5*time.Minute)
	every := envDuration(t, "PARLEY_SOAK_SAMPLE", min(time.Minute, soak/10))
	rate, nconv, nclients := chaosShape(t)
	r := newChaosRun(t, chaosConfig{Gateways: 2, Conversations: nconv, Clients: nclients})
	base := r.baseline()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cls := r.startClients(ctx, allClients(nclients), 0)
	r.watchAll(cls)
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	l := r.startLoad(lctx, rate)

	// 1% of the clients drop their connection each minute, spread over
	// the minute; they resume with their cursor.
	churn := max(1, nclients/100)
	var churned atomic.Int64
	go func() {
		tick := time.NewTicker(time.Minute / time.Duration(churn))
		defer tick.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
				cls[rand.IntN(len(cls))].drop()
				churned.Add(1)
			}
		}
	}()

	start := time.Now()
	samples := map[*node][]usage{}
	var at []time.Duration
	for time.Since(start) < soak {
		time.Sleep(every) // the sampling period
		at = append(at, time.Since(start).Round(time.Second))
		// The harness's idle keep-alive connections go first: each holds
		// a goroutine and a descriptor in a node, and their number follows
		// the load's concurrency of the moment, not the node's health.
		closeIdleConnections()
		for _, n := range r.live() {
			samples[n] = append(samples[n], n.settledUsage(t))
		}
	}
	stopLoad()
	l.wait()
	t.Logf("soak of %v: %s; %d connections churned (%d a minute)", soak, l.summary(), churned.Load(), churn)

	// Flat after warm-up: for each measure, the median of the later half
	// of the samples after warm-up is within 10% (+ 20) of the earlier
	// half's for goroutines and descriptors, and 20% (+ 32 MiB) for the
	// memory held (RSS less freed heap not yet returned, sampled after a
	// collection: settledUsage). A leak raises the later median; a
	// measure that swings with the load of the moment does not (grows).
	for n, us := range samples {
		var lines []string
		for i, u := range us {
			lines = append(lines, fmt.Sprintf("%v: %v", at[i], u))
		}
		t.Logf("%s:\n  %s", n.name, strings.Join(lines, "\n  "))
		var after []usage
		for i, u := range us {
			if at[i] >= warm {
				after = append(after, u)
			}
		}
		if len(after) < 4 {
			t.Errorf("%s: %d samples after the %v warm-up, want 4 or more", n.name, len(after), warm)
			continue
		}
		measures := []struct {
			name  string
			of    func(usage) int64
			slack func(int64) int64
		}{
			{"goroutines", func(u usage) int64 { return int64(u.Goroutines) }, func(v int64) int64 { return v/10 + 20 }},
			{"descriptors", func(u usage) int64 { return int64(u.FDs) }, func(v int64) int64 { return v/10 + 20 }},
			{"MiB held", func(u usage) int64 { return u.Held() >> 20 }, func(v int64) int64 { return v/5 + 32 }},
		}
		for _, m := range measures {
			vs := make([]int64, len(after))
			for i, u := range after {
				vs[i] = m.of(u)
			}
			before, later, grew := grows(vs, m.slack)
			t.Logf("%s %s after warm-up: median %d, then %d", n.name, m.name, before, later)
			if grew {
				t.Errorf("%s grew after warm-up: %s median %d, then %d", n.name, m.name, before, later)
			}
		}
	}
	r.settle(cls, r.gateways[0], 2*time.Minute)
	r.check(r.gateways[0])
	t.Logf("client streams ended: %v", closeCodesOf(cls))
	cancel()
	r.expectBaseline(base)
}

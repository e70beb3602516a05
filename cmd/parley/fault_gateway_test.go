//go:build replicated

package main

// Gateway faults 4-6 of issue 13, on the chaos harness (chaos_test.go):
// a gateway drained and another killed under load, slow consumers, and a
// reconnect storm. The short versions (make test-faults) use fewer
// clients; PARLEY_FAULTS=long (make chaos) the 2,000.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// terminate sends SIGTERM (a drain) and waits for the node to exit.
func (n *node) terminate(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", n.name, err)
	}
	select {
	case <-n.exited:
	case <-time.After(within):
		t.Errorf("%s did not exit within %v of SIGTERM", n.name, within)
		n.kill()
	}
	return time.Since(start)
}

// gatewayFaultClients is how many clients faults 4 and 6 connect: 2,000
// in the long version, 400 in the short one (PARLEY_CHAOS_GATEWAY_CLIENTS
// overrides both).
func gatewayFaultClients(t *testing.T) int {
	def := 400
	if chaosLong() {
		def = 2000
	}
	return envInt(t, "PARLEY_CHAOS_GATEWAY_CLIENTS", def)
}

func allClients(n int) []int {
	idxs := make([]int, n)
	for i := range idxs {
		idxs[i] = i
	}
	return idxs
}

// Fault 4: every client on gateway A, which is drained (SIGTERM) under
// load: all of them are back on B within 60 s, and a user connected only
// to A (who does not reconnect) is announced offline to a contact on C
// at once, not after the 10 s grace or the heartbeat timeout. Then B,
// now holding the clients, is killed (SIGKILL): all are back on C within
// 60 s. The checker finds nothing lost, doubled, reordered or skipped,
// and the surviving nodes return to their baseline.
func TestFaultGatewayDrainAndKill(t *testing.T) {
	warm, between := faultPhases()
	rate, nconv, _ := chaosShape(t)
	nclients := gatewayFaultClients(t)
	r := newChaosRun(t, chaosConfig{Gateways: 3, Conversations: nconv, Clients: nclients})
	a, b, c := r.gateways[0], r.gateways[1], r.gateways[2]
	base := r.baseline()

	// The presence witness: leaver on A only, observer on C.
	apiA, apiC := a.api(t), c.api(t)
	leaver, observer := apiA.signIn(t, "leaver"), apiC.signIn(t, "observer")
	apiA.createGroup(t, leaver, "presence witness", "observer")
	obsWS, _ := apiC.connect(t, transportWS, observer, "")
	leaverWS, _ := apiA.connect(t, transportWS, leaver, "")
	// Both read all along, as clients do: a WebSocket client answers the
	// server's pings only while it reads, and one that does not answer
	// within 10 s is dropped (1001) as gone.
	obs := readInBackground(obsWS)
	_ = readInBackground(leaverWS)
	waitPresence(t, obs, "leaver", true, 30*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cls := r.startClientsOn(ctx, allClients(nclients), 0, 0)
	r.watchAll(cls)
	t.Logf("%d clients on gateway A (%d conversations)", onGateway(cls, 0), nconv)
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	l := r.startLoad(lctx, rate)
	time.Sleep(warm) // the load before the drain

	// The drain.
	onA := clientsOn(cls, 0)
	drainAt := time.Now()
	go func() {
		t.Logf("gateway A exited %v after SIGTERM", a.terminate(t, 30*time.Second).Round(time.Millisecond))
	}()
	offlineAfter := waitPresence(t, obs, "leaver", false, 30*time.Second)
	t.Logf("leaver (on A only) announced offline to observer on C %v after SIGTERM (grace 10 s, heartbeat timeout 12 s)", offlineAfter.Round(time.Millisecond))
	if offlineAfter > 8*time.Second {
		t.Errorf("the drain left leaver to time out: offline %v after SIGTERM", offlineAfter)
	}
	leaverWS.close()
	back := waitBack(t, onA, drainAt, 60*time.Second)
	t.Logf("drain of A (holding %d clients): all back within %v (%d on B, %d on C); streams ended: %v",
		len(onA), back.Round(time.Millisecond), onGateway(cls, 1), onGateway(cls, 2), closeCodesOf(cls))
	time.Sleep(between) // the load between the faults

	// The kill, of the gateway that now holds (most of) the clients.
	onB := clientsOn(cls, 1)
	killAt := time.Now()
	b.kill()
	back = waitBack(t, onB, killAt, 60*time.Second)
	t.Logf("kill -9 of B (holding %d clients): all back within %v (%d of %d on C)", len(onB), back.Round(time.Millisecond), onGateway(cls, 2), nclients)
	time.Sleep(between) // the load after the faults

	stopLoad()
	l.wait()
	t.Logf("load: %s", l.summary())
	r.settle(cls, c, 2*time.Minute)
	r.check(c)
	t.Logf("client streams ended: %v", closeCodesOf(cls))
	cancel()
	r.expectBaseline(base)
}

// backgroundStream is a stream read all along by its own goroutine (which
// ends with the stream): its presence events, and why it ended.
type backgroundStream struct {
	frames chan map[string]any
	err    error // set before frames is closed
}

// readInBackground reads st until it ends, handing on its presence events.
func readInBackground(st stream) *backgroundStream {
	b := &backgroundStream{frames: make(chan map[string]any, 1024)}
	go func() {
		defer close(b.frames)
		for {
			m, err := st.next(time.Hour)
			if err != nil {
				b.err = err
				return
			}
			if m["type"] != "presence" {
				continue // the test needs only presence
			}
			select {
			case b.frames <- m:
			default: // more than 1,024 unread presence events: nobody waits for them
			}
		}
	}()
	return b
}

// waitPresence reads b until a presence event says user is online (or
// not), and returns how long that took.
func waitPresence(t *testing.T, b *backgroundStream, user string, online bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-b.frames:
			if !ok {
				t.Fatalf("waiting for %s online=%v: the stream ended: %v", user, online, b.err)
			}
			if m["type"] == "presence" && m["user_id"] == user && m["online"] == online {
				return time.Since(start)
			}
		case <-deadline:
			t.Fatalf("no presence event of %s online=%v within %v", user, online, within)
		}
	}
}

// Fault 5: slow consumers. A hot conversation carries 200 events a second
// (PARLEY_CHAOS_HOT_RATE) to 50 fast WebSocket clients, beside the
// standard load (a third of it in the short version); then 50 slow
// clients join it, reading one event a second. Each slow client's queue
// (--queue-size 256 on the gateway; 64 in the short version) overflows,
// and the server closes every overflowed connection within 10 s: at
// every moment, the connections the gateway closed as too slow (with
// 1013; or, when the socket would not even take the close frame, at the
// write timeout) are at least the queues that overflowed 10 s before.
// Counted on the server (/metrics), since the slow clients themselves
// reconnect once they see the end, which a client reading one event a
// second sees only after what its socket buffers held. The fast clients'
// p99 delivery latency stays within 2× of a run without slow clients:
// 50 control clients of the same conversation on gateway B, measured in
// the same window (see the check); the memory gateway A holds stays
// flat (checkSlowMemory); and the checker finds nothing wrong.
func TestFaultGatewaySlowConsumers(t *testing.T) {
	rate, nconv, nclients := chaosShape(t)
	hotRate := envInt(t, "PARLEY_CHAOS_HOT_RATE", 200)
	// Each of the hot conversation's events is 2,000 characters, so that a
	// slow reader's socket buffers (megabytes on loopback) fill in seconds
	// and its queue overflows soon after. With short events, the long run
	// of 2026-12-03 (93 events a second sustained, not 200) saw 34 of the
	// 50 slow queues overflow in two minutes: the buffers held the rest.
	queueSize, hotText := 256, 2000
	if !chaosLong() {
		// The short version offers the hot conversation what one
		// conversation sustained on the shared 2-core machine's replicated
		// engines (RELIABILITY.md), and makes the queues 64 events, so
		// that a slow reader's queue fills as fast as at the long
		// version's 200 events a second.
		hotRate = envInt(t, "PARLEY_CHAOS_HOT_RATE", 50)
		queueSize = 64
	}
	if !chaosLong() {
		// The short version's background load is a third of the standard
		// one: beside the hot conversation's 200 a second, 300 more was
		// more than the shared 2-core machine sequenced (PARLEY_CHAOS_BG_RATE).
		rate = envInt(t, "PARLEY_CHAOS_BG_RATE", rate/3)
	}
	const nfast, nslow = 50, 50
	phase, minEvents := 20*time.Second, 2500 // 2,500 deliveries: at least 50 messages to each group
	if chaosLong() {
		phase = 60 * time.Second
	}
	// The hot conversation's members: nfast fast clients on gateway A,
	// nslow slow ones on A, and nfast control clients on gateway B.
	r := newChaosRun(t, chaosConfig{Gateways: 2, Conversations: nconv, Clients: nclients, Hot: 2*nfast + nslow, HotText: hotText,
		GatewayArgs: []string{"--queue-size", fmt.Sprint(queueSize)}})
	gw := r.gateways[0]
	base := r.baseline()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cls := r.startClients(ctx, allClients(nclients), 0)
	fastIdx := make([]int, nfast)
	for k := range fastIdx {
		fastIdx[k] = nclients + k
	}
	r.cfg.Transports = []string{transportWS}
	fast := r.startClientsOn(ctx, fastIdx, 0, 0)
	ctlIdx := make([]int, nfast)
	for k := range ctlIdx {
		ctlIdx[k] = nclients + nfast + nslow + k
	}
	control := r.startClientsOn(ctx, ctlIdx, 0, 1)
	r.watchAll(append(append(append([]*chaosClient(nil), cls...), fast...), control...))
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	l := r.startLoad(lctx, rate)
	hot := r.startLoadTo(lctx, hotRate, 1, len(r.convs)-1)

	// Phase 1: no slow clients.
	time.Sleep(5 * time.Second) // warm-up: the hot conversation's clients reach their steady rate
	// Gateway A's memory before the slow clients: sampled every 5 s
	// over the phase, after a collection (settledUsage), so that the
	// baseline is a median of what A holds, not one sample of RSS, which
	// swings by the freed heap the runtime has yet to return and the
	// garbage not yet collected (a first sample of 79 MiB once, 166 MiB
	// in another run, against peaks of 146 and 154 MiB).
	p1done := make(chan [][]time.Duration, 1)
	go func() { p1done <- measureFast(phase, minEvents, fast, control) }()
	var mem1 []usage
	p1 := sampleUntil(p1done, func() { mem1 = append(mem1, gw.settledUsage(t)) })

	// Phase 2: 50 slow clients join the hot conversation on gateway A.
	overflows0 := gw.metric(t, "parley_connection_queue_overflows_total", "")
	// Closed as too slow: with 1013, or at the write timeout when the
	// socket would not take the close frame (both counted here).
	slowClosed := func() float64 { return gw.metric(t, "parley_slow_connections_closed_total", "") }
	closes0 := slowClosed()
	slowIdx := make([]int, nslow)
	for k := range slowIdx {
		slowIdx[k] = nclients + nfast + k
	}
	slow := r.startClientsOn(ctx, slowIdx, time.Second, 0)
	joined := time.Now()
	// The server side, sampled every 200 ms: queues overflowed and
	// connections closed as too slow, since the slow clients joined.
	type sample struct {
		at                time.Time
		overflows, closes float64
	}
	var samples []sample
	var overflowAt time.Time // when all nslow had overflowed
	var mem2 []usage
	p2done := make(chan [][]time.Duration, 1)
	go func() { p2done <- measureFast(phase, minEvents, fast, control) }()
	// The phase, and then until 10 s after every slow queue overflowed
	// (for the last closes), for at most a minute more.
	for time.Since(joined) < phase || (overflowAt.IsZero() && time.Since(joined) < phase+time.Minute) || (!overflowAt.IsZero() && time.Since(overflowAt) < 10*time.Second) {
		s := sample{time.Now(), gw.metric(t, "parley_connection_queue_overflows_total", "") - overflows0, slowClosed() - closes0}
		samples = append(samples, s)
		if overflowAt.IsZero() && s.overflows >= nslow {
			overflowAt = s.at
		}
		if len(mem2) == 0 || time.Since(joined) > time.Duration(len(mem2))*memEvery {
			mem2 = append(mem2, gw.settledUsage(t))
		}
		time.Sleep(200 * time.Millisecond) // the sampling period
	}
	p2 := <-p2done
	for _, cl := range slow {
		cl.delay.Store(0) // read what is buffered, to see how each stream ended
	}
	stopLoad()
	l.wait()
	hot.wait()
	t.Logf("load: %s", l.summary())
	t.Logf("hot conversation: %s", hot.summary())
	lat := func(d []time.Duration) string {
		return fmt.Sprintf("p50 %v p99 %v (%d events)", percentile(d, 0.5), percentile(d, 0.99), len(d))
	}
	ratio := func(a, b []time.Duration) float64 {
		return float64(percentile(a, 0.99)) / float64(max(percentile(b, 0.99), time.Millisecond))
	}
	t.Logf("hot conversation's delivery: before the slow clients, on A %s, on B %s (A/B p99 %.2f); with them on A, on A %s, on B %s (A/B p99 %.2f); A's p99 with/without %.2f",
		lat(p1[0]), lat(p1[1]), ratio(p1[0], p1[1]), lat(p2[0]), lat(p2[1]), ratio(p2[0], p2[1]), ratio(p2[0], p1[0]))
	last := samples[len(samples)-1]
	if overflowAt.IsZero() {
		t.Errorf("the %d slow clients' queues did not all overflow in %v (%v overflows)", nslow, last.at.Sub(joined).Round(time.Second), last.overflows)
	} else {
		t.Logf("slow clients: %d queues overflowed %v after they joined; %v overflows and %v slow connections closed (with 1013, or at the write timeout; %v other writes failed) by %v after",
			nslow, overflowAt.Sub(joined).Round(time.Millisecond), last.overflows, last.closes,
			gw.metric(t, "parley_connections_dropped_total", `reason="write_failed"`), last.at.Sub(joined).Round(time.Second))
	}
	// Every overflow is followed by its close within 10 s: at each sample,
	// the closes are at least the overflows of 10 s before.
	for _, s := range samples {
		var before sample
		for _, b := range samples {
			if b.at.After(s.at.Add(-10 * time.Second)) {
				break
			}
			before = b
		}
		if s.closes < before.overflows {
			t.Errorf("%v after the slow clients joined, %v connections were closed as too slow, but %v queues had overflowed 10 s before",
				s.at.Sub(joined).Round(100*time.Millisecond), s.closes, before.overflows)
			break
		}
	}
	// The fast clients on A stay within 2× of the run without slow
	// clients: the control clients on B, which get the same events from
	// the same engines over the same window, on a gateway with no slow
	// client. A baseline taken in the same window cancels what a shared
	// machine's load does to every delivery (the engines' latency, CPU
	// starvation), which before and after windows do not (5.7 s against
	// 2.6 s once, both noise); what remains is what the slow clients cost
	// the gateway that serves them. 50 ms of slack for millisecond
	// latencies.
	if a, b := percentile(p2[0], 0.99), percentile(p2[1], 0.99); a > 2*b+50*time.Millisecond {
		t.Errorf("fast clients' p99 on A (with the slow clients) %v, on B (without them) %v, same window: more than 2×", a, b)
	}
	if len(p2[0]) < minEvents || len(p2[1]) < minEvents {
		t.Errorf("too few deliveries measured with the slow clients for a p99 (%d on A, %d on B; want %d each)", len(p2[0]), len(p2[1]), minEvents)
	}
	checkSlowMemory(t, mem1, mem2, int64(nslow*queueSize*hotText))
	// The slow clients are not watched (they were told to resume, and
	// may still be catching up); what they got is checked all the same.
	r.settle(append(append(append([]*chaosClient(nil), cls...), fast...), control...), r.gateways[1], 2*time.Minute)
	r.check(r.gateways[1])
	t.Logf("slow clients' streams ended: %v", closeCodesOf(slow))
	t.Logf("gateway A after the slow clients resumed: %v", gw.usage(t))
	cancel()
	r.expectBaseline(base)
}

// memEvery is how often fault 5 samples gateway A's memory.
const memEvery = 5 * time.Second

// sampleUntil calls sample at once and then every memEvery until done
// yields, and returns what it yields.
func sampleUntil[T any](done <-chan T, sample func()) T {
	tick := time.NewTicker(memEvery)
	defer tick.Stop()
	sample()
	for {
		select {
		case v := <-done:
			return v
		case <-tick.C:
			sample()
		}
	}
}

// checkSlowMemory checks that gateway A's memory stays flat while it
// serves slow clients: before is sampled without them, with while they
// are connected, each every memEvery after a collection. The measure is
// what A holds (RSS less the freed heap the runtime has yet to return,
// usage.Held): RSS itself carries a past peak until the scavenger returns
// it. It must stay under heldBound of the samples before, with budget the
// most the slow clients' queues may hold; and it must not grow while they
// are connected (grows, with the soak's slack for memory). A gateway that
// kept a slow client's backlog past its queue fails both: at 200 events a
// second of 2,000 characters, 50 slow clients add 20 MB a second.
func checkSlowMemory(t *testing.T, before, with []usage, budget int64) {
	t.Helper()
	series := func(us []usage) string {
		var s []string
		for _, u := range us {
			s = append(s, fmt.Sprintf("%.0f/%.0f", mib(u.RSS), mib(u.Held())))
		}
		return strings.Join(s, " ")
	}
	t.Logf("gateway A RSS/held MiB every %v, before the slow clients: %s; with them: %s", memEvery, series(before), series(with))
	held := func(us []usage) []int64 {
		vs := make([]int64, len(us))
		for i, u := range us {
			vs[i] = u.Held()
		}
		return vs
	}
	if len(before) == 0 || len(with) < 2 {
		t.Errorf("gateway A's memory sampled %d times before the slow clients and %d with them; want 1 and 2 or more", len(before), len(with))
		return
	}
	bound := heldBound(held(before), budget)
	if peak := slices.Max(held(with)); peak > bound {
		t.Errorf("gateway A held %.0f MiB with slow clients, over its bound of %.0f MiB (median before %.0f MiB, queues' budget %.0f MiB)",
			mib(peak), mib(bound), mib(median(held(before))), mib(budget))
	}
	if b, a, grew := grows(held(with), func(v int64) int64 { return v/5 + 32<<20 }); grew {
		t.Errorf("gateway A's memory grew while the slow clients were connected: median %.0f MiB, then %.0f MiB", mib(b), mib(a))
	}
}

// measureFast collects the delivery latencies (event "at" to receipt) of
// each group of clients over the same window: d, extended (by up to a
// minute) until every group has at least minEvents, so that a p99 rests
// on enough samples when the machine sustains a lower rate.
func measureFast(d time.Duration, minEvents int, groups ...[]*chaosClient) [][]time.Duration {
	all := slices.Concat(groups...)
	for _, cl := range all {
		cl.mu.Lock()
		cl.eventLat = cl.eventLat[:0]
		cl.mu.Unlock()
		cl.measure.Store(true)
	}
	count := func(g []*chaosClient) int {
		n := 0
		for _, cl := range g {
			cl.mu.Lock()
			n += len(cl.eventLat)
			cl.mu.Unlock()
		}
		return n
	}
	start := time.Now()
	for time.Since(start) < d || time.Since(start) < d+time.Minute && slices.ContainsFunc(groups, func(g []*chaosClient) bool { return count(g) < minEvents }) {
		time.Sleep(200 * time.Millisecond) // the measurement window, polled for its sample count
	}
	out := make([][]time.Duration, len(groups))
	for _, cl := range all {
		cl.measure.Store(false)
	}
	for i, g := range groups {
		for _, cl := range g {
			cl.mu.Lock()
			out[i] = append(out[i], cl.eventLat...)
			cl.eventLat = nil
			cl.mu.Unlock()
		}
	}
	return out
}

// Fault 6: a reconnect storm. Every client's connection is dropped at
// once (from the client side, as a network blip does); all are back
// within 60 s with nothing missed, and the gateways shed the excess
// handshakes with 503 (--max-opening 64 here, so that the short version
// sheds too) rather than falling over: they stay up and ready, and
// return to their baseline.
func TestFaultGatewayReconnectStorm(t *testing.T) {
	warm, between := faultPhases()
	rate, nconv, _ := chaosShape(t)
	nclients := gatewayFaultClients(t)
	maxOpening := envInt(t, "PARLEY_CHAOS_MAX_OPENING", 64)
	r := newChaosRun(t, chaosConfig{Gateways: 2, Conversations: nconv, Clients: nclients,
		GatewayArgs: []string{"--max-opening", fmt.Sprint(maxOpening)}})
	base := r.baseline()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cls := r.startClients(ctx, allClients(nclients), 0)
	r.watchAll(cls)
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	l := r.startLoad(lctx, rate)
	time.Sleep(warm) // the load before the storm

	shed0 := 0.0
	for _, g := range r.gateways {
		shed0 += g.metric(t, "parley_connections_shed_total", "")
	}
	stormAt := time.Now()
	for _, cl := range cls {
		go cl.drop()
	}
	back := waitBack(t, cls, stormAt, 60*time.Second)
	shed := -shed0
	for _, g := range r.gateways {
		shed += g.metric(t, "parley_connections_shed_total", "")
		if status, body := gatewayReady(g.url); status != 200 {
			t.Errorf("%s after the storm: /readyz %d %s", g.name, status, body)
		}
		select {
		case <-g.exited:
			t.Errorf("%s fell over in the storm", g.name)
		default:
		}
	}
	t.Logf("storm of %d reconnects (--max-opening %d): all back within %v, %v handshakes shed with 503", nclients, maxOpening, back.Round(time.Millisecond), shed)
	time.Sleep(between) // the load after the storm
	stopLoad()
	l.wait()
	t.Logf("load: %s", l.summary())
	r.settle(cls, r.gateways[0], 2*time.Minute)
	r.check(r.gateways[0])
	t.Logf("client streams ended: %v", closeCodesOf(cls))
	cancel()
	r.expectBaseline(base)
}

// gatewayReady is a node's /readyz status and body.
func gatewayReady(base string) (int, string) { return getStatus(base + "/readyz") }

// getStatus is the status and (first 4 KiB of the) body of GET url.
func getStatus(url string) (int, string) {
	res, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, string(b)
}

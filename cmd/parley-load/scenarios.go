package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// openRoom signs in --members users named after kind, makes them one
// room, connects each on --transport and opens the first one's sending
// WebSocket. The caller closes the connections and the sender.
func openRoom(ctx context.Context, c config, kind string) (cid string, conns []*client, snd *sender, err error) {
	names := userNames(c.Prefix+kind, c.Members)
	tokens, err := signInAll(ctx, c, names)
	if err != nil {
		return "", nil, nil, err
	}
	if cid, err = makeRoom(ctx, c, tokens[0], names); err != nil {
		return "", nil, nil, err
	}
	if conns, err = connectAll(ctx, c, tokens); err != nil {
		return "", nil, nil, err
	}
	if snd, err = newSender(ctx, c, tokens[0]); err != nil {
		closeAll(conns)
		return "", nil, nil, err
	}
	return cid, conns, snd, nil
}

// burst sends --messages messages as fast as one WebSocket takes them into
// a room of --members connections and counts every delivery: the rate,
// and the deliveries and connections that never got theirs.
func burst(ctx context.Context, c config, out io.Writer) (*Result, error) {
	cid, conns, snd, err := openRoom(ctx, c, "b")
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	defer snd.Close()

	want := int64(c.Members) * int64(c.Messages)
	var got, last atomic.Int64
	per := make([]int64, len(conns))
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var wg sync.WaitGroup
	for i, cl := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for per[i] < int64(c.Messages) {
				lines, err := cl.Next(rctx)
				if err != nil {
					return
				}
				n := int64(0)
				for _, l := range lines {
					if bytes.Contains(l, marker) {
						n++
					}
				}
				if n > 0 {
					per[i] += n
					got.Add(n)
					last.Store(time.Now().UnixNano())
				}
			}
		}()
	}
	c.prog.set("burst", func() string {
		return fmt.Sprintf("%d/%d deliveries, %d acks, %d refused", got.Load(), want, snd.acked.Load(), snd.refused.Load())
	})
	text := bytes.Repeat([]byte("x"), c.Size)
	meter, cpu := startSyscalls(c.PID), startCPU(c.PID)
	start := time.Now()
	for i := 0; i < c.Messages; i++ {
		if err := snd.send(ctx, cid, c.Prefix+"b"+strconv.Itoa(i), string(text)); err != nil {
			return nil, err
		}
	}
	waitDelivered(ctx, c, &got, want)
	// A sender's ack can trail the members' deliveries: count it too.
	snd.waitAcks(int64(c.Messages), c.Stall)
	rcancel()
	wg.Wait()
	r := newResult(c, "burst")
	r.Members, r.Messages, r.Expected, r.Delivered, r.Missing = c.Members, c.Messages, want, got.Load(), want-got.Load()
	r.Acked, r.Refused = int(snd.acked.Load()), int(snd.refused.Load())
	for _, n := range per {
		if n == 0 {
			r.SilentConns++
		}
	}
	elapsed := time.Duration(last.Load() - start.UnixNano())
	if elapsed > 0 {
		r.Seconds, r.DeliveriesPer = elapsed.Seconds(), float64(got.Load())/elapsed.Seconds()
	}
	meter.stop(r)
	cpu.stop(r)
	fmt.Fprintf(out, "burst: %d members x %d messages of %d bytes over %s: %d/%d deliveries in %v = %.0f deliveries/s; %d missing, %d connections got none; %d acked, %d refused\n",
		c.Members, c.Messages, c.Size, c.Transport, got.Load(), want, elapsed.Round(time.Millisecond), r.DeliveriesPer, r.Missing, r.SilentConns, r.Acked, r.Refused)
	if r.ServerCPUSeconds > 0 {
		fmt.Fprintf(out, "burst: server CPU %.2f s = %.0f ns per delivery; %.2f write system calls per delivery\n", r.ServerCPUSeconds, r.CPUPerDeliveryNs, r.WritesPerDelivery)
	}
	if r.Missing != 0 {
		return r, fmt.Errorf("lost deliveries: %d of %d arrived", got.Load(), want)
	}
	return r, nil
}

// timedRoom reads stamped messages on every connection into h, counting
// them in got, until ctx ends or each connection has seen perConn.
func timedRoom(ctx context.Context, conns []*client, perConn int64, h *hist, got *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, cl := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := int64(0)
			for perConn <= 0 || mine < perConn {
				lines, err := cl.Next(ctx)
				now := time.Now()
				if err != nil {
					return
				}
				for _, l := range lines {
					if !bytes.Contains(l, marker) {
						continue
					}
					if due, ok := stamped(l); ok {
						h.Record(now.Sub(due))
						mine++
						got.Add(1)
					}
				}
			}
		}()
	}
	return &wg
}

// pace calls fn(i, due) for i = 0, 1, … at rate per second from start until
// end, open loop: a late call is made at once, and its due time stays the
// one it was scheduled for, so lateness counts in the latency. It makes
// the calls due before end, counted rather than compared with end: when
// rate × (end - start) is whole, the float rounding of the due times could
// put one more a hair before end.
func pace(ctx context.Context, rate float64, start, end time.Time, fn func(i int, due time.Time) error) (int, error) {
	n := int(math.Ceil(end.Sub(start).Seconds()*rate - 1e-6))
	i := 0
	for ; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return i, ctx.Err()
			}
		}
		if err := fn(i, due); err != nil {
			return i, err
		}
	}
	return i, ctx.Err()
}

// latency offers --rate deliveries a second (--rate/--members messages a
// second) to a room of --members for --duration and times every delivery
// from the moment its send was due.
func latency(ctx context.Context, c config, out io.Writer) (*Result, error) {
	cid, conns, snd, err := openRoom(ctx, c, "l")
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	defer snd.Close()
	msgRate := max(1, float64(c.Rate)/float64(c.Members))
	h := newHist()
	var got atomic.Int64
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	wg := timedRoom(rctx, conns, 0, h, &got)
	var sent atomic.Int64
	c.prog.set("latency", func() string {
		return fmt.Sprintf("%d sent, %d deliveries, %d refused", sent.Load(), got.Load(), snd.refused.Load())
	})
	meter, cpu := startSyscalls(c.PID), startCPU(c.PID)
	start := time.Now()
	n, err := pace(ctx, msgRate, start, start.Add(c.Duration), func(i int, due time.Time) error {
		sent.Add(1)
		return snd.send(ctx, cid, c.Prefix+"l"+strconv.Itoa(i), stamp(due, c.Size))
	})
	if err != nil {
		return nil, err
	}
	want := int64(n) * int64(c.Members)
	waitDelivered(ctx, c, &got, want)
	snd.waitAcks(int64(n), c.Stall)
	rcancel()
	wg.Wait()
	r := newResult(c, "latency")
	r.Members, r.Messages, r.OfferedRate, r.Seconds = c.Members, n, msgRate*float64(c.Members), c.Duration.Seconds()
	r.Expected, r.Delivered, r.Missing = want, got.Load(), want-got.Load()
	r.Acked, r.Refused = int(snd.acked.Load()), int(snd.refused.Load())
	r.Latency = h.Summary()
	meter.stop(r)
	cpu.stop(r)
	l := r.Latency
	if l == nil {
		return r, errors.New("no deliveries")
	}
	fmt.Fprintf(out, "latency: %d members over %s, %.0f msg/s (%.0f deliveries/s) for %v: %d/%d deliveries, p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms\n",
		c.Members, c.Transport, msgRate, r.OfferedRate, c.Duration, r.Delivered, want, l.P50, l.P90, l.P99, l.P999, l.Max)
	if r.Missing != 0 || r.Refused != 0 {
		return r, fmt.Errorf("%d deliveries missing, %d sends refused", r.Missing, r.Refused)
	}
	return r, nil
}

// storm connects the --members of one room evenly over --window while a
// room of --small members gets --small-rate messages a second, timed; the
// small room is timed alone for a few seconds first, as the baseline.
func storm(ctx context.Context, c config, out io.Writer) (*Result, error) {
	bigNames := userNames(c.Prefix+"s", c.Members)
	smallNames := userNames(c.Prefix+"q", c.Small)
	tokens, err := signInAll(ctx, c, append(append([]string{}, smallNames...), bigNames...))
	if err != nil {
		return nil, err
	}
	smallTok, bigTok := tokens[:c.Small], tokens[c.Small:]
	if _, err := makeRoom(ctx, c, bigTok[0], bigNames); err != nil {
		return nil, err
	}
	cid, err := makeRoom(ctx, c, smallTok[0], smallNames)
	if err != nil {
		return nil, err
	}
	small, err := connectAll(ctx, c, smallTok)
	if err != nil {
		return nil, err
	}
	defer closeAll(small)
	snd, err := newSender(ctx, c, smallTok[0])
	if err != nil {
		return nil, err
	}
	defer snd.Close()

	baseline, during := newHist(), newHist()
	cur := atomic.Pointer[hist]{}
	cur.Store(baseline)
	var got atomic.Int64
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	// One histogram per phase: the receivers record into the current one.
	var wg sync.WaitGroup
	for _, cl := range small {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lines, err := cl.Next(rctx)
				now := time.Now()
				if err != nil {
					return
				}
				for _, l := range lines {
					if due, ok := stamped(l); ok && bytes.Contains(l, marker) {
						cur.Load().Record(now.Sub(due))
						got.Add(1)
					}
				}
			}
		}()
	}
	var sending sync.WaitGroup
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	sending.Add(1)
	go func() {
		defer sending.Done()
		start := time.Now()
		_, _ = pace(sctx, float64(c.SmallRate), start, start.Add(time.Hour), func(i int, due time.Time) error {
			return snd.send(sctx, cid, c.Prefix+"q"+strconv.Itoa(i), stamp(due, c.Size))
		})
	}()
	c.prog.set("baseline", func() string { return fmt.Sprintf("%d deliveries", got.Load()) })
	time.Sleep(3 * time.Second)
	cur.Store(during)

	var connected, failed atomic.Int64
	var firstErr atomic.Value
	big := make([]*client, c.Members)
	defer func() { closeAll(big) }()
	var dials sync.WaitGroup
	c.prog.set("storm", func() string {
		return fmt.Sprintf("%d/%d connected, %d failed; small room %d deliveries", connected.Load(), c.Members, failed.Load(), got.Load())
	})
	start := time.Now()
	var lastAt atomic.Int64
	span := stormDialSpan(c.Window)
	_, _ = pace(ctx, float64(c.Members)/span.Seconds(), start, start.Add(span), func(i int, _ time.Time) error {
		dials.Add(1)
		go func() {
			defer dials.Done()
			dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
			defer dcancel()
			cl, err := connect(dctx, c.Transport, c.URL, bigTok[i], "")
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			big[i] = cl
			connected.Add(1)
			lastAt.Store(time.Now().UnixNano())
			for { // read on, as a client does
				if _, err := cl.Next(rctx); err != nil {
					return
				}
			}
		}()
		return nil
	})
	// Wait for the handshakes (each bounded by 30 s), then a second more of
	// the small room under the members' presence traffic.
	for connected.Load()+failed.Load() < int64(c.Members) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	scancel()
	sending.Wait()
	time.Sleep(500 * time.Millisecond)
	rcancel()
	wg.Wait()
	dials.Wait()
	r := newResult(c, "storm")
	r.Members, r.OfferedRate = c.Members, float64(c.Members)/span.Seconds()
	r.Connected, r.ConnectFailed = int(connected.Load()), int(failed.Load())
	r.ConnectSeconds = time.Duration(lastAt.Load() - start.UnixNano()).Seconds()
	r.Baseline, r.Latency = baseline.Summary(), during.Summary()
	r.Acked, r.Refused = int(snd.acked.Load()), int(snd.refused.Load())
	b, d := r.Baseline, r.Latency
	if b == nil || d == nil {
		return r, errors.New("the small room got no deliveries")
	}
	fmt.Fprintf(out, "storm: %d members connecting over %v via %s: %d connected in %.2f s, %d failed; %d-member room at %d msg/s: p99 %.2fms before, during p50 %.2fms p99 %.2fms max %.2fms\n",
		c.Members, c.Window, c.Transport, r.Connected, r.ConnectSeconds, r.ConnectFailed, c.Small, c.SmallRate, b.P99, d.P50, d.P99, d.Max)
	if r.ConnectFailed > 0 {
		return r, fmt.Errorf("%d connections failed (first: %v)", r.ConnectFailed, firstErr.Load())
	}
	return r, nil
}

// idle opens --conns idle connections over --transport (20 per user) and
// reports the server's RSS growth per connection, from /proc/<pid>/status,
// in an idle steady state: every connection open (a WebSocket or SSE
// stream that got its ready; a long-poll client in its 55 s poll, which it
// starts as soon as its first poll is answered, so the registration that
// poll left is taken over rather than expired), then idleSettle after the
// last of them started, then until the RSS settles (settledRSS). A
// connection refused or failed is counted and left out of the figure,
// which divides by those open; so is a long-poll that fails later (its
// client polls again after a second). Long-polls answered meanwhile (a
// 55 s wait that ended, when opening took that long) are counted too.
func idle(ctx context.Context, c config, out io.Writer) (*Result, error) {
	if c.PID == 0 {
		return nil, errors.New("idle mode needs --pid of the server")
	}
	const perUser = 20
	names := userNames(c.Prefix+"i", (c.Conns+perUser-1)/perUser)
	tokens, err := signInAll(ctx, c, names)
	if err != nil {
		return nil, err
	}
	var refused, failed, pollsFailed, answered atomic.Int64
	var firstErr atomic.Value
	count := func(err error) {
		var he *httpError
		if errors.As(err, &he) && (he.Status == http.StatusServiceUnavailable || he.Status == http.StatusTooManyRequests) {
			refused.Add(1)
		} else {
			failed.Add(1)
		}
		firstErr.CompareAndSwap(nil, err.Error())
	}
	var polls sync.WaitGroup
	defer polls.Wait() // after stopPolls
	pctx, stopPolls := context.WithCancel(ctx)
	defer stopPolls()
	// poll is a long-poll client's loop: poll, and poll again at once.
	poll := func(cl *client, started chan<- struct{}) {
		defer polls.Done()
		for pctx.Err() == nil {
			if started != nil {
				close(started)
				started = nil
			}
			if _, err := cl.poll(pctx, 55); err != nil {
				if pctx.Err() != nil {
					return
				}
				pollsFailed.Add(1)
				select {
				case <-pctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			answered.Add(1)
		}
	}
	r, err := measureIdle(ctx, c, out, func() ([]*client, error) {
		conns := make([]*client, c.Conns)
		var done atomic.Int64
		c.prog.set("connecting "+c.Transport, func() string {
			return fmt.Sprintf("%d/%d, %d refused, %d failed", done.Load(), c.Conns, refused.Load(), failed.Load())
		})
		err := parallel(ctx, c.Conns, c.Conc, func(i int) error {
			cl, err := connect(ctx, c.Transport, c.URL, tokens[i/perUser], "")
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				count(err)
				return nil
			}
			if cl.transport == "poll" {
				started := make(chan struct{})
				polls.Add(1)
				go poll(cl, started)
				<-started // its poll is under way before the next opens
			}
			conns[i] = cl
			done.Add(1)
			return nil
		})
		open := conns[:0]
		for _, cl := range conns {
			if cl != nil {
				open = append(open, cl)
			}
		}
		if err != nil {
			closeAll(open)
			return nil, err
		}
		return open, nil
	}, func(conns []*client) { stopPolls(); closeAll(conns) })
	if r == nil {
		return nil, err
	}
	r.Refused, r.ConnectFailed, r.Errors = int(refused.Load()), int(failed.Load()), int(pollsFailed.Load())
	fmt.Fprintf(out, "idle: %d refused (503/429), %d failed to open; %d long-polls failed and %d answered while measuring\n",
		r.Refused, r.ConnectFailed, r.Errors, answered.Load())
	if r.Refused+r.ConnectFailed > 0 {
		return r, fmt.Errorf("%d connections not opened (first: %v)", r.Refused+r.ConnectFailed, firstErr.Load())
	}
	return r, nil
}

// stormDialSpan is how long the storm spreads its members' dials over:
// the window less a tenth of it (at most a second), which is left for the
// handshakes under way. Dials spread over the whole window left the last
// one 2 ms (10 s / 5,000) to be connected within it.
func stormDialSpan(window time.Duration) time.Duration {
	return window - min(time.Second, window/10)
}

// idleSettle is how long idle waits after the last connection opened (a
// long-poll: started its waiting poll) before it reads the RSS: longer
// than the server's 250 ms before it parks a waiting long-poll.
const idleSettle = 3 * time.Second

// measureIdle reads the RSS, opens the connections (open returns those
// open) and reads the RSS again once idle (idleSettle, then settledRSS);
// the figure per connection divides by the connections open.
func measureIdle[T any](ctx context.Context, c config, out io.Writer, open func() ([]T, error), shut func([]T)) (*Result, error) {
	time.Sleep(time.Second)
	before, err := rssKiB(c.PID)
	if err != nil {
		return nil, err
	}
	conns, err := open()
	if err != nil {
		return nil, err
	}
	defer shut(conns)
	c.prog.set("idle", nil)
	time.Sleep(idleSettle)
	after, err := settledRSS(ctx, c.PID, before)
	if err != nil {
		return nil, err
	}
	r := newResult(c, "idle")
	r.Conns, r.Connected, r.RSSBeforeKiB, r.RSSAfterKiB = c.Conns, len(conns), before, after
	r.RSSPerConnKiB = float64(after-before) / float64(max(len(conns), 1))
	fmt.Fprintf(out, "idle: %d %s connections to %s (%d asked), server RSS %d KiB -> %d KiB, %.1f KiB per connection\n",
		len(conns), c.Transport, c.Target, c.Conns, before, after, r.RSSPerConnKiB)
	return r, nil
}

// settledRSS reads the server's RSS once a second until it moves by less
// than 1% of its growth since before (or 256 KiB) from one reading to the
// next, for at most 15 s. Opening thousands of connections is a storm of
// requests (a long-poll client's second poll arrives after it counts as
// connected); read in the middle of it, the RSS holds the storm's garbage
// and varies by half from run to run.
func settledRSS(ctx context.Context, pid, before int) (int, error) {
	prev, err := rssKiB(pid)
	if err != nil {
		return 0, err
	}
	for i := 0; i < 15; i++ {
		select {
		case <-ctx.Done():
			return prev, nil
		case <-time.After(time.Second):
		}
		cur, err := rssKiB(pid)
		if err != nil {
			return 0, err
		}
		d := cur - prev
		if d < 0 {
			d = -d
		}
		prev = cur
		if d <= max(256, (cur-before)/100) {
			break
		}
	}
	return prev, nil
}

// resume takes a cursor, goes away while --events messages are sent, and
// times the catch-up: from the reconnect to the last missed event.
func resume(ctx context.Context, c config, out io.Writer) (*Result, error) {
	names := []string{c.Prefix + "-away", c.Prefix + "-talker"}
	tokens, err := signInAll(ctx, c, names)
	if err != nil {
		return nil, err
	}
	cid, err := makeRoom(ctx, c, tokens[1], names[1:]) // the talker alone, then the other added
	if err != nil {
		return nil, err
	}
	if err := call(ctx, c.URL, "PUT", "/v1/conversations/"+cid+"/members/"+url.PathEscape(names[0]), tokens[1], nil, nil); err != nil {
		return nil, err
	}
	away, err := connect(ctx, c.Transport, c.URL, tokens[0], "")
	if err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond)
	cursor := away.cursor
	away.Close()
	snd, err := newSender(ctx, c, tokens[1])
	if err != nil {
		return nil, err
	}
	defer snd.Close()
	c.prog.set("sending while away", func() string { return fmt.Sprintf("%d/%d acked", snd.acked.Load(), c.Events) })
	text := string(bytes.Repeat([]byte("x"), c.Size))
	for i := 0; i < c.Events; i++ {
		if err := snd.send(ctx, cid, c.Prefix+"r"+strconv.Itoa(i), text); err != nil {
			return nil, err
		}
		if i%1000 == 999 { // keep within the server's queue
			snd.waitAcks(int64(i+1)-2000, time.Minute)
		}
	}
	snd.waitAcks(int64(c.Events), 2*time.Minute)
	// Setup, not the measure: sends a busy server answered unavailable
	// (never applied) go again, with the same client_id.
	for round := 0; round < 5 && snd.acked.Load() < int64(c.Events); round++ {
		refs := snd.takeUnavailable()
		if len(refs) == 0 {
			break
		}
		snd.refused.Add(-int64(len(refs)))
		for _, ref := range refs {
			if err := snd.send(ctx, cid, ref, text); err != nil {
				return nil, err
			}
		}
		snd.waitAcks(int64(c.Events), 2*time.Minute)
	}
	if a := snd.acked.Load(); a != int64(c.Events) {
		return nil, fmt.Errorf("only %d of %d sends acknowledged (%d refused)", a, c.Events, snd.refused.Load())
	}
	var got atomic.Int64
	c.prog.set("resuming", func() string { return fmt.Sprintf("%d/%d events", got.Load(), c.Events) })
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	start := time.Now()
	back, err := connect(rctx, c.Transport, c.URL, tokens[0], cursor)
	if err != nil {
		return nil, err
	}
	defer back.Close()
	for got.Load() < int64(c.Events) {
		lines, err := back.Next(rctx)
		if err != nil {
			break
		}
		for _, l := range lines {
			if bytes.Contains(l, marker) {
				got.Add(1)
			}
		}
	}
	elapsed := time.Since(start)
	r := newResult(c, "resume")
	r.Expected, r.Delivered, r.Missing, r.Seconds = int64(c.Events), got.Load(), int64(c.Events)-got.Load(), elapsed.Seconds()
	fmt.Fprintf(out, "resume: %d missed events over %s: %d received in %v\n", c.Events, c.Transport, got.Load(), elapsed.Round(time.Millisecond))
	if r.Missing != 0 {
		return r, fmt.Errorf("%d of %d missed events never came", r.Missing, c.Events)
	}
	return r, nil
}

// list times GET /v1/conversations for a user in --convs conversations,
// each with a message from someone else, at --rate requests a second.
func list(ctx context.Context, c config, out io.Writer) (*Result, error) {
	names := []string{c.Prefix + "-lister", c.Prefix + "-peer"}
	tokens, err := signInAll(ctx, c, names)
	if err != nil {
		return nil, err
	}
	cids := make([]string, c.Convs)
	var made atomic.Int64
	c.prog.set("creating conversations", func() string { return fmt.Sprintf("%d/%d", made.Load(), c.Convs) })
	if err := parallel(ctx, c.Convs, c.Conc, func(i int) error {
		var conv struct {
			ID string `json:"id"`
		}
		made.Add(1)
		err := call(ctx, c.URL, "POST", "/v1/conversations", tokens[1], map[string]any{"kind": "group", "title": fmt.Sprint("list ", i), "members": []string{names[0]}}, &conv)
		cids[i] = conv.ID
		return err
	}); err != nil {
		return nil, err
	}
	snd, err := newSender(ctx, c, tokens[1])
	if err != nil {
		return nil, err
	}
	defer snd.Close()
	for i, cid := range cids {
		if err := snd.send(ctx, cid, c.Prefix+"m"+strconv.Itoa(i), "unread"); err != nil {
			return nil, err
		}
	}
	snd.waitAcks(int64(c.Convs), time.Minute)
	var first struct {
		Conversations []struct {
			ID     string `json:"id"`
			Unread int    `json:"unread"`
		} `json:"conversations"`
	}
	if err := call(ctx, c.URL, "GET", "/v1/conversations", tokens[0], nil, &first); err != nil {
		return nil, err
	}
	if len(first.Conversations) != c.Convs {
		return nil, fmt.Errorf("the user is in %d conversations, want %d", len(first.Conversations), c.Convs)
	}
	h := newHist()
	var errs atomic.Int64
	var inflight sync.WaitGroup
	c.prog.set("listing", func() string { return fmt.Sprintf("%d requests, %d errors", h.Count(), errs.Load()) })
	start := time.Now()
	n, err := pace(ctx, float64(c.Rate), start, start.Add(c.Duration), func(_ int, due time.Time) error {
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			if err := call(ctx, c.URL, "GET", "/v1/conversations", tokens[0], nil, nil); err != nil {
				errs.Add(1)
				return
			}
			h.Record(time.Since(due))
		}()
		return nil
	})
	inflight.Wait()
	if err != nil {
		return nil, err
	}
	r := newResult(c, "list")
	r.Transport = "" // plain REST
	r.Convs, r.OfferedRate, r.Seconds, r.Errors = c.Convs, float64(c.Rate), c.Duration.Seconds(), int(errs.Load())
	r.Latency = h.Summary()
	if r.Latency == nil {
		return r, errors.New("no request answered")
	}
	l := r.Latency
	fmt.Fprintf(out, "list: GET /v1/conversations for a user in %d conversations, %d requests at %d/s: %d errors, p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms\n",
		c.Convs, n, c.Rate, r.Errors, l.P50, l.P90, l.P99, l.Max)
	if r.Errors > 0 {
		return r, fmt.Errorf("%d requests failed", r.Errors)
	}
	return r, nil
}

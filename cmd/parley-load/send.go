package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// send measures the send path: --rate sends a second, open loop, spread
// over --convs conversations and --senders WebSocket connections (round
// robin over the URLs, so several gateways share the load). It reports the
// acknowledged rate, the send→ack latency and the send→delivered latency
// (each connection is the only member of its conversations, so it hears
// the message.created of its own sends, matched by client_id); a send
// that is refused, never acknowledged or never delivered is an error.
func send(ctx context.Context, c config, out io.Writer) (*Result, error) {
	if c.Rate < 1 || c.Convs < 1 || c.Senders < 1 {
		return nil, errors.New("send mode needs --rate, --convs and --senders of at least 1")
	}
	if c.Senders > c.Convs {
		return nil, errors.New("send mode needs --convs of at least --senders (each conversation has one sender)")
	}
	urls := strings.Split(c.URL, ",")
	tokens := make([]string, c.Senders)
	names := make([]string, c.Senders)
	for i := range tokens {
		names[i] = fmt.Sprintf("send%d", i)
		t, err := signIn(ctx, urls[i%len(urls)], names[i])
		if err != nil {
			return nil, err
		}
		tokens[i] = t
	}
	// Conversation j belongs to sender j mod --senders alone, which sends
	// only to its own: every connection then hears its own sends' events,
	// not everyone's, and the tool stays cheaper than the servers.
	convs := make([]string, c.Convs)
	c.prog.set("creating conversations", nil)
	if err := parallel(ctx, c.Convs, c.Conc, func(j int) error {
		var conv struct {
			ID string `json:"id"`
		}
		k := j % c.Senders
		err := call(ctx, urls[k%len(urls)], "POST", "/v1/conversations", tokens[k], map[string]any{"kind": "group", "title": fmt.Sprint("send ", j), "members": []string{}}, &conv)
		convs[j] = conv.ID
		return err
	}); err != nil {
		return nil, err
	}
	mine := make([][]string, c.Senders)
	for j, cid := range convs {
		mine[j%c.Senders] = append(mine[j%c.Senders], cid)
	}
	for i := range mine {
		if len(mine[i]) == 0 { // more senders than conversations
			mine[i] = []string{convs[i%len(convs)]}
		}
	}
	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	// deliverAt holds the sends whose message.created has not come yet
	// (by client_id).
	deliverAt := map[string]time.Time{}
	lat, dlat := newHist(), newHist()
	var refused, closed []string
	conns := make([]*websocket.Conn, c.Senders)
	var readers sync.WaitGroup
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	for i := range conns {
		cl, err := connect(ctx, "ws", urls[i%len(urls)], tokens[i], "")
		if err != nil {
			return nil, err
		}
		ws := cl.ws
		defer ws.CloseNow()
		conns[i] = ws
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				_, data, err := ws.Read(rctx)
				now := time.Now()
				if err != nil {
					if rctx.Err() == nil {
						mu.Lock()
						closed = append(closed, err.Error())
						mu.Unlock()
					}
					return
				}
				if !strings.Contains(string(data), `"ref"`) && !strings.Contains(string(data), `"message.created"`) {
					continue
				}
				for _, line := range strings.Split(string(data), "\n") {
					var f struct {
						Type    string          `json:"type"`
						Ref     string          `json:"ref"`
						Error   json.RawMessage `json:"error"`
						Message *struct {
							ClientID string `json:"client_id"`
						} `json:"message"`
					}
					if json.Unmarshal([]byte(line), &f) != nil {
						continue
					}
					if f.Type == "message.created" && f.Message != nil {
						mu.Lock()
						if at, ok := deliverAt[f.Message.ClientID]; ok {
							delete(deliverAt, f.Message.ClientID)
							dlat.Record(now.Sub(at))
						}
						mu.Unlock()
						continue
					}
					if f.Ref == "" || (f.Type != "ack" && f.Type != "error") {
						continue
					}
					mu.Lock()
					if at, ok := sentAt[f.Ref]; ok {
						delete(sentAt, f.Ref)
						if f.Type == "ack" {
							lat.Record(now.Sub(at))
						} else {
							refused = append(refused, string(f.Error))
							delete(deliverAt, "c"+f.Ref)
						}
					}
					mu.Unlock()
				}
			}
		}()
	}
	pad := strings.Repeat("x", max(0, c.Size-10))
	total := int(float64(c.Rate) * c.Duration.Seconds())
	start := time.Now()
	var writers sync.WaitGroup
	lanes := make([]chan int, len(conns))
	var writeErr error
	var once sync.Once
	for i := range lanes {
		lanes[i] = make(chan int, 1024)
		writers.Add(1)
		go func() {
			defer writers.Done()
			for n := range lanes[i] {
				ref := strconv.Itoa(n)
				f, _ := json.Marshal(map[string]any{"type": "send", "ref": ref, "conversation_id": mine[i][(n/len(lanes))%len(mine[i])], "client_id": "c" + ref, "text": ref + " " + pad})
				mu.Lock()
				now := time.Now()
				sentAt[ref], deliverAt["c"+ref] = now, now
				mu.Unlock()
				if err := conns[i].Write(ctx, websocket.MessageText, f); err != nil {
					once.Do(func() { writeErr = err })
				}
			}
		}()
	}
	c.prog.set("sending", func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d acked, %d refused, %d waiting", lat.Count(), len(refused), len(sentAt))
	})
	for n := 0; n < total; n++ {
		if d := time.Until(start.Add(time.Duration(n) * time.Second / time.Duration(c.Rate))); d > 0 {
			time.Sleep(d)
		}
		lanes[n%len(lanes)] <- n
	}
	for _, l := range lanes {
		close(l)
	}
	writers.Wait()
	sendTime := time.Since(start)
	// Acks still owed are waited for a while.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		left := len(sentAt) + len(deliverAt)
		mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	rcancel()
	for _, ws := range conns {
		ws.CloseNow()
	}
	readers.Wait()
	if writeErr != nil {
		return nil, writeErr
	}
	mu.Lock()
	defer mu.Unlock()
	r := newResult(c, "send")
	r.Transport = "ws"
	r.Convs, r.Conns, r.OfferedRate, r.Seconds = c.Convs, c.Senders, float64(c.Rate), elapsed.Seconds()
	r.Acked, r.Refused, r.Unacked = int(lat.Count()), len(refused), len(sentAt)
	r.Latency = lat.Summary()
	r.Delivered, r.Missing = dlat.Count(), int64(len(deliverAt))
	r.DeliveredLatency = dlat.Summary()
	if r.Latency == nil {
		return r, errors.New("no send was acknowledged")
	}
	pct := func(v float64) time.Duration {
		return time.Duration(v * float64(time.Millisecond)).Round(time.Millisecond)
	}
	l := r.Latency
	fmt.Fprintf(out, "send: %d sends offered at %d/s over %v to %d conversations via %d connections on %d gateways: %d acknowledged in %v (%.0f/s), ack latency p50 %v p99 %v max %v\n",
		total, c.Rate, sendTime.Round(time.Millisecond), c.Convs, c.Senders, len(urls), r.Acked, elapsed.Round(time.Millisecond),
		float64(r.Acked)/elapsed.Seconds(), pct(l.P50), pct(l.P99), pct(l.Max))
	if d := r.DeliveredLatency; d != nil {
		fmt.Fprintf(out, "send: %d delivered, send→delivered latency p50 %v p99 %v max %v\n", r.Delivered, pct(d.P50), pct(d.P99), pct(d.Max))
	}
	if len(refused) > 0 || len(sentAt) > 0 || len(closed) > 0 || len(deliverAt) > 0 {
		return r, fmt.Errorf("%d sends refused (first: %s), %d never acknowledged, %d acknowledged but never delivered, %d connections closed by the server (first: %s)",
			len(refused), first(refused), len(sentAt), len(deliverAt), len(closed), first(closed))
	}
	return r, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return s[0]
}

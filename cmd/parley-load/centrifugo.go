package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The peer: Centrifugo's JSON client protocol (v2, as Centrifugo v5 and v6
// speak it on /connection/websocket) for the receivers, and its HTTP API
// for publishing, so that the same room scenarios run against both servers.

const cfChannel = "parley-load"

// cfToken is an HS256 connection JWT for user, or "" in insecure mode.
func cfToken(secret, user string) string {
	if secret == "" {
		return ""
	}
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(map[string]any{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
	msg := head + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(mac.Sum(nil))
}

// cfConnect opens a connection as user and, when subscribe is set, joins
// the load channel; it returns once Centrifugo has answered both.
func cfConnect(ctx context.Context, c config, user string, subscribe bool) (*websocket.Conn, error) {
	u := strings.Replace(c.URL, "http", "ws", 1) + "/connection/websocket"
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: streamClient})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(64 << 20)
	conn := map[string]any{"name": "parley-load"}
	if t := cfToken(c.Secret, user); t != "" {
		conn["token"] = t
	}
	cmds := []map[string]any{{"id": 1, "connect": conn}}
	if subscribe {
		cmds = append(cmds, map[string]any{"id": 2, "subscribe": map[string]any{"channel": cfChannel}})
	}
	for _, cmd := range cmds {
		f, _ := json.Marshal(cmd)
		if err := ws.Write(ctx, websocket.MessageText, f); err != nil {
			ws.CloseNow()
			return nil, err
		}
		if err := cfReply(ctx, ws, cmd["id"].(int)); err != nil {
			ws.CloseNow()
			return nil, err
		}
	}
	return ws, nil
}

// cfReply reads until the reply to command id, answering pings meanwhile.
func cfReply(ctx context.Context, ws *websocket.Conn, id int) error {
	want := []byte(`"id":` + strconv.Itoa(id) + `,`)
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			if string(l) == "{}" { // a ping
				if err := ws.Write(ctx, websocket.MessageText, l); err != nil {
					return err
				}
				continue
			}
			if bytes.Contains(l, want) {
				if bytes.Contains(l, []byte(`"error"`)) {
					return fmt.Errorf("centrifugo refused command %d: %s", id, l)
				}
				return nil
			}
		}
	}
}

// cfRead reads frames until ctx ends, answering pings ({}) with pongs and
// handing each publication to onPub.
func cfRead(ctx context.Context, ws *websocket.Conn, onPub func(line []byte, at time.Time) bool) {
	for {
		_, data, err := ws.Read(ctx)
		now := time.Now()
		if err != nil {
			return
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			if string(l) == "{}" { // a ping
				_ = ws.Write(ctx, websocket.MessageText, []byte("{}"))
				continue
			}
			if bytes.Contains(l, []byte(`"pub":`)) && onPub(l, now) {
				return
			}
		}
	}
}

func cfPublish(ctx context.Context, c config, data any) error {
	b, _ := json.Marshal(map[string]any{"channel": cfChannel, "data": data})
	req, err := http.NewRequestWithContext(ctx, "POST", c.URL+"/api/publish", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", c.APIKey)
	res, err := restClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || bytes.Contains(raw, []byte(`"error"`)) {
		return fmt.Errorf("publish: %d %s", res.StatusCode, raw)
	}
	return nil
}

// cfRoom connects --members subscribers to the load channel (for the
// scenarios that publish, hence the API key).
func cfRoom(ctx context.Context, c config) ([]*websocket.Conn, error) {
	if c.APIKey == "" {
		return nil, errors.New("--target centrifugo needs --api-key")
	}
	conns := make([]*websocket.Conn, c.Members)
	var done atomic.Int64
	c.prog.set("connecting to centrifugo", func() string { return fmt.Sprintf("%d/%d", done.Load(), c.Members) })
	err := parallel(ctx, c.Members, c.Conc, func(i int) error {
		ws, err := cfConnect(ctx, c, fmt.Sprintf("%s-%d", c.Prefix, i), true)
		conns[i] = ws
		done.Add(1)
		return err
	})
	if err != nil {
		cfCloseAll(conns)
	}
	return conns, err
}

func cfCloseAll(conns []*websocket.Conn) {
	for _, ws := range conns {
		if ws != nil {
			ws.CloseNow()
		}
	}
}

// cfPublishers runs publishes from a queue on a few HTTP connections, as a
// backend would; it returns the queue and a wait for the queue's end.
func cfPublishers(ctx context.Context, c config, failed *atomic.Int64, firstErr *atomic.Value) (chan any, func()) {
	q := make(chan any, 1<<16)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range q {
				if err := cfPublish(ctx, c, d); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	return q, func() { close(q); wg.Wait() }
}

// cfBurst is burst against Centrifugo: --members subscribers of one
// channel, --messages publications of --size bytes, every delivery counted.
func cfBurst(ctx context.Context, c config, out io.Writer) (*Result, error) {
	conns, err := cfRoom(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cfCloseAll(conns)
	want := int64(c.Members) * int64(c.Messages)
	var got, last, failed atomic.Int64
	var firstErr atomic.Value
	per := make([]int64, len(conns))
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var wg sync.WaitGroup
	for i, ws := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfRead(rctx, ws, func([]byte, time.Time) bool {
				per[i]++
				got.Add(1)
				last.Store(time.Now().UnixNano())
				return per[i] >= int64(c.Messages)
			})
		}()
	}
	c.prog.set("burst", func() string {
		return fmt.Sprintf("%d/%d deliveries, %d publishes failed", got.Load(), want, failed.Load())
	})
	text := strings.Repeat("x", c.Size)
	meter := startSyscalls(c.PID)
	start := time.Now()
	q, wait := cfPublishers(ctx, c, &failed, &firstErr)
	for i := 0; i < c.Messages; i++ {
		q <- map[string]any{"text": text, "n": i}
	}
	wait()
	waitDelivered(ctx, c, &got, want-failed.Load()*int64(c.Members))
	rcancel()
	wg.Wait()
	r := newResult(c, "burst")
	r.Members, r.Messages, r.Expected, r.Delivered, r.Missing = c.Members, c.Messages, want, got.Load(), want-got.Load()
	r.Refused = int(failed.Load())
	for _, n := range per {
		if n == 0 {
			r.SilentConns++
		}
	}
	if elapsed := time.Duration(last.Load() - start.UnixNano()); elapsed > 0 {
		r.Seconds, r.DeliveriesPer = elapsed.Seconds(), float64(got.Load())/elapsed.Seconds()
	}
	meter.stop(r)
	fmt.Fprintf(out, "burst: centrifugo, %d subscribers x %d publications of %d bytes: %d/%d deliveries in %.3fs = %.0f deliveries/s; %d missing, %d connections got none, %d publishes failed\n",
		c.Members, c.Messages, c.Size, got.Load(), want, r.Seconds, r.DeliveriesPer, r.Missing, r.SilentConns, r.Refused)
	if r.Missing != 0 {
		return r, fmt.Errorf("lost deliveries: %d of %d arrived (first publish error: %v)", got.Load(), want, firstErr.Load())
	}
	return r, nil
}

// cfLatency is latency against Centrifugo: publications due at a fixed
// rate, each delivery timed from when its publish was due.
func cfLatency(ctx context.Context, c config, out io.Writer) (*Result, error) {
	conns, err := cfRoom(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cfCloseAll(conns)
	msgRate := max(1, float64(c.Rate)/float64(c.Members))
	h := newHist()
	var got, failed atomic.Int64
	var firstErr atomic.Value
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var wg sync.WaitGroup
	for _, ws := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfRead(rctx, ws, func(l []byte, at time.Time) bool {
				if due, ok := stamped(l); ok {
					h.Record(at.Sub(due))
					got.Add(1)
				}
				return false
			})
		}()
	}
	c.prog.set("latency", func() string { return fmt.Sprintf("%d deliveries, %d publishes failed", got.Load(), failed.Load()) })
	q, wait := cfPublishers(ctx, c, &failed, &firstErr)
	meter := startSyscalls(c.PID)
	start := time.Now()
	n, err := pace(ctx, msgRate, start, start.Add(c.Duration), func(i int, due time.Time) error {
		q <- map[string]any{"text": stamp(due, c.Size)}
		return nil
	})
	wait()
	if err != nil {
		return nil, err
	}
	want := int64(n) * int64(c.Members)
	waitDelivered(ctx, c, &got, want-failed.Load()*int64(c.Members))
	rcancel()
	wg.Wait()
	r := newResult(c, "latency")
	r.Members, r.Messages, r.OfferedRate, r.Seconds = c.Members, n, msgRate*float64(c.Members), c.Duration.Seconds()
	r.Expected, r.Delivered, r.Missing, r.Refused = want, got.Load(), want-got.Load(), int(failed.Load())
	r.Latency = h.Summary()
	meter.stop(r)
	l := r.Latency
	if l == nil {
		return r, fmt.Errorf("no deliveries (first publish error: %v)", firstErr.Load())
	}
	fmt.Fprintf(out, "latency: centrifugo, %d subscribers, %.0f msg/s (%.0f deliveries/s) for %v: %d/%d deliveries, p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms\n",
		c.Members, msgRate, r.OfferedRate, c.Duration, r.Delivered, want, l.P50, l.P90, l.P99, l.P999, l.Max)
	if r.Missing != 0 {
		return r, fmt.Errorf("%d deliveries missing, %d publishes failed", r.Missing, r.Refused)
	}
	return r, nil
}

// cfIdle is idle against Centrifugo: --conns connected clients (no
// subscription), RSS per connection of --pid.
func cfIdle(ctx context.Context, c config, out io.Writer) (*Result, error) {
	if c.PID == 0 {
		return nil, errors.New("idle mode needs --pid of the server")
	}
	return measureIdle(ctx, c, out, func() ([]*websocket.Conn, error) {
		conns := make([]*websocket.Conn, c.Conns)
		var done atomic.Int64
		c.prog.set("connecting to centrifugo", func() string { return fmt.Sprintf("%d/%d", done.Load(), c.Conns) })
		err := parallel(ctx, c.Conns, c.Conc, func(i int) error {
			ws, err := cfConnect(ctx, c, fmt.Sprintf("%s-%d", c.Prefix, i/20), false)
			conns[i] = ws
			done.Add(1)
			if err == nil {
				go cfRead(ctx, ws, func([]byte, time.Time) bool { return false })
			}
			return err
		})
		if err != nil {
			cfCloseAll(conns)
		}
		return conns, err
	}, cfCloseAll)
}

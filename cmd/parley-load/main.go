// Command parley-load measures a running Parley server from the outside:
// idle WebSocket memory, burst delivery throughput and send→deliver
// latency. Every request goes to the --url given (loopback in practice);
// each mode is bounded in count and time and stops by itself.
//
//	parley-load -mode idle    -conns 5000 -pid $(pgrep parley)
//	parley-load -mode burst   -members 1000 -messages 600
//	parley-load -mode latency -members 100 -rate 20000 -duration 10s
//	parley-load -mode send    -convs 8 -rate 2000 -duration 10s -url http://a,http://b
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "parley-load:", err)
		os.Exit(1)
	}
}

type config struct {
	URL      string
	Mode     string
	Conns    int
	PID      int
	Members  int
	Messages int
	Rate     int
	Duration time.Duration
	Size     int
	Convs    int
	Senders  int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("parley-load", flag.ContinueOnError)
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "server URL (dev sign-in must be on)")
	fs.StringVar(&c.Mode, "mode", "burst", "idle, burst, latency or send")
	fs.IntVar(&c.Conns, "conns", 2000, "idle: WebSocket connections to open")
	fs.IntVar(&c.PID, "pid", 0, "idle: server process id, to read its RSS")
	fs.IntVar(&c.Members, "members", 500, "burst/latency: members of the conversation, one connection each")
	fs.IntVar(&c.Messages, "messages", 400, "burst: messages to send")
	fs.IntVar(&c.Rate, "rate", 20000, "latency: target deliveries per second; send: target sends per second")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "latency/send: how long to send")
	fs.IntVar(&c.Convs, "convs", 8, "send: conversations the sends are spread over")
	fs.IntVar(&c.Senders, "senders", 8, "send: WebSocket connections sending, spread over the URLs")
	fs.IntVar(&c.Size, "size", 100, "message text size in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, one := range strings.Split(c.URL, ",") {
		u, err := url.Parse(one)
		if err != nil || u.Host == "" {
			return fmt.Errorf("bad --url %q", one)
		}
	}
	if c.Mode != "send" && strings.Contains(c.URL, ",") {
		return errors.New("only --mode send takes several URLs")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	switch c.Mode {
	case "idle":
		return idle(ctx, c, out)
	case "burst":
		return burst(ctx, c, out)
	case "latency":
		return latency(ctx, c, out)
	case "send":
		return send(ctx, c, out)
	}
	return fmt.Errorf("unknown mode %q", c.Mode)
}

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func call(ctx context.Context, base, method, path, token string, body any, into any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	if into != nil {
		return json.Unmarshal(raw, into)
	}
	return nil
}

func signIn(ctx context.Context, base, user string) (string, error) {
	var r struct {
		Token string `json:"token"`
	}
	err := call(ctx, base, "POST", "/v1/auth/dev", "", map[string]string{"user_id": user}, &r)
	return r.Token, err
}

func dial(ctx context.Context, base, token string) (*websocket.Conn, error) {
	u := strings.Replace(base, "http", "ws", 1) + "/v1/ws?access_token=" + url.QueryEscape(token)
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{"parley.v1"}})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(64 << 20)
	// An immediate hello spares the server's wait for one.
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"hello"}`)); err != nil {
		return nil, err
	}
	// Wait for ready.
	if _, _, err := c.Read(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return 0, errors.New("no VmRSS")
}

func idle(ctx context.Context, c config, out io.Writer) error {
	if c.PID == 0 {
		return errors.New("idle mode needs --pid of the server")
	}
	const perUser = 20
	users := (c.Conns + perUser - 1) / perUser
	tokens := make([]string, users)
	for i := range tokens {
		t, err := signIn(ctx, c.URL, fmt.Sprintf("idle%d", i))
		if err != nil {
			return err
		}
		tokens[i] = t
	}
	time.Sleep(500 * time.Millisecond)
	before, err := rssKiB(c.PID)
	if err != nil {
		return err
	}
	conns := make([]*websocket.Conn, 0, c.Conns)
	defer func() {
		for _, ws := range conns {
			ws.CloseNow()
		}
	}()
	for i := 0; i < c.Conns; i++ {
		ws, err := dial(ctx, c.URL, tokens[i/perUser])
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, ws)
	}
	time.Sleep(2 * time.Second)
	after, err := rssKiB(c.PID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "idle: %d WebSocket connections, server RSS %d KiB -> %d KiB, %.1f KiB per connection\n",
		c.Conns, before, after, float64(after-before)/float64(c.Conns))
	return nil
}

// room signs in members, creates one conversation and connects everyone.
func room(ctx context.Context, c config, prefix string) (string, []string, []*websocket.Conn, error) {
	tokens := make([]string, c.Members)
	names := make([]string, c.Members)
	for i := range tokens {
		names[i] = fmt.Sprintf("%s%d", prefix, i)
		t, err := signIn(ctx, c.URL, names[i])
		if err != nil {
			return "", nil, nil, err
		}
		tokens[i] = t
	}
	var conv struct {
		ID string `json:"id"`
	}
	if err := call(ctx, c.URL, "POST", "/v1/conversations", tokens[0], map[string]any{"kind": "group", "title": "load", "members": names[1:min(len(names), 250)]}, &conv); err != nil {
		return "", nil, nil, err
	}
	for _, n := range names[min(len(names), 250):] {
		if err := call(ctx, c.URL, "PUT", "/v1/conversations/"+conv.ID+"/members/"+n, tokens[0], nil, nil); err != nil {
			return "", nil, nil, err
		}
	}
	conns := make([]*websocket.Conn, c.Members)
	for i := range conns {
		ws, err := dial(ctx, c.URL, tokens[i])
		if err != nil {
			return "", nil, nil, err
		}
		conns[i] = ws
	}
	return conv.ID, tokens, conns, nil
}

var marker = []byte(`"type":"message.created"`)

func burst(ctx context.Context, c config, out io.Writer) error {
	cid, tokens, conns, err := room(ctx, c, "burst")
	if err != nil {
		return err
	}
	want := int64(c.Members) * int64(c.Messages)
	var got atomic.Int64
	var last atomic.Int64
	var wg sync.WaitGroup
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	for _, ws := range conns {
		wg.Add(1)
		go func(ws *websocket.Conn) {
			defer wg.Done()
			defer ws.CloseNow()
			mine := int64(0)
			for mine < int64(c.Messages) {
				_, data, err := ws.Read(rctx)
				if err != nil {
					return
				}
				n := int64(bytes.Count(data, marker))
				mine += n
				got.Add(n)
				last.Store(time.Now().UnixNano())
			}
		}(ws)
	}
	sender, err := dial(ctx, c.URL, tokens[0])
	if err != nil {
		return err
	}
	defer sender.CloseNow()
	text := strings.Repeat("x", c.Size)
	start := time.Now()
	for i := 0; i < c.Messages; i++ {
		f, _ := json.Marshal(map[string]any{"type": "send", "ref": strconv.Itoa(i), "conversation_id": cid, "client_id": fmt.Sprint("b", i), "text": text})
		if err := sender.Write(ctx, websocket.MessageText, f); err != nil {
			return err
		}
	}
	go func() { // drain acks
		for {
			if _, _, err := sender.Read(rctx); err != nil {
				return
			}
		}
	}()
	wg.Wait()
	elapsed := time.Duration(last.Load() - start.UnixNano())
	fmt.Fprintf(out, "burst: %d members x %d messages of %d bytes: %d/%d deliveries in %v = %.0f deliveries/s\n",
		c.Members, c.Messages, c.Size, got.Load(), want, elapsed.Round(time.Millisecond), float64(got.Load())/elapsed.Seconds())
	if got.Load() != want {
		return fmt.Errorf("lost deliveries: %d of %d", got.Load(), want)
	}
	return nil
}

func latency(ctx context.Context, c config, out io.Writer) error {
	cid, tokens, conns, err := room(ctx, c, "lat")
	if err != nil {
		return err
	}
	msgRate := max(1, c.Rate/c.Members)
	total := int(float64(msgRate) * c.Duration.Seconds())
	var mu sync.Mutex
	lat := make([]time.Duration, 0, total*c.Members)
	var wg sync.WaitGroup
	rctx, rcancel := context.WithTimeout(ctx, c.Duration+time.Minute)
	defer rcancel()
	for _, ws := range conns {
		wg.Add(1)
		go func(ws *websocket.Conn) {
			defer wg.Done()
			defer ws.CloseNow()
			seen := 0
			for seen < total {
				_, data, err := ws.Read(rctx)
				now := time.Now().UnixNano()
				if err != nil {
					return
				}
				for _, line := range bytes.Split(data, []byte("\n")) {
					i := bytes.Index(line, []byte(`"text":"t`))
					if i < 0 {
						continue
					}
					rest := line[i+9:]
					j := bytes.IndexByte(rest, '-')
					sent, err := strconv.ParseInt(string(rest[:j]), 10, 64)
					if err != nil {
						continue
					}
					seen++
					mu.Lock()
					lat = append(lat, time.Duration(now-sent))
					mu.Unlock()
				}
			}
		}(ws)
	}
	sender, err := dial(ctx, c.URL, tokens[0])
	if err != nil {
		return err
	}
	defer sender.CloseNow()
	go func() {
		for {
			if _, _, err := sender.Read(rctx); err != nil {
				return
			}
		}
	}()
	pad := strings.Repeat("x", max(0, c.Size-25))
	tick := time.NewTicker(time.Second / time.Duration(msgRate))
	defer tick.Stop()
	for i := 0; i < total; i++ {
		<-tick.C
		f, _ := json.Marshal(map[string]any{"type": "send", "ref": strconv.Itoa(i), "conversation_id": cid, "client_id": fmt.Sprint("l", i), "text": fmt.Sprintf("t%d-%s", time.Now().UnixNano(), pad)})
		if err := sender.Write(ctx, websocket.MessageText, f); err != nil {
			return err
		}
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		return errors.New("no deliveries")
	}
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Fprintf(out, "latency: %d members, %d msg/s (%d deliveries/s) for %v: %d deliveries, p50 %v p99 %v max %v\n",
		c.Members, msgRate, msgRate*c.Members, c.Duration, len(lat), pct(0.50), pct(0.99), lat[len(lat)-1])
	return nil
}

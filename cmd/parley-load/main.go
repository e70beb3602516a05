// Command parley-load is Parley's benchmark tool. It measures a running
// server from the outside, over WebSocket, SSE or long-poll (--transport),
// and speaks Centrifugo's JSON client protocol too (--target centrifugo), so
// that both can be measured in one run. Every request goes to the --url
// given (loopback in practice); each mode is bounded in count and time and
// stops by itself.
//
//	parley-load -mode burst   -members 5000 -messages 100        deliveries/s in one room, every delivery counted
//	parley-load -mode latency -members 100 -rate 20000 -duration 10s   send→delivered at a fixed rate, open loop
//	parley-load -mode storm   -members 5000 -window 10s          members connect while a small room is timed
//	parley-load -mode idle    -conns 19000 -pid $(pgrep parley)  RSS per idle connection
//	parley-load -mode resume  -events 10000                      time to catch up on missed events
//	parley-load -mode list    -convs 1000 -rate 50 -duration 5s  GET /v1/conversations latency
//	parley-load -mode send    -convs 8 -rate 2000 -duration 10s -url http://a,http://b
//
// Latencies are kept in an HDR histogram and reported as p50, p90, p99,
// p99.9 and max; a progress line goes to stderr, a table to stdout and the
// figures to --json FILE. Client sockets are spread over --sources
// addresses 127.0.0.1 … 127.0.0.N so that tens of thousands of connections
// do not run out of ephemeral ports.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "parley-load:", err)
		os.Exit(1)
	}
}

type config struct {
	URL       string
	Mode      string
	Target    string
	Transport string
	Conns     int
	PID       int
	Members   int
	Messages  int
	Rate      int
	Duration  time.Duration
	Size      int
	Convs     int
	Senders   int
	Events    int
	Window    time.Duration
	Small     int
	SmallRate int
	Conc      int
	Stall     time.Duration
	APIKey    string
	Secret    string
	JSON      string
	Quiet     bool
	Prefix    string
	Proto     bool

	command string
	prog    *progress
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	var srcs int
	fs := flag.NewFlagSet("parley-load", flag.ContinueOnError)
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "server URL (Parley: dev sign-in must be on)")
	fs.StringVar(&c.Mode, "mode", "burst", "burst, latency, storm, idle, resume, list or send")
	fs.StringVar(&c.Target, "target", "parley", "parley, or centrifugo (burst, latency and idle)")
	fs.StringVar(&c.Transport, "transport", "ws", "receiving transport: ws, sse or poll (sends always go over WebSocket)")
	fs.BoolVar(&c.Proto, "proto", false, "WebSocket receivers speak parley.v1+proto (Protocol Buffers) instead of JSON")
	fs.IntVar(&c.Conns, "conns", 2000, "idle: connections to open (RSS read once every one is open, a long-poll in its waiting poll, 3 s after the last and once the RSS settles; divided by those open, refused and failed ones reported)")
	fs.IntVar(&c.PID, "pid", 0, "server process id: idle reads its RSS (required); burst and latency its write system calls per delivery")
	fs.IntVar(&c.Members, "members", 500, "burst/latency/storm: members of the room, one connection each")
	fs.IntVar(&c.Messages, "messages", 400, "burst: messages to send")
	fs.IntVar(&c.Rate, "rate", 20000, "latency: deliveries per second; send: sends per second; list: requests per second (default 50)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "latency/send/list: how long to offer load")
	fs.IntVar(&c.Convs, "convs", 8, "send: conversations the sends are spread over; list: conversations of the user")
	fs.IntVar(&c.Senders, "senders", 8, "send: WebSocket connections sending, spread over the URLs")
	fs.IntVar(&c.Events, "events", 10000, "resume: events missed while away")
	fs.DurationVar(&c.Window, "window", 10*time.Second, "storm: the members connect within this window (dialled evenly over all of it but its last tenth, at most 1 s)")
	fs.IntVar(&c.Small, "small", 10, "storm: members of the conversation timed meanwhile")
	fs.IntVar(&c.SmallRate, "small-rate", 50, "storm: messages per second in that conversation")
	fs.IntVar(&c.Conc, "conc", 64, "setup: concurrent sign-ins, requests and dials")
	fs.DurationVar(&c.Stall, "stall", 10*time.Second, "burst/latency: stop waiting after this long without a delivery")
	fs.IntVar(&c.Size, "size", 100, "message text size in bytes")
	fs.IntVar(&srcs, "sources", 8, "spread client sockets over 127.0.0.1 … 127.0.0.N (1: the kernel picks)")
	fs.StringVar(&c.APIKey, "api-key", "", "centrifugo: HTTP API key")
	fs.StringVar(&c.Secret, "hmac-secret", "", "centrifugo: HS256 secret for connection tokens (none: insecure mode)")
	fs.StringVar(&c.JSON, "json", "", "write the figures to this file as JSON")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress line on stderr")
	fs.StringVar(&c.Prefix, "prefix", "", "user id prefix (default: one per run, so runs against one server do not collide)")
	var cpuProfile string
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write the load tool's own CPU profile to this file (what the clients cost)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rateSet := false
	fs.Visit(func(f *flag.Flag) { rateSet = rateSet || f.Name == "rate" })
	if c.Mode == "list" && !rateSet {
		c.Rate = 50
	}
	if c.Prefix == "" {
		c.Prefix = fmt.Sprintf("r%x", time.Now().UnixNano()%0xffffff)
	}
	c.command = joinArgs(args)
	sources.Store(int32(max(1, min(srcs, 254))))
	for _, one := range strings.Split(c.URL, ",") {
		u, err := url.Parse(one)
		if err != nil || u.Host == "" {
			return fmt.Errorf("bad --url %q", one)
		}
	}
	if c.Mode != "send" && strings.Contains(c.URL, ",") {
		return errors.New("only --mode send takes several URLs")
	}
	switch c.Transport {
	case "ws", "sse", "poll":
	default:
		return fmt.Errorf("unknown --transport %q (ws, sse or poll)", c.Transport)
	}
	if c.Proto {
		if c.Transport != "ws" || c.Target != "parley" {
			return errors.New("--proto is for Parley's WebSocket receivers (--transport ws)")
		}
		c.Transport = "wsproto"
	}
	if c.Conc < 1 || c.Members < 1 || c.Size < 1 {
		return errors.New("--conc, --members and --size must be at least 1")
	}
	var scenario func(context.Context, config, io.Writer) (*Result, error)
	switch c.Target {
	case "parley":
		scenario = map[string]func(context.Context, config, io.Writer) (*Result, error){
			"idle": idle, "burst": burst, "latency": latency, "send": send,
			"storm": storm, "resume": resume, "list": list,
		}[c.Mode]
	case "centrifugo":
		c.Transport = "ws"
		scenario = map[string]func(context.Context, config, io.Writer) (*Result, error){
			"idle": cfIdle, "burst": cfBurst, "latency": cfLatency,
		}[c.Mode]
	default:
		return fmt.Errorf("unknown --target %q (parley or centrifugo)", c.Target)
	}
	if scenario == nil {
		return fmt.Errorf("unknown mode %q for --target %s", c.Mode, c.Target)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	c.prog = startProgress(c.Quiet)
	r, err := scenario(ctx, c, out)
	c.prog.Stop()
	if r == nil {
		return err
	}
	if err != nil {
		r.Error = err.Error()
	}
	fmt.Fprintln(out)
	printTable(out, []*Result{r})
	if c.JSON != "" {
		if werr := writeJSON(c.JSON, []*Result{r}); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

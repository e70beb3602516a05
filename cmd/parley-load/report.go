package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// hist is a concurrency-safe HDR histogram of durations, kept in
// microseconds from 1 µs to 10 minutes with 3 significant digits.
type hist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newHist() *hist { return &hist{h: hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)} }

func (h *hist) Record(d time.Duration) {
	us := max(1, d.Microseconds())
	h.mu.Lock()
	_ = h.h.RecordValue(min(us, h.h.HighestTrackableValue()))
	h.mu.Unlock()
}

func (h *hist) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.TotalCount()
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *hist) Summary() *Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return nil
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return &Summary{Count: h.h.TotalCount(), P50: ms(h.h.ValueAtQuantile(50)), P90: ms(h.h.ValueAtQuantile(90)),
		P99: ms(h.h.ValueAtQuantile(99)), P999: ms(h.h.ValueAtQuantile(99.9)), Max: ms(h.h.Max())}
}

// Result is one scenario's figures, as written to --json. Fields that do
// not apply to a scenario are left out.
type Result struct {
	Scenario  string `json:"scenario"`
	Target    string `json:"target"` // parley or centrifugo
	Transport string `json:"transport,omitempty"`
	Command   string `json:"command"`
	At        string `json:"at"`
	Error     string `json:"error,omitempty"`

	Members     int     `json:"members,omitempty"`
	Messages    int     `json:"messages,omitempty"`
	Conns       int     `json:"conns,omitempty"`
	Convs       int     `json:"convs,omitempty"`
	OfferedRate float64 `json:"offered_per_s,omitempty"` // deliveries/s (latency), sends/s (send), requests/s (list), connects/s (storm)
	Seconds     float64 `json:"seconds,omitempty"`       // the measured phase's length

	Expected      int64   `json:"expected,omitempty"`
	Delivered     int64   `json:"delivered,omitempty"`
	Missing       int64   `json:"missing,omitempty"`
	SilentConns   int     `json:"silent_conns,omitempty"` // connections that received none
	DeliveriesPer float64 `json:"deliveries_per_s,omitempty"`

	Latency  *Summary `json:"latency,omitempty"`  // send→delivered, send→ack or request time
	Baseline *Summary `json:"baseline,omitempty"` // storm: the small room before the storm
	// DeliveredLatency is send→delivered in the send scenario (Latency
	// is its send→ack there).
	DeliveredLatency *Summary `json:"delivered_latency,omitempty"`

	Connected      int     `json:"connected,omitempty"`
	ConnectFailed  int     `json:"connect_failed,omitempty"`
	ConnectSeconds float64 `json:"connect_seconds,omitempty"`

	RSSBeforeKiB  int     `json:"rss_before_kib,omitempty"`
	RSSAfterKiB   int     `json:"rss_after_kib,omitempty"`
	RSSPerConnKiB float64 `json:"rss_per_conn_kib,omitempty"`

	WriteSyscalls     int64   `json:"write_syscalls,omitempty"` // the server's, over the phase (--pid)
	WritesPerDelivery float64 `json:"write_syscalls_per_delivery,omitempty"`
	ServerCPUSeconds  float64 `json:"server_cpu_seconds,omitempty"` // the server's user+system time over the phase (--pid)
	CPUPerDeliveryNs  float64 `json:"server_cpu_ns_per_delivery,omitempty"`

	Acked   int `json:"acked,omitempty"`
	Refused int `json:"refused,omitempty"`
	Unacked int `json:"unacked,omitempty"`
	Errors  int `json:"errors,omitempty"`
}

func newResult(c config, scenario string) *Result {
	return &Result{Scenario: scenario, Target: c.Target, Transport: c.Transport, Command: c.command,
		At: time.Now().UTC().Format(time.RFC3339)}
}

// figure is the headline of a result, for the table.
func (r *Result) figure() string {
	f := r.headline()
	if r.WritesPerDelivery != 0 {
		f += fmt.Sprintf(", %.2f write syscalls/delivery", r.WritesPerDelivery)
	}
	return f
}

func (r *Result) headline() string {
	switch {
	case r.RSSPerConnKiB != 0:
		return fmt.Sprintf("%.1f KiB/conn", r.RSSPerConnKiB)
	case r.DeliveriesPer != 0 && r.Scenario == "burst":
		return fmt.Sprintf("%.0f deliveries/s, %d missing", r.DeliveriesPer, r.Missing)
	case r.Scenario == "storm":
		return fmt.Sprintf("%d/%d connected in %.1f s", r.Connected, r.Members, r.ConnectSeconds)
	case r.Scenario == "resume":
		return fmt.Sprintf("%d events in %.3f s", r.Delivered, r.Seconds)
	case r.Scenario == "send":
		return fmt.Sprintf("%d acked (%.0f/s), %d refused, %d unacked", r.Acked, float64(r.Acked)/max(r.Seconds, 1e-9), r.Refused, r.Unacked)
	case r.Scenario == "latency":
		return fmt.Sprintf("%.0f deliveries/s offered, %d missing", r.OfferedRate, r.Missing)
	case r.Scenario == "list":
		return fmt.Sprintf("%d requests, %d errors", r.Latency.count(), r.Errors)
	}
	return ""
}

func (s *Summary) count() int64 {
	if s == nil {
		return 0
	}
	return s.Count
}

// printTable writes the human table of the results.
func printTable(out io.Writer, rs []*Result) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\ttarget\ttransport\tfigure\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	for _, r := range rs {
		if l := r.Latency; l != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.Scenario, r.Target, dash(r.Transport), r.figure(), l.P50, l.P90, l.P99, l.P999, l.Max)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t\n", r.Scenario, r.Target, dash(r.Transport), r.figure())
		}
		if r.Baseline != nil {
			b := r.Baseline
			fmt.Fprintf(tw, "  (before)\t\t\tquiet baseline\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", b.P50, b.P90, b.P99, b.P999, b.Max)
		}
		if r.Error != "" {
			fmt.Fprintf(tw, "  error:\t%s\t\t\t\t\t\t\t\t\n", r.Error)
		}
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(path string, rs []*Result) error {
	b, err := json.MarshalIndent(map[string]any{"results": rs}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// progress prints a status line on stderr every second while a scenario
// runs: rewritten in place on a terminal, one line every 5 s otherwise.
type progress struct {
	state atomic.Pointer[phase]
	stop  chan struct{}
	done  chan struct{}
}

func startProgress(quiet bool) *progress {
	p := &progress{stop: make(chan struct{}), done: make(chan struct{})}
	p.set("setup", nil)
	if quiet {
		close(p.done)
		return p
	}
	tty := false
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		tty = true
	}
	go func() {
		defer close(p.done)
		every := 5 * time.Second
		if tty {
			every = time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-p.stop:
				if tty {
					fmt.Fprint(os.Stderr, "\r\033[K")
				}
				return
			case <-t.C:
				st := p.state.Load()
				line := fmt.Sprintf("[%5.1fs] %s", time.Since(start).Seconds(), st.name)
				if st.count != nil {
					line += ": " + st.count()
				}
				if tty {
					fmt.Fprint(os.Stderr, "\r\033[K"+line)
				} else {
					fmt.Fprintln(os.Stderr, line)
				}
			}
		}
	}()
	return p
}

type phase struct {
	name  string
	count func() string
}

// set names the phase and the counter shown with it (count may be nil).
func (p *progress) set(name string, count func() string) {
	p.state.Store(&phase{name, count})
}

func (p *progress) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func joinArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \"'$") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return "parley-load " + strings.Join(q, " ")
}

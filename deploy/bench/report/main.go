// Command report turns a run of deploy/bench/run into BENCHMARKS.md and a
// PNG plot of latency against load. It reads the directory the run left:
// one NAME.json per parley-load run (as written by its --json), the
// commands in commands.tsv, the machine in machine.txt and, when present,
// the `go test -bench` output in gobench.txt.
//
//	go run . -in /tmp/parley-bench.X -md ../../../BENCHMARKS.md -png ../../../docs/benchmarks/latency.png
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Result mirrors the JSON of cmd/parley-load (only the fields used here).
type Result struct {
	Scenario          string   `json:"scenario"`
	Target            string   `json:"target"`
	Transport         string   `json:"transport"`
	Command           string   `json:"command"`
	Error             string   `json:"error"`
	Members           int      `json:"members"`
	Messages          int      `json:"messages"`
	Conns             int      `json:"conns"`
	Convs             int      `json:"convs"`
	OfferedRate       float64  `json:"offered_per_s"`
	Seconds           float64  `json:"seconds"`
	Expected          int64    `json:"expected"`
	Delivered         int64    `json:"delivered"`
	Missing           int64    `json:"missing"`
	SilentConns       int      `json:"silent_conns"`
	DeliveriesPer     float64  `json:"deliveries_per_s"`
	Latency           *Summary `json:"latency"`
	Baseline          *Summary `json:"baseline"`
	Connected         int      `json:"connected"`
	ConnectFailed     int      `json:"connect_failed"`
	ConnectSeconds    float64  `json:"connect_seconds"`
	RSSPerConnKiB     float64  `json:"rss_per_conn_kib"`
	WritesPerDelivery float64  `json:"write_syscalls_per_delivery"`
	Acked             int      `json:"acked"`
	Refused           int      `json:"refused"`
	Unacked           int      `json:"unacked"`
	Errors            int      `json:"errors"`
}

type Summary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func main() {
	in := flag.String("in", "", "the run's output directory")
	md := flag.String("md", "BENCHMARKS.md", "Markdown report to write")
	png := flag.String("png", "latency.png", "plot to write")
	link := flag.String("png-link", "", "the plot's path as the report links it (default: -png)")
	flag.Parse()
	if *link == "" {
		*link = *png
	}
	if err := report(*in, *md, *png, *link); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

type run struct {
	results  map[string]*Result
	order    []string // step names in the order they ran
	commands map[string]string
	machine  map[string]string
}

func load(dir string) (*run, error) {
	r := &run{results: map[string]*Result{}, commands: map[string]string{}, machine: map[string]string{}}
	f, err := os.Open(filepath.Join(dir, "commands.tsv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, cmd, ok := strings.Cut(sc.Text(), "\t")
		if ok {
			r.order = append(r.order, name)
			r.commands[name] = cmd
		}
	}
	for _, name := range r.order {
		raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			continue // the run failed before it had figures; its .err says why
		}
		var doc struct {
			Results []*Result `json:"results"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Results) == 0 {
			return nil, fmt.Errorf("%s.json: %v", name, err)
		}
		r.results[name] = doc.Results[0]
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "machine.txt")); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				r.machine[k] = v
			}
		}
	}
	return r, nil
}

// failure is the last line of a step's stderr, for steps without figures.
func failure(dir, name string) string {
	raw, _ := os.ReadFile(filepath.Join(dir, name+".err"))
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	return strings.TrimPrefix(lines[len(lines)-1], "parley-load: ")
}

func report(dir, mdPath, pngPath, link string) error {
	r, err := load(dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	m := r.machine
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`deploy/bench/run %s`) from the JSON of each `cmd/parley-load` run; the run took %s s. ", m["set"], m["seconds"])
	fmt.Fprintf(&b, "Embedded mode, the load tool and the peer on the same machine, everything on loopback. ")
	fmt.Fprintf(&b, "Parley runs as `parley serve %s` on a fresh data dir for each group of scenarios; ", m["parley_flags"])
	fmt.Fprintf(&b, "the peer is Centrifugo %s (installed from its Go module, memory broker, HMAC JWT connections, HTTP API publishes), run in the same session.\n\n", m["centrifugo"])
	fmt.Fprintf(&b, "| machine | |\n|---|---|\n| date | %s |\n| CPU | %s × %s |\n| memory | %s |\n| Go | %s |\n| kernel | %s |\n| load average at the end | %s |\n\n",
		m["date"], m["nproc"], m["cpu"], m["mem"], m["go"], m["kernel"], m["load"])
	fmt.Fprintf(&b, "Each scenario runs once, except Parley's latency sweep, which runs %s times on one server; its targets are judged on the median round. A burst lasts a second or two, so one run's deliveries/s, and the ratio to Centrifugo, move a lot with what else the two cores are doing; rerun before drawing a conclusion from a single figure.\n\n", orOne(m["latency_rounds"]))
	if m["note"] != "" {
		fmt.Fprintf(&b, "**Note:** %s\n\n", m["note"])
	}

	fmt.Fprintf(&b, "## Issue 10 targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range targets(r) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.what, t.got, t.met)
	}

	fmt.Fprintf(&b, "\n## Parley and Centrifugo, same run\n\n| scenario | Parley | Centrifugo | Parley ÷ Centrifugo |\n|---|---|---|---|\n")
	for _, p := range peers(r) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", p.what, p.parley, p.peer, p.ratio)
	}

	fmt.Fprintf(&b, "\n## Latency against load\n\n100 members, one connection each; messages sent open loop at a fixed rate and every delivery timed from when its send was due. ")
	fmt.Fprintf(&b, "Parley receives over WebSocket and its sends go over one WebSocket; Centrifugo's publishes go over its HTTP API from 16 connections. Parley's points are the median round of its sweep (by p99); Centrifugo's sweep runs once.\n\n![latency against load](%s)\n\n", link)
	if err := plotLatency(r, pngPath); err != nil {
		return err
	}

	fmt.Fprintf(&b, "## Issue 11 targets\n\n| target | measured | met |\n|---|---|---|\n")
	if s := r.results["send-parley-1000"]; s != nil && s.Latency != nil {
		fmt.Fprintf(&b, "| embedded, 1,000 conversations, 1,000 sends/s: send→ack p99 ≤ 10 ms | p50 %s, p99 %s; %d acked, %d refused, %d unacked | %s |\n",
			ms(s.Latency.P50), ms(s.Latency.P99), s.Acked, s.Refused, s.Unacked, yes(s.Latency.P99 <= 10 && s.Refused == 0 && s.Unacked == 0))
	} else {
		fmt.Fprintf(&b, "| embedded, 1,000 conversations, 1,000 sends/s: send→ack p99 ≤ 10 ms | %s | no |\n", failure(dir, "send-parley-1000"))
	}
	for _, t := range []string{
		"1,000 conversations, 1,000 sends/s: send→ack p50 ≤ 15 ms, p99 ≤ 50 ms; send→delivered p99 ≤ 60 ms",
		"1,000 conversations: ≥ 3,000 acknowledged sends/s for 60 s, nothing refused",
		"p99 at 1,000/s with 1,000 conversations ≤ 1.5× the p99 with 8 conversations",
		"server CPU-seconds per 1,000 sends, all Parley processes and the three engines",
	} {
		fmt.Fprintf(&b, "| %s | needs the six-node cluster, not run by `make bench` (see below) | — |\n", t)
	}
	fmt.Fprintf(&b, "\nThe distributed figures need the six-node local cluster and the real engines; `make bench` does not start them. Run them by hand, after a warm-up run:\n\n")
	fmt.Fprintf(&b, "```sh\ndeploy/local/services up\ndeploy/local/cluster up bench --send-rate 100000 --send-burst 100000\n")
	fmt.Fprintf(&b, "go run ./cmd/parley-load -mode send -url http://127.0.0.1:18401,http://127.0.0.1:18402 -convs 1000 -senders 8 -rate 1000 -duration 10s -json send-1000.json\n")
	fmt.Fprintf(&b, "go run ./cmd/parley-load -mode send -url http://127.0.0.1:18401,http://127.0.0.1:18402 -convs 8 -senders 8 -rate 1000 -duration 10s -json send-8.json\n")
	fmt.Fprintf(&b, "go run ./cmd/parley-load -mode send -url http://127.0.0.1:18401,http://127.0.0.1:18402 -convs 1000 -senders 8 -rate 3000 -duration 60s -json send-3000.json\n```\n\n")

	fmt.Fprintf(&b, "## Every figure\n\nLatencies in milliseconds (HDR histogram, 3 significant digits).\n\n| run | figure | p50 | p90 | p99 | p99.9 | max | error |\n|---|---|---|---|---|---|---|---|\n")
	for _, name := range r.order {
		res := r.results[name]
		if res == nil {
			if name != "gobench" {
				fmt.Fprintf(&b, "| %s | no figures | | | | | | %s |\n", name, esc(failure(dir, name)))
			}
			continue
		}
		l := res.Latency
		if l == nil {
			l = &Summary{}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", name, figure(res), num(l.P50), num(l.P90), num(l.P99), num(l.P999), num(l.Max), esc(res.Error))
		if res.Baseline != nil {
			o := res.Baseline
			fmt.Fprintf(&b, "| %s (before the storm) | the small room alone | %s | %s | %s | %s | %s | |\n", name, num(o.P50), num(o.P90), num(o.P99), num(o.P999), num(o.Max))
		}
	}

	fmt.Fprintf(&b, "\n## Commands\n\n`make bench` runs `deploy/bench/run short`. Each group of scenarios gets a fresh server: `parley serve --addr 127.0.0.1:18090 --data-dir <temp dir> %s`, or `centrifugo -c <config>` (below). ", m["parley_flags"])
	fmt.Fprintf(&b, "`$PID` is the server's process id; `$KEY` and `$SECRET` are the Centrifugo API key and HMAC secret the script generated for the run.\n\n```sh\n")
	for _, name := range r.order {
		fmt.Fprintf(&b, "%s\n", r.commands[name])
	}
	fmt.Fprintf(&b, "```\n")
	if raw, err := os.ReadFile(filepath.Join(dir, "centrifugo-config.json")); err == nil {
		fmt.Fprintf(&b, "\nCentrifugo's generated configuration:\n\n```json\n%s```\n", raw)
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "gobench.txt")); err == nil {
		fmt.Fprintf(&b, "\n## Hot paths (`go test -bench`)\n\n```\n")
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "pkg:") || strings.HasPrefix(line, "# left out") {
				fmt.Fprintln(&b, line)
			}
		}
		fmt.Fprintf(&b, "```\n")
	}
	// Sections measured by hand (the distributed cluster) follow a marker
	// in the existing report and are carried over unchanged.
	if old, err := os.ReadFile(mdPath); err == nil {
		if i := strings.Index(string(old), keepMarker); i >= 0 {
			fmt.Fprintf(&b, "\n%s", old[i:])
		}
	}
	return os.WriteFile(mdPath, []byte(b.String()), 0o644)
}

// roundSep joins a step's name and its round: the rounds after the first
// of a repeated step are NAME-run2, NAME-run3, … (deploy/bench/run).
const roundSep = "-run"

// median returns, of the rounds of step name that have latency figures,
// the one with the median p99 (the upper middle of an even count, so a
// failed round never makes the figure better), and every round's p99 in
// the order they ran. It returns nil when no round has figures.
func (r *run) median(name string) (*Result, []float64) {
	m, p99s, _ := r.medianRounds(name)
	return m, p99s
}

// medianRounds is median, and also the deliveries missing over every
// round with figures.
func (r *run) medianRounds(name string) (*Result, []float64, int64) {
	var rounds []*Result
	for i := 1; ; i++ {
		n := name
		if i > 1 {
			n = fmt.Sprintf("%s%s%d", name, roundSep, i)
		}
		res, ok := r.results[n]
		if !ok && i > 1 && !r.ran(n) {
			break
		}
		if res != nil && res.Latency != nil {
			rounds = append(rounds, res)
		}
	}
	if len(rounds) == 0 {
		return nil, nil, 0
	}
	p99s := make([]float64, len(rounds))
	var missing int64
	for i, res := range rounds {
		p99s[i] = res.Latency.P99
		missing += res.Missing
	}
	sorted := append([]*Result(nil), rounds...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Latency.P99 < sorted[j].Latency.P99 })
	return sorted[len(sorted)/2], p99s, missing
}

// ran reports whether step name was run, with figures or without.
func (r *run) ran(name string) bool {
	_, ok := r.commands[name]
	return ok
}

// orOne is v, or "1" when the run did not say.
func orOne(v string) string {
	if v == "" {
		return "1"
	}
	return v
}

// rounds describes a median's rounds for a table cell: "" for one round.
func rounds(p99s []float64) string {
	if len(p99s) < 2 {
		return ""
	}
	s := make([]string, len(p99s))
	for i, v := range p99s {
		s[i] = num(v)
	}
	return fmt.Sprintf(" over %d rounds (the median round by p99; p99s %s ms)", len(p99s), strings.Join(s, ", "))
}

// keepMarker starts the part of BENCHMARKS.md that a new report keeps.
const keepMarker = "<!-- make bench keeps everything below this line"

type row struct{ what, got, met string }

func targets(r *run) []row {
	var rows []row
	get := func(n string) *Result { return r.results[n] }
	burstRow := func(n string) string {
		b := get(n)
		if b == nil {
			return "no figures"
		}
		return fmt.Sprintf("%s deliveries/s; %s of %s delivered, %d connections got none", thousands(b.DeliveriesPer), thousands(float64(b.Delivered)), thousands(float64(b.Expected)), b.SilentConns)
	}
	if b := get("burst-parley-5000"); b != nil {
		rows = append(rows, row{"≥ 250,000 deliveries/s in a 5,000-member room, every delivery made", burstRow("burst-parley-5000"), yes(b.DeliveriesPer >= 250000 && b.Missing == 0)})
	} else {
		rows = append(rows, row{"≥ 250,000 deliveries/s in a 5,000-member room, every delivery made", "no figures", "no"})
	}
	for _, n := range []string{"1000", "5000"} {
		p, c := get("burst-parley-"+n), get("burst-centrifugo-"+n)
		what := fmt.Sprintf("≥ 1.3× Centrifugo's deliveries/s, %s members", thousands(atof(n)))
		if p == nil || c == nil || c.DeliveriesPer == 0 {
			rows = append(rows, row{what, "no figures", "no"})
			continue
		}
		rows = append(rows, row{what, fmt.Sprintf("%.2f× (%s vs %s)", p.DeliveriesPer/c.DeliveriesPer, thousands(p.DeliveriesPer), thousands(c.DeliveriesPer)), yes(p.DeliveriesPer >= 1.3*c.DeliveriesPer && p.Missing == 0)})
	}
	for _, t := range []struct {
		name  string
		limit float64
		what  string
	}{
		{"latency-parley-ws-20000", 5, "send→delivered p99 ≤ 5 ms at 20,000 deliveries/s (WebSocket)"},
		{"latency-parley-sse-20000", 5, "the same over SSE"},
		{"latency-parley-poll-20000", 5, "the same over long-poll"},
		{"latency-parley-ws-100000", 20, "send→delivered p99 ≤ 20 ms at 100,000 deliveries/s"},
	} {
		l, p99s, missing := r.medianRounds(t.name)
		if l == nil {
			rows = append(rows, row{t.what, "no figures", "no"})
			continue
		}
		// Every delivery must be made in every round, not only the median one.
		rows = append(rows, row{t.what, fmt.Sprintf("p50 %s, p99 %s, max %s; %d missing%s", ms(l.Latency.P50), ms(l.Latency.P99), ms(l.Latency.Max), missing, rounds(p99s)), yes(l.Latency.P99 <= t.limit && missing == 0)})
	}
	if s := get("storm-parley-ws-5000"); s != nil && s.Latency != nil && s.Baseline != nil {
		rows = append(rows, row{"5,000 members connect within 10 s, p99 ≤ 20 ms meanwhile in another conversation",
			fmt.Sprintf("%s of %s connected (%d failed) in %.1f s; 10-member room p99 %s before, %s during", thousands(float64(s.Connected)), thousands(float64(s.Members)), s.ConnectFailed, s.ConnectSeconds, ms(s.Baseline.P99), ms(s.Latency.P99)),
			yes(s.Connected == s.Members && s.ConnectSeconds <= 10 && s.Latency.P99 <= 20)})
	} else {
		rows = append(rows, row{"5,000 members connect within 10 s, p99 ≤ 20 ms meanwhile", "no figures", "no"})
	}
	for _, t := range []struct {
		tr    string
		limit float64
	}{{"ws", 16}, {"sse", 24}, {"poll", 24}} {
		what := fmt.Sprintf("≤ %.0f KiB RSS per idle %s connection", t.limit, map[string]string{"ws": "WebSocket", "sse": "SSE", "poll": "long-poll"}[t.tr])
		i := get("idle-parley-" + t.tr)
		if i == nil || i.Conns == 0 {
			rows = append(rows, row{what, "no figures", "no"})
			continue
		}
		rows = append(rows, row{what, fmt.Sprintf("%.1f KiB at %s connections", i.RSSPerConnKiB, thousands(float64(i.Conns))), yes(i.RSSPerConnKiB <= t.limit && i.Error == "")})
	}
	for _, tr := range []string{"ws", "sse", "poll"} {
		what := "resume after 10,000 missed events in ≤ 1 s (" + tr + ")"
		s := get("resume-parley-" + tr)
		if s == nil {
			rows = append(rows, row{what, "no figures", "no"})
			continue
		}
		rows = append(rows, row{what, fmt.Sprintf("%s of %s in %.3f s", thousands(float64(s.Delivered)), thousands(float64(s.Expected)), s.Seconds), yes(s.Seconds <= 1 && s.Missing == 0)})
	}
	if l := get("list-parley-1000"); l != nil && l.Latency != nil {
		rows = append(rows, row{"`GET /v1/conversations` in 1,000 conversations: p99 ≤ 50 ms", fmt.Sprintf("p50 %s, p99 %s at %.0f requests/s, %d errors", ms(l.Latency.P50), ms(l.Latency.P99), l.OfferedRate, l.Errors), yes(l.Latency.P99 <= 50 && l.Errors == 0)})
	} else {
		rows = append(rows, row{"`GET /v1/conversations` in 1,000 conversations: p99 ≤ 50 ms", "no figures", "no"})
	}
	return rows
}

type peerRow struct{ what, parley, peer, ratio string }

func peers(r *run) []peerRow {
	var rows []peerRow
	for _, n := range []string{"1000", "5000"} {
		p, c := r.results["burst-parley-"+n], r.results["burst-centrifugo-"+n]
		if p == nil || c == nil {
			continue
		}
		rows = append(rows, peerRow{fmt.Sprintf("burst, %s members × %d messages (deliveries/s)", thousands(atof(n)), p.Messages),
			fmt.Sprintf("%s (%s missing)", thousands(p.DeliveriesPer), thousands(float64(p.Missing))), fmt.Sprintf("%s (%s missing)", thousands(c.DeliveriesPer), thousands(float64(c.Missing))), ratio(p.DeliveriesPer, c.DeliveriesPer)})
	}
	for _, rate := range latencyRates(r) {
		p, _ := r.median(fmt.Sprintf("latency-parley-ws-%d", rate))
		c := r.results[fmt.Sprintf("latency-centrifugo-%d", rate)]
		if p == nil || c == nil || c.Latency == nil {
			continue
		}
		rows = append(rows, peerRow{fmt.Sprintf("send→delivered p99 at %s deliveries/s (ms; lower is better)", thousands(float64(rate))),
			fmt.Sprintf("%s (p50 %s)", num(p.Latency.P99), num(p.Latency.P50)), fmt.Sprintf("%s (p50 %s)", num(c.Latency.P99), num(c.Latency.P50)), ratio(p.Latency.P99, c.Latency.P99)})
	}
	for _, n := range []struct{ parley, peer, what string }{
		{"burst-parley-1000", "burst-centrifugo-1000", "burst, 1,000 members"},
		{"burst-parley-5000", "burst-centrifugo-5000", "burst, 5,000 members"},
		{"latency-parley-ws-20000", "latency-centrifugo-20000", "20,000 deliveries/s"},
		{"latency-parley-ws-100000", "latency-centrifugo-100000", "100,000 deliveries/s"},
	} {
		p, c := r.results[n.parley], r.results[n.peer]
		if strings.HasPrefix(n.parley, "latency-") {
			p, _ = r.median(n.parley) // the round the latency rows show
		}
		if p == nil || c == nil || p.WritesPerDelivery == 0 || c.WritesPerDelivery == 0 {
			continue
		}
		rows = append(rows, peerRow{"server write syscalls per delivery, " + n.what + " (lower is better)",
			fmt.Sprintf("%.3f", p.WritesPerDelivery), fmt.Sprintf("%.3f", c.WritesPerDelivery), ratio(p.WritesPerDelivery, c.WritesPerDelivery)})
	}
	if p, c := r.results["idle-parley-ws"], r.results["idle-centrifugo-ws"]; p != nil && c != nil {
		rows = append(rows, peerRow{fmt.Sprintf("RSS per idle WebSocket connection at %s (KiB; lower is better)", thousands(float64(p.Conns))), fmt.Sprintf("%.1f", p.RSSPerConnKiB), fmt.Sprintf("%.1f", c.RSSPerConnKiB), ratio(p.RSSPerConnKiB, c.RSSPerConnKiB)})
	}
	return rows
}

func latencyRates(r *run) []int {
	var rates []int
	for name := range r.results {
		base, _, _ := strings.Cut(name, roundSep)
		var n int
		if _, err := fmt.Sscanf(base, "latency-parley-ws-%d", &n); err == nil && !slices.Contains(rates, n) {
			rates = append(rates, n)
		}
	}
	sort.Ints(rates)
	return rates
}

func plotLatency(r *run, path string) error {
	p := plot.New()
	p.Title.Text = "send→delivered latency against load (100 members, open loop)"
	p.X.Label.Text = "offered deliveries/s"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	series := []struct {
		target string
		pick   func(*Summary) float64
		label  string
		col    color.RGBA
		dash   bool
	}{
		{"parley", func(s *Summary) float64 { return s.P50 }, "Parley p50", color.RGBA{31, 119, 180, 255}, true},
		{"parley", func(s *Summary) float64 { return s.P99 }, "Parley p99", color.RGBA{31, 119, 180, 255}, false},
		{"centrifugo", func(s *Summary) float64 { return s.P50 }, "Centrifugo p50", color.RGBA{214, 39, 40, 255}, true},
		{"centrifugo", func(s *Summary) float64 { return s.P99 }, "Centrifugo p99", color.RGBA{214, 39, 40, 255}, false},
	}
	any := false
	for _, s := range series {
		var pts plotter.XYs
		for _, rate := range latencyRates(r) {
			res, _ := r.median(fmt.Sprintf("latency-parley-ws-%d", rate))
			if s.target == "centrifugo" {
				res = r.results[fmt.Sprintf("latency-centrifugo-%d", rate)]
			}
			if res == nil || res.Latency == nil {
				continue
			}
			pts = append(pts, plotter.XY{X: res.OfferedRate, Y: max(0.01, s.pick(res.Latency))})
		}
		if len(pts) == 0 {
			continue
		}
		any = true
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color, points.Color = s.col, s.col
		line.Width = vg.Points(1.5)
		if s.dash {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			points.Shape = draw.CircleGlyph{}
		} else {
			points.Shape = draw.BoxGlyph{}
		}
		p.Add(line, points)
		p.Legend.Add(s.label, line, points)
	}
	if !any {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}

func figure(r *Result) string {
	switch r.Scenario {
	case "burst":
		return fmt.Sprintf("%s deliveries/s; %s/%s delivered, %d conns got none%s", thousands(r.DeliveriesPer), thousands(float64(r.Delivered)), thousands(float64(r.Expected)), r.SilentConns, writes(r))
	case "latency":
		return fmt.Sprintf("%s deliveries/s offered; %d missing%s", thousands(r.OfferedRate), r.Missing, writes(r))
	case "storm":
		return fmt.Sprintf("%d/%d connected in %.1f s, %d failed", r.Connected, r.Members, r.ConnectSeconds, r.ConnectFailed)
	case "idle":
		return fmt.Sprintf("%.1f KiB/conn at %s", r.RSSPerConnKiB, thousands(float64(r.Conns)))
	case "resume":
		return fmt.Sprintf("%s events in %.3f s", thousands(float64(r.Delivered)), r.Seconds)
	case "list":
		return fmt.Sprintf("%d conversations, %.0f req/s, %d errors", r.Convs, r.OfferedRate, r.Errors)
	case "send":
		return fmt.Sprintf("%s sends/s offered over %d convs: %d acked, %d refused, %d unacked", thousands(r.OfferedRate), r.Convs, r.Acked, r.Refused, r.Unacked)
	}
	return ""
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func ms(v float64) string { return num(v) + " ms" }

func num(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return thousands(v)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

func atof(s string) float64 {
	var f float64
	fmt.Sscanf(s, "%g", &f)
	return f
}

func esc(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func writes(r *Result) string {
	if r.WritesPerDelivery == 0 {
		return ""
	}
	return fmt.Sprintf("; %.3f write syscalls/delivery", r.WritesPerDelivery)
}

package main

import (
	"strings"
	"testing"
)

func latencyRun(p99s map[string]float64, failed ...string) *run {
	r := &run{results: map[string]*Result{}, commands: map[string]string{}, machine: map[string]string{}}
	for name, p99 := range p99s {
		r.results[name] = &Result{OfferedRate: 20000, Latency: &Summary{P50: 1, P99: p99, Max: p99 + 1}}
		r.commands[name] = "parley-load …"
		r.order = append(r.order, name)
	}
	for _, name := range failed {
		r.commands[name] = "parley-load …" // ran, left no figures
	}
	return r
}

func TestTheMedianRoundJudgesALatencyTarget(t *testing.T) {
	r := latencyRun(map[string]float64{
		"latency-parley-sse-20000":      7.5,
		"latency-parley-sse-20000-run2": 4.1,
		"latency-parley-sse-20000-run3": 4.6,
	})
	got, p99s := r.median("latency-parley-sse-20000")
	if got == nil || got.Latency.P99 != 4.6 {
		t.Fatalf("median = %+v, want the round with p99 4.6", got)
	}
	if len(p99s) != 3 || p99s[0] != 7.5 || p99s[1] != 4.1 || p99s[2] != 4.6 {
		t.Fatalf("p99s = %v, in the order they ran", p99s)
	}
	for _, row := range targets(r) {
		if row.what == "the same over SSE" {
			if row.met != "yes" || !strings.Contains(row.got, "p99 4.60 ms") || !strings.Contains(row.got, "over 3 rounds") {
				t.Fatalf("SSE row = %+v", row)
			}
			return
		}
	}
	t.Fatal("no SSE row")
}

func TestAFailedRoundIsSkippedAndOneRoundIsItself(t *testing.T) {
	r := latencyRun(map[string]float64{
		"latency-parley-ws-20000":      3,
		"latency-parley-ws-20000-run3": 9,
		"latency-parley-ws-100000":     12,
	}, "latency-parley-ws-20000-run2")
	if got, p99s := r.median("latency-parley-ws-20000"); got == nil || got.Latency.P99 != 9 || len(p99s) != 2 {
		t.Fatalf("median = %+v of %v, want the higher of the two rounds with figures", got, p99s)
	}
	if got, p99s := r.median("latency-parley-ws-100000"); got == nil || got.Latency.P99 != 12 || rounds(p99s) != "" {
		t.Fatalf("one round: %+v, %q", got, rounds(p99s))
	}
	if got, _ := r.median("latency-parley-poll-20000"); got != nil {
		t.Fatalf("no rounds: %+v", got)
	}
	if rates := latencyRates(r); len(rates) != 2 || rates[0] != 20000 || rates[1] != 100000 {
		t.Fatalf("rates = %v, rounds counted as rates", rates)
	}
}

func TestALossInAnyRoundFailsTheTarget(t *testing.T) {
	r := latencyRun(map[string]float64{
		"latency-parley-poll-20000":      4,
		"latency-parley-poll-20000-run2": 3,
		"latency-parley-poll-20000-run3": 4.5,
	})
	r.results["latency-parley-poll-20000-run3"].Missing = 7 // not the median round
	for _, row := range targets(r) {
		if row.what == "the same over long-poll" {
			if row.met != yes(false) || !strings.Contains(row.got, "7 missing") {
				t.Fatalf("long-poll row = %+v, want 7 missing and not met", row)
			}
			return
		}
	}
	t.Fatal("no long-poll row")
}

func TestARateWhoseFirstRoundFailedStillCounts(t *testing.T) {
	r := latencyRun(map[string]float64{"latency-parley-ws-50000-run2": 8}, "latency-parley-ws-50000")
	if rates := latencyRates(r); len(rates) != 1 || rates[0] != 50000 {
		t.Fatalf("rates = %v, want [50000]", rates)
	}
}

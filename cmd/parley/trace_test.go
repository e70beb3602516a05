package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/parleychat/parley/internal/testutil"
)

// TestTraceFollowsASend: with tracing on, one trace follows a send from
// the WebSocket frame through the commands log, the sequencer and the
// store commit, back to the sender's ack and to the recipients' sockets,
// each span the child of the one before (the spans of an in-memory
// exporter on an embedded server).
func TestTraceFollowsASend(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(prev)

	s := startServer(t)
	bs, as := sendOverWebSocket(t, s, "traced", "c-traced", "follow me")
	defer bs.close()
	defer as.close()

	attr := func(sp tracetest.SpanStub, k string) string {
		for _, a := range sp.Attributes {
			if a.Key == attribute.Key(k) {
				return a.Value.Emit()
			}
		}
		return ""
	}
	var byName map[string][]tracetest.SpanStub
	testutil.Eventually(t, 10*time.Second, func() error {
		var send *tracetest.SpanStub
		spans := exp.GetSpans()
		for i := range spans {
			if spans[i].Name == "send" && attr(spans[i], "parley.transport") == "ws" {
				send = &spans[i]
			}
		}
		byName = map[string][]tracetest.SpanStub{}
		if send != nil {
			for _, sp := range spans {
				if sp.SpanContext.TraceID() == send.SpanContext.TraceID() {
					byName[sp.Name] = append(byName[sp.Name], sp)
				}
			}
		}
		// A span is exported when it ends, and a parent ends after its
		// children: wait for every span the checks below read.
		complete := len(byName["socket.write"]) >= 2
		for _, n := range []string{"send", "submit", "sequencer.apply", "store.commit", "gateway.result"} {
			complete = complete && len(byName[n]) >= 1
		}
		if !complete {
			var names []string
			for n, ss := range byName {
				names = append(names, n+"×"+string(rune('0'+len(ss))))
			}
			return fmt.Errorf("the send's trace is incomplete: %s", strings.Join(names, ", "))
		}
		return nil
	})
	one := func(name string) tracetest.SpanStub {
		t.Helper()
		if len(byName[name]) != 1 {
			t.Fatalf("%d %q spans in the send's trace, want 1", len(byName[name]), name)
		}
		return byName[name][0]
	}
	childOf := func(child, parent tracetest.SpanStub) {
		t.Helper()
		if child.Parent.SpanID() != parent.SpanContext.SpanID() {
			t.Errorf("%s's parent is %s, want %s (%s)", child.Name, child.Parent.SpanID(), parent.Name, parent.SpanContext.SpanID())
		}
	}
	send, submit, apply, commit, result := one("send"), one("submit"), one("sequencer.apply"), one("store.commit"), one("gateway.result")
	if send.Parent.IsValid() {
		t.Errorf("the frame's send span has a parent: %v", send.Parent)
	}
	childOf(submit, send)
	childOf(apply, submit)
	childOf(commit, apply)
	childOf(result, apply)
	transports := map[string]bool{}
	for _, w := range byName["socket.write"] {
		childOf(w, apply)
		transports[attr(w, "parley.transport")] = true
	}
	if !transports["websocket"] || !transports["sse"] {
		t.Errorf("socket writes on %v, want the sender's websocket and the recipient's sse", transports)
	}
	if send.EndTime.Before(result.StartTime) {
		t.Errorf("the send span ended (%v) before its result was read (%v): it does not last until the ack", send.EndTime, result.StartTime)
	}
}

// sendOverWebSocket has alice send text in a new group with bob over a
// WebSocket, and returns once she has her ack and her own event and bob
// (on SSE) has the message; the caller closes both streams.
func sendOverWebSocket(t *testing.T, s *server, title, clientID, text string) (bob, alice stream) {
	t.Helper()
	a, b := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, a, title, "bob")
	bs, _ := s.connect(t, transportSSE, b, "")
	as, _ := s.connect(t, transportWS, a, "")
	ws := as.(*wsStream)
	if err := ws.write(map[string]any{"type": "send", "ref": "r1", "conversation_id": cid, "client_id": clientID, "text": text}); err != nil {
		t.Fatal(err)
	}
	for acked, created := false, false; !acked || !created; {
		m, err := ws.next(10 * time.Second)
		if err != nil {
			t.Fatalf("ack %v, own event %v: %v", acked, created, err)
		}
		acked = acked || m["type"] == "ack"
		created = created || m["type"] == "message.created"
	}
	collect(t, bs, 1, "message.created")
	return bs, as
}

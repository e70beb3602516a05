package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestInjectExtract: with tracing off a record carries no trace; with it
// on, a span started from the extracted traceparent is the child of the
// injected one, in the same trace; a malformed traceparent starts a new
// trace instead of failing.
func TestInjectExtract(t *testing.T) {
	ctx := context.Background()
	_, off := Tracer().Start(ctx, "off")
	if tp := Inject(trace.ContextWithSpan(ctx, off)); tp != "" {
		t.Fatalf("tracing off, yet traceparent %q", tp)
	}
	off.End()

	exp := tracetest.NewInMemoryExporter()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	defer otel.SetTracerProvider(prev)

	pctx, parent := Tracer().Start(ctx, "parent")
	tp := Inject(pctx)
	if len(tp) != 55 {
		t.Fatalf("traceparent %q is not W3C's", tp)
	}
	_, child := Tracer().Start(Extract(ctx, tp), "child")
	child.End()
	parent.End()
	_, stray := Tracer().Start(Extract(ctx, "00-nonsense"), "stray")
	stray.End()
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans", len(spans))
	}
	c, p, s := spans[0], spans[1], spans[2]
	if c.SpanContext.TraceID() != p.SpanContext.TraceID() || c.Parent.SpanID() != p.SpanContext.SpanID() {
		t.Errorf("child %v is not under parent %v", c.Parent, p.SpanContext)
	}
	if s.Parent.IsValid() || s.SpanContext.TraceID() == p.SpanContext.TraceID() {
		t.Errorf("a malformed traceparent gave a parent %v", s.Parent)
	}
}

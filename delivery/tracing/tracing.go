// Package tracing is Parley's use of OpenTelemetry tracing: the tracer
// the packages start their spans with, and the W3C trace context that
// carries a trace across the log in the records' "trace" field (a
// command's and a sequenced result's), so one trace follows a send from
// the WebSocket frame or REST POST through the commands log, the
// sequencer and the store, back to the sender's ack and the recipients'
// sockets.
//
// Tracing is off by default: the tracer is OpenTelemetry's global one,
// a no-op until cmd/parley installs an exporting provider
// (--otel.endpoint or OTEL_EXPORTER_OTLP_ENDPOINT). Off, a span costs a
// few allocations and records carry no trace field.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of Parley's spans.
const Name = "github.com/parleychat/parley"

// Tracer is the tracer Parley's spans start from (the global provider's,
// read at each call so a provider installed later takes effect).
func Tracer() trace.Tracer { return otel.GetTracerProvider().Tracer(Name) }

var w3c = propagation.TraceContext{}

// Inject is the W3C traceparent of ctx's span, "" when ctx has no sampled
// span (tracing off): what a record's trace field carries.
func Inject(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return ""
	}
	c := propagation.MapCarrier{}
	w3c.Inject(ctx, c)
	return c["traceparent"]
}

// Extract returns ctx with the remote span of traceparent as its parent
// ("" or a malformed value: ctx unchanged).
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return w3c.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

package fanout

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/delivery/tracing"
)

// traceResult records the span "gateway.result" of a result read for a
// command of this gateway, from its record's read until handed to the
// waiting caller, continuing the sequencer's span of traceparent (nothing
// when the command was not traced).
func traceResult(traceparent string, received time.Time) {
	if traceparent == "" {
		return
	}
	ctx := tracing.Extract(context.Background(), traceparent)
	_, span := tracing.Tracer().Start(ctx, "gateway.result", trace.WithTimestamp(received), trace.WithSpanKind(trace.SpanKindConsumer))
	span.End()
}

package realtime

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/tracing"
)

// traceWrite records the span "socket.write" of a traced event, from its
// record's read until written to a connection at now, continuing the
// sequencer's span that made it.
func traceWrite(it *fanout.Item, transport string, now time.Time) {
	ctx := tracing.Extract(context.Background(), it.Trace)
	_, span := tracing.Tracer().Start(ctx, "socket.write", trace.WithTimestamp(it.Received), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("parley.transport", transport), attribute.String("parley.event", it.Type)))
	span.End(trace.WithTimestamp(now))
}

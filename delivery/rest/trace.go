package rest

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/tracing"
)

// startSend begins the span "send" of a send accepted over transport
// (rest: the POST, ws: the frame): the root of the send's trace, or a
// child of the caller's span for a REST request that carries one.
func startSend(ctx context.Context, transport string) (context.Context, trace.Span) {
	return tracing.Tracer().Start(ctx, "send", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("parley.transport", transport)))
}

// endSend ends a send's span at its answer: the ack or err.
func endSend(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, chat.ErrorCode(err))
	}
	span.End()
}

package sequencer

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/tracing"
)

// batchSpans are the spans of one batch's traced commands: a
// "sequencer.apply" span per command that carries a trace (continuing
// the gateway's "submit" span), ended once the batch's events are
// appended, and one "store.commit" span for the batch's Commit under the
// first of them, linked to the others. An untraced batch makes none.
type batchSpans struct {
	partition int
	ctxs      []context.Context
	spans     []trace.Span
}

// start begins cmd's span, if cmd is traced, and returns the traceparent
// its sequenced record carries ("" if not).
func (b *batchSpans) start(cmd *chat.Command) string {
	if cmd.Trace == "" {
		return ""
	}
	ctx, span := tracing.Tracer().Start(tracing.Extract(context.Background(), cmd.Trace), "sequencer.apply",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("parley.op", cmd.Op), attribute.String("parley.conversation", cmd.ConversationID), attribute.Int("parley.partition", b.partition)))
	b.ctxs = append(b.ctxs, ctx)
	b.spans = append(b.spans, span)
	return tracing.Inject(ctx)
}

// commit runs the batch's Commit, under a span when the batch is traced.
func (b *batchSpans) commit(ctx context.Context, commit func(context.Context) error) error {
	if len(b.spans) == 0 {
		return commit(ctx)
	}
	links := make([]trace.Link, 0, len(b.spans)-1)
	for _, c := range b.ctxs[1:] {
		links = append(links, trace.Link{SpanContext: trace.SpanContextFromContext(c)})
	}
	// The store is called with the batch's own context (its cancellation),
	// the span only times it.
	_, span := tracing.Tracer().Start(b.ctxs[0], "store.commit", trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...))
	err := commit(ctx)
	if err != nil {
		span.SetStatus(codes.Error, chat.ErrorCode(err))
	}
	span.End()
	return err
}

// fail ends every span with err: the batch is handled again.
func (b *batchSpans) fail(err error) {
	for _, s := range b.spans {
		s.SetStatus(codes.Error, err.Error())
		s.End()
	}
	b.spans, b.ctxs = nil, nil
}

// end ends every span: the batch is applied.
func (b *batchSpans) end() {
	for _, s := range b.spans {
		s.End()
	}
	b.spans, b.ctxs = nil, nil
}

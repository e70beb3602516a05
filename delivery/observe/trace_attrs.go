package observe

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// addTraceAttrs adds the trace and span ids of ctx's span, if it has a
// valid one (tracing on), so a log line can be found from its trace.
func addTraceAttrs(ctx context.Context, r *slog.Record) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
}

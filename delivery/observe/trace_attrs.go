package observe

import (
	"context"
	"log/slog"
)

// addTraceAttrs adds the trace and span ids of ctx's span, if any.
func addTraceAttrs(ctx context.Context, r *slog.Record) {}

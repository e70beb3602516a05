package observe

import (
	"context"
	"log/slog"

	"github.com/parleychat/parley/delivery/httpx"
)

// LogHandler wraps h so that every record logged with a context names
// what the context carries: the request id (request_id) of the HTTP
// request being served, and the trace and span ids (trace_id, span_id)
// when tracing is on. Calls made with the *Context forms of slog
// (InfoContext, ErrorContext …) get them; others log as before.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := httpx.RequestIDFrom(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	addTraceAttrs(ctx, &r)
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(as)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}

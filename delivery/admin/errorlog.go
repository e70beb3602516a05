package admin

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogEntry is one warning or error a node logged.
type LogEntry struct {
	At        time.Time `json:"at"`
	Level     string    `json:"level"`
	Message   string    `json:"message"`
	Component string    `json:"component,omitempty"`
	Error     string    `json:"error,omitempty"`
}

// ErrorLog keeps the newest warnings and errors a logger writes, for the
// admin view. It keeps only the message, the component and the err
// attribute, which the code writes without secrets; other attributes (ids,
// addresses) stay in the log proper. Safe for concurrent use.
type ErrorLog struct {
	mu   sync.Mutex
	ring []LogEntry
	next int
	full bool
}

// NewErrorLog keeps the last n entries (at least 1).
func NewErrorLog(n int) *ErrorLog {
	if n < 1 {
		n = 1
	}
	return &ErrorLog{ring: make([]LogEntry, n)}
}

// Entries returns the kept entries, newest first.
func (e *ErrorLog) Entries() []LogEntry {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.next
	if e.full {
		n = len(e.ring)
	}
	out := make([]LogEntry, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, e.ring[(e.next-i+len(e.ring))%len(e.ring)])
	}
	return out
}

func (e *ErrorLog) add(le LogEntry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ring[e.next] = le
	e.next = (e.next + 1) % len(e.ring)
	if e.next == 0 {
		e.full = true
	}
}

// Wrap returns a handler that passes every record to h and keeps those at
// warning level or above.
func (e *ErrorLog) Wrap(h slog.Handler) slog.Handler { return &recorder{next: h, log: e} }

type recorder struct {
	next      slog.Handler
	log       *ErrorLog
	component string // from With("component", …)
}

func (r *recorder) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || r.next.Enabled(ctx, l)
}

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		le := LogEntry{At: rec.Time, Level: rec.Level.String(), Message: rec.Message, Component: r.component}
		rec.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "component":
				le.Component = a.Value.String()
			case "err", "error":
				le.Error = a.Value.String()
			}
			return true
		})
		r.log.add(le)
	}
	if !r.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return r.next.Handle(ctx, rec)
}

func (r *recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *r
	c.next = r.next.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "component" {
			c.component = a.Value.String()
		}
	}
	return &c
}

func (r *recorder) WithGroup(name string) slog.Handler {
	c := *r
	c.next = r.next.WithGroup(name)
	return &c
}

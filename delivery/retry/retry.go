// Package retry holds the loop every consumer role (sequencer, indexer,
// media) runs around chat.Log.Consume: consume until the context ends,
// and after a failure wait, log, and join the group again.
package retry

import (
	"context"
	"log/slog"
	"time"
)

// The backoff between attempts doubles from MinBackoff up to MaxBackoff;
// an attempt that ran for MaxBackoff or longer before failing starts the
// next wait at MinBackoff again, as the failure is a new one.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 2 * time.Second
)

// Consume calls consume until ctx is done, waiting between a failed call
// and the next one, and returns nil once ctx is done. consume is one
// membership of a consumer group (typically a chat.Log.Consume call, with
// whatever the role resets before it); its error is logged at warning
// level with what, never returned: a role outlives engine outages.
func Consume(ctx context.Context, logger *slog.Logger, what string, consume func(ctx context.Context) error) error {
	return loop(ctx, logger, what, consume, time.Now, Sleep)
}

// Sleep waits d or until ctx is done, reporting whether d passed (and so
// whether ctx is still live): the wait of every backoff loop.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func loop(ctx context.Context, logger *slog.Logger, what string, consume func(ctx context.Context) error,
	now func() time.Time, wait func(context.Context, time.Duration) bool) error {
	backoff := MinBackoff
	for {
		start := now()
		err := consume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if now().Sub(start) >= MaxBackoff {
			backoff = MinBackoff
		}
		logger.Warn(what+"; retrying", "err", err, "backoff", backoff)
		if !wait(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}

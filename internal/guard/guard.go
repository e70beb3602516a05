// Package guard keeps an adapter's operations and its Close apart: Close
// waits for the operations that entered, and every operation that comes
// after it fails as unavailable. Pebble, Bleve and Elasticsearch use it,
// so all three refuse a closed engine and a done context the same way.
package guard

import (
	"context"
	"sync"

	"github.com/parleychat/parley/chat"
)

// Guard is an adapter's open/closed state. The zero Guard is open.
type Guard struct {
	mu     sync.RWMutex
	closed bool
}

// Enter starts operation op: it fails with chat.CodeUnavailable when ctx
// is done or the guard is closed; otherwise the caller must call Leave
// when the operation is done (Close waits for it).
func (g *Guard) Enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return chat.ContextError(op, err)
	}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "closed"}
	}
	return nil
}

// Leave ends an operation that Enter started.
func (g *Guard) Leave() { g.mu.RUnlock() }

// Close waits for the running operations, marks the guard closed and runs
// release, once: a second Close returns nil without running it.
func (g *Guard) Close(release func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	return release()
}

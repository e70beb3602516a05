package chat

import (
	"context"
	"sync"
)

type commitHoldKey struct{}

// WithCommitHold is for Log implementations: it returns the ctx of one
// handle call of Consume whose batch the handler may hold (HoldCommit).
// hold is called at most once, by HoldCommit, and returns the release the
// handler gets; the Log then commits the batch's offsets only once release
// is called with nil (see HoldCommit for the rest of the contract).
func WithCommitHold(ctx context.Context, hold func() (release func(error))) context.Context {
	return context.WithValue(ctx, commitHoldKey{}, hold)
}

// HoldCommit, called by a Consume handler with the ctx of its call, keeps
// the batch's offsets from being committed when handle returns nil, until
// the handler calls release:
//   - release(nil) lets the batch be committed, after every earlier batch
//     of its partition;
//   - release(err) fails the partition as though handle had returned err:
//     Consume returns err (errors.Is; nil when its ctx is done), and neither
//     the batch nor any later one of the partition is committed, so they
//     are handled again (at least once, as after a failed handle).
//
// Meanwhile the Log may call handle with the partition's next batches (it
// need not: the embedded Log waits for the release). A handler thus
// finishes a batch's last step, such as the sequencer's append of its
// events, side by side with the next batch. The ctx of the handle call
// stays usable until release; Consume returns, and gives a partition up,
// only once every hold of it is released, so the handler's goroutine that
// will call release is owned by Consume. Only the first call of release
// counts. A handler must not hold a batch after its handle returned an
// error.
//
// HoldCommit returns nil when ctx is not a handle ctx of a Log that offers
// holds (or the batch is held already): the handler then finishes its
// work before it returns.
func HoldCommit(ctx context.Context) (release func(error)) {
	hold, _ := ctx.Value(commitHoldKey{}).(func() func(error))
	if hold == nil {
		return nil
	}
	return hold()
}

// CommitHold is one batch's hold, for Log implementations: Hold is the
// function for WithCommitHold, Wait waits for the release.
type CommitHold struct {
	mu       sync.Mutex
	held     bool
	released bool
	done     chan error
}

// NewCommitHold returns a hold not taken yet.
func NewCommitHold() *CommitHold { return &CommitHold{done: make(chan error, 1)} }

// Hold marks the batch held and returns its release; a second call
// returns nil.
func (h *CommitHold) Hold() func(error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held {
		return nil
	}
	h.held = true
	return func(err error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.released {
			return
		}
		h.released = true
		h.done <- err
	}
}

// Held reports whether the handler took the hold.
func (h *CommitHold) Held() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// Done is where the release's error arrives (once) when the batch is held.
func (h *CommitHold) Done() <-chan error { return h.done }

package chattest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// Bursts feeds a sequencer bursts of commands and waits until each burst
// is sequenced: the send-path benchmarks of the embedded and the
// distributed store time one burst as one op.
type Bursts struct {
	lg   chat.Log
	seen atomic.Int64 // records read from the events topic
}

// WatchBursts subscribes to lg's events topic and returns once the
// subscription is live; it ends with ctx.
func WatchBursts(ctx context.Context, lg chat.Log) *Bursts {
	bs := &Bursts{lg: lg}
	ready := make(chan struct{})
	go func() {
		_ = lg.Subscribe(ctx, chat.TopicEvents, func() { close(ready) }, func(_ int, rs []chat.Record) { bs.seen.Add(int64(len(rs))) })
	}()
	select {
	case <-ready:
	case <-ctx.Done():
	}
	return bs
}

// Send appends cmds to the commands topic at once, each with a fresh id
// and the current time, and returns when as many events as commands have
// come since (each of these commands makes one event).
func (bs *Bursts) Send(ctx context.Context, tb testing.TB, cmds []chat.Command) {
	tb.Helper()
	recs := make([]*chat.Record, len(cmds))
	for i := range cmds {
		c := cmds[i]
		c.ID, c.At = chat.NewID("cmd"), time.Now()
		v, err := record.EncodeCommand(&c)
		if err != nil {
			tb.Fatal(err)
		}
		recs[i] = &chat.Record{Key: c.ConversationID, Value: v}
	}
	want := bs.seen.Load() + int64(len(recs))
	if err := bs.lg.Append(ctx, chat.TopicCommands, recs...); err != nil {
		tb.Fatal(err)
	}
	for bs.seen.Load() < want && ctx.Err() == nil {
		time.Sleep(100 * time.Microsecond)
	}
}

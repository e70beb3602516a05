// Package indexer is the indexer role: it follows the events log in
// consumer group "indexer" and keeps the search Index in step with the
// messages — new and edited messages are (re)indexed, deleted ones removed.
package indexer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/retry"
)

// Group is the consumer group of the indexer role.
const Group = "indexer"

// Indexer feeds the Index from the events log.
type Indexer struct {
	log         chat.Log
	index       chat.Index
	logger      *slog.Logger
	undecodable prometheus.Counter
	interval    time.Duration

	mu     sync.Mutex
	active map[int]time.Time // partition → when it last put
}

// Option configures an Indexer.
type Option func(*Indexer)

// WithRegisterer registers the indexer's metrics with reg:
// parley_undecodable_records_total{consumer="indexer"}, the event records
// it skipped because they did not decode.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(x *Indexer) { reg.MustRegister(x.undecodable) }
}

// WithConfig applies cfg (see Config).
func WithConfig(cfg Config) Option {
	return func(x *Indexer) { x.interval = cfg.Interval }
}

// New returns an indexer that puts at most once per DefaultInterval per
// partition unless WithConfig says otherwise.
func New(log chat.Log, index chat.Index, logger *slog.Logger, opts ...Option) *Indexer {
	x := &Indexer{
		log: log, index: index, logger: logger.With("component", "indexer"),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "parley_undecodable_records_total",
			Help:        "Event records a consumer skipped because they did not decode.",
			ConstLabels: prometheus.Labels{"consumer": Group},
		}),
		interval: DefaultInterval,
		active:   map[int]time.Time{},
	}
	for _, o := range opts {
		o(x)
	}
	return x
}

// Run consumes until ctx is done, retrying a failed batch (its offsets are
// not committed, so nothing is skipped).
func (x *Indexer) Run(ctx context.Context) error {
	return retry.Consume(ctx, x.logger, "indexing failed", func(ctx context.Context) error {
		return x.log.Consume(ctx, chat.TopicEvents, Group, x.handle)
	})
}

func (x *Indexer) handle(ctx context.Context, partition int, recs []chat.Record) error {
	// Later events of a message win within the batch; a delete is sent as
	// a tombstone Put so a stale earlier Put in the same batch cannot bring
	// the text back.
	latest := map[string]chat.Message{}
	var order []string
	for _, rec := range recs {
		s, err := record.DecodeSequencedEvents(rec.Value)
		if err != nil {
			// Retrying cannot make it decode: skip it, loudly.
			x.undecodable.Inc()
			x.logger.Warn("skipping an undecodable event record", "partition", partition, "offset", rec.Offset, "err", err)
			continue
		}
		for _, ev := range s.Events {
			var m chat.Message
			switch ev.Type {
			case chat.EventMessageCreated, chat.EventMessageUpdated:
				if ev.Message == nil {
					continue
				}
				m = *ev.Message
			case chat.EventMessageDeleted:
				m = chat.Message{ID: ev.MessageID, ConversationID: ev.ConversationID, Deleted: true}
			default:
				continue
			}
			key := m.ConversationID + "/" + m.ID
			if _, seen := latest[key]; !seen {
				order = append(order, key)
			}
			latest[key] = m
		}
	}
	if len(order) == 0 {
		return nil
	}
	var puts []chat.Message
	for _, k := range order {
		m := latest[k]
		if m.Deleted {
			err := x.untilAnswered(ctx, partition, func() error { return x.index.Delete(ctx, m.ConversationID, m.ID) })
			if err != nil && !chat.IsNotFound(err) {
				return fmt.Errorf("indexer: delete: %w", err)
			}
			continue
		}
		puts = append(puts, m)
	}
	if len(puts) > 0 {
		start := time.Now()
		if err := x.untilAnswered(ctx, partition, func() error { return x.index.Put(ctx, puts) }); err != nil {
			return fmt.Errorf("indexer: put: %w", err)
		}
		x.pace(ctx, x.paceWait(partition, start, time.Now()))
	}
	return nil
}

// untilAnswered calls f until it succeeds, fails for another reason than
// an unavailable Index, or ctx ends (a rebalance, a shutdown), waiting
// between attempts as retry.Consume does. An Index outage is waited out
// here, holding the partition, rather than by leaving the consumer group:
// leaving and joining again at every failed attempt made each one a
// rebalance, a group join and a fresh fetch of the backlog, and after the
// engine came back the indexer spent its first attempts on those instead
// of on the backlog.
func (x *Indexer) untilAnswered(ctx context.Context, partition int, f func() error) error {
	backoff := retry.MinBackoff
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || chat.ErrorCode(err) != chat.CodeUnavailable || ctx.Err() != nil {
			if err == nil && attempt > 1 {
				x.logger.Info("index answered again", "partition", partition, "attempts", attempt)
			}
			return err
		}
		if attempt == 1 {
			x.logger.Warn("index unavailable; retrying the batch until it answers", "partition", partition, "err", err)
		}
		if !retry.Sleep(ctx, backoff) {
			return err
		}
		backoff = min(2*backoff, retry.MaxBackoff)
	}
}

// paceWait is how long the handler of partition waits after a Put that
// began at start: what is left of the interval, shared among the partitions
// that put within the last interval. A Log may hand its partitions out one
// after another (memlog does), so one interval per partition would make a
// round over 64 busy partitions last 64 intervals; shared, a round adds at
// most about one interval, and each partition's records still gather while
// the others are handled.
func (x *Indexer) paceWait(partition int, start, now time.Time) time.Duration {
	left := x.interval - now.Sub(start)
	if left <= 0 {
		return 0
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.active[partition] = start
	n := 0
	for p, t := range x.active {
		if now.Sub(t) > x.interval {
			delete(x.active, p)
			continue
		}
		n++
	}
	return left / time.Duration(max(n, 1))
}

// pace returns after wait (or once ctx is done), so that the records of the
// partition that arrive meanwhile are handed to the next call together; the
// batch's offsets are committed when handle returns, at most wait late.
func (x *Indexer) pace(ctx context.Context, wait time.Duration) {
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

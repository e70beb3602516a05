// Package indexer is the indexer role: it follows the events log in
// consumer group "indexer" and keeps the search Index in step with the
// messages — new and edited messages are (re)indexed, deleted ones removed.
package indexer

import (
	"context"
	"fmt"
	"log/slog"
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
		s, err := record.DecodeSequenced(rec.Value)
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
			if err := x.index.Delete(ctx, m.ConversationID, m.ID); err != nil && !chat.IsNotFound(err) {
				return fmt.Errorf("indexer: delete: %w", err)
			}
			continue
		}
		puts = append(puts, m)
	}
	if len(puts) > 0 {
		start := time.Now()
		if err := x.index.Put(ctx, puts); err != nil {
			return fmt.Errorf("indexer: put: %w", err)
		}
		x.pace(ctx, start)
	}
	return nil
}

// pace returns once x.interval has passed since start (or ctx is done), so
// that the records of this partition that arrive meanwhile are handed to
// the next call together: the offsets of this batch are committed when
// handle returns, which is at most x.interval late.
func (x *Indexer) pace(ctx context.Context, start time.Time) {
	wait := x.interval - time.Since(start)
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

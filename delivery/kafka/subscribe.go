package kafka

import (
	"context"
	"errors"
	"sync"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parleychat/parley/chat"
)

// Subscribe reads every partition of topic from its end at the time of the
// call: it lists the end offsets, calls ready, then fetches each partition
// on its own goroutine and hands every fetched batch to handle, one call at
// a time, until ctx is done (it then returns nil). Fetch failures are
// retried with a growing pause; if the log is closed it returns
// unavailable.
func (l *Log) Subscribe(ctx context.Context, topic string, ready func(), handle func(partition int, recs []chat.Record)) error {
	if ctx.Err() != nil {
		return nil
	}
	if !l.enter() {
		return errClosed("kafka: subscribe")
	}
	defer l.calls.Done()
	topic = l.name(topic)
	if err := l.ensureTopic(ctx, topic); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	start, err := l.endOffsets(ctx, topic)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return unavailable("kafka: subscribe to "+topic, err)
	}
	if ready != nil {
		ready()
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(l.life, cancel)
	defer stop()

	var mu sync.Mutex // one handle call at a time, as in the embedded log
	var wg sync.WaitGroup
	for p, off := range start {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var backoff fetchBackoff
			for rctx.Err() == nil {
				recs, err := l.fetch(rctx, topic, p, off)
				if err != nil {
					if rctx.Err() != nil {
						return
					}
					if errors.Is(err, kafkago.OffsetOutOfRange) {
						// Retention passed us by: go on from what is left.
						if first, err := l.offsets(rctx, topic, kafkago.FirstOffset); err == nil {
							off = max(off, first[p])
						}
					}
					if !backoff.wait(rctx) {
						return
					}
					continue
				}
				backoff = 0
				if len(recs) == 0 {
					continue
				}
				mu.Lock()
				handle(p, recs)
				mu.Unlock()
				off = recs[len(recs)-1].Offset + 1
			}
		}()
	}
	wg.Wait()
	if ctx.Err() == nil && l.life.Err() != nil {
		return errClosed("kafka: subscribe to " + topic)
	}
	return nil
}

// endOffsets lists the next offset of every partition of topic, retrying
// what Kafka calls temporary (a partition that has no leader yet) for up
// to requestTimeout.
func (l *Log) endOffsets(ctx context.Context, topic string) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var backoff fetchBackoff
	for {
		start, err := l.offsets(ctx, topic, kafkago.LastOffset)
		if err == nil || !retriable(err) || !backoff.wait(ctx) {
			return start, err
		}
	}
}

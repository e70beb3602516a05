package kafka

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parleychat/parley/chat"
)

// groupCloseWait bounds how long Consume waits for its group member to
// leave the group before returning; the rest of the leave runs under the
// Log (Close waits for it).
const groupCloseWait = 3 * time.Second

// joinPatience is how long Consume keeps trying to join a group through
// errors before it returns unavailable.
const joinPatience = 30 * time.Second

// Consume joins group on topic and hands each assigned partition's fetched
// batches to handle, in offset order, one call at a time per partition
// (partitions side by side). A batch's next
// offset is committed in the member's generation after handle returns nil
// (behind it, while the next batch is handled; see consumePartition); a
// commit refused because the generation ended leaves the batch to the
// partition's next owner. When the group rebalances, handle's
// ctx is cancelled and every partition reader of this member stops before
// it joins the next generation, so no partition is handled twice at once.
//
// When ctx is done or handle fails, the readers stop first and the member
// then leaves the group from the generation it is in: it never joins
// another one on its way out, which would make the rest of the group
// rebalance twice.
//
// It returns nil when ctx is done, the error of handle (unless handle
// failed because a rebalance cancelled its ctx), or unavailable when the
// group cannot be joined or the log is closed.
func (l *Log) Consume(ctx context.Context, topic, group string, handle func(ctx context.Context, partition int, recs []chat.Record) error) error {
	if ctx.Err() != nil {
		return nil
	}
	if group == "" {
		return chat.Errorf(chat.CodeInvalid, "kafka: empty group name")
	}
	if !l.enter() {
		return errClosed("kafka: consume")
	}
	defer l.calls.Done()
	topic, group = l.name(topic), l.name(group)
	if err := l.ensureTopic(ctx, topic); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	op := "kafka: consume " + topic + " as " + group
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                group,
		Brokers:           l.cfg.Brokers,
		Dialer:            l.dialer,
		Topics:            []string{topic},
		HeartbeatInterval: l.cfg.HeartbeatInterval,
		SessionTimeout:    l.cfg.SessionTimeout,
		RebalanceTimeout:  l.cfg.RebalanceTimeout,
		JoinGroupBackoff:  l.cfg.HeartbeatInterval,
		StartOffset:       kafkago.FirstOffset,
		Timeout:           requestTimeout,
	})
	if err != nil {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Err: err}
	}
	defer l.closeGroup(cg)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(l.life, cancel)
	defer stop()

	var failingSince time.Time
	for {
		gen, err := cg.Next(cctx)
		switch {
		case cctx.Err() != nil:
			return l.doneErr(ctx, op)
		case err != nil:
			// The group rejoins by itself (after JoinGroupBackoff, with a
			// fresh member id when it was evicted): a rebalance, a
			// coordinator that moved or is still loading, or a broker
			// restart is waited out for a while.
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if !joinRetriable(err) || time.Since(failingSince) > joinPatience {
				return unavailable(op, err)
			}
			continue
		}
		failingSince = time.Time{}
		if err := l.runGeneration(cctx, gen, topic, handle); err != nil {
			return err
		}
		if cctx.Err() != nil {
			return l.doneErr(ctx, op)
		}
	}
}

// joinRetriable reports whether a failed attempt to join a group is worth
// another: anything but a refusal that stays (bad group id or timeouts, no
// authorization).
func joinRetriable(err error) bool {
	var ke kafkago.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafkago.InvalidGroupId, kafkago.InvalidSessionTimeout, kafkago.InconsistentGroupProtocol,
			kafkago.GroupAuthorizationFailed, kafkago.TopicAuthorizationFailed, kafkago.ClusterAuthorizationFailed,
			kafkago.GroupMaxSizeReached:
			return false
		}
		return true
	}
	return retriable(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// doneErr is what Consume returns once its own ctx or the log is done.
func (l *Log) doneErr(ctx context.Context, op string) error {
	if ctx.Err() == nil && l.life.Err() != nil {
		return errClosed(op)
	}
	return nil
}

// closeGroup leaves the group, waiting a bounded time so that Consume
// returns promptly; a slow leave finishes under the Log, whose Close waits
// for it (kafka-go bounds every group request by its Timeout).
func (l *Log) closeGroup(cg *kafkago.ConsumerGroup) {
	done := make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(done)
		cg.Close()
	}()
	t := time.NewTimer(groupCloseWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// runGeneration reads this member's partitions until the generation ends,
// ctx is done or handle fails, and returns the first error of handle. It
// returns only once every partition reader has stopped handling.
//
// In kafka-go, a function started in a generation that returns ends the
// generation, and the member then joins the next one. So a reader returns
// at once only when the generation is over for it (a rebalance, or a
// commit the coordinator refused); when it stops because ctx is done or
// handle failed, it holds on until closeGroup ends the generation, so the
// member leaves without joining again.
func (l *Log) runGeneration(ctx context.Context, gen *kafkago.Generation, topic string,
	handle func(ctx context.Context, partition int, recs []chat.Record) error) error {
	// Each generation is an assignment of its own: a partition handled in
	// two generations may have been another member's in between.
	ctx = chat.WithAssignment(ctx, int64(gen.ID))
	rctx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()
	var readers sync.WaitGroup
	var errOnce sync.Once
	var handleErr error
	ended := make(chan struct{})
	gen.Start(func(gctx context.Context) {
		<-gctx.Done()
		close(ended)
	})
	for _, pa := range gen.Assignments[topic] {
		readers.Add(1)
		gen.Start(func(gctx context.Context) {
			pctx, cancel := context.WithCancel(rctx)
			stop := context.AfterFunc(gctx, cancel)
			err := l.consumePartition(pctx, gen, topic, pa.ID, pa.Offset, handle)
			stop()
			cancel()
			if err != nil {
				errOnce.Do(func() { handleErr = err })
				stopReaders()
			}
			stopping := rctx.Err() != nil
			readers.Done()
			if stopping {
				<-gctx.Done()
			}
		})
	}
	select {
	case <-ended:
	case <-rctx.Done():
	}
	readers.Wait()
	return handleErr
}

// consumePartition fetches one partition from offset and hands each batch
// to handle. It returns handle's error, or nil when ctx is done or the
// generation can no longer commit.
//
// The partition's next batch is fetched while handle works on the current
// one, and offsets are committed behind handle (and behind the release of
// a batch handle held, chat.HoldCommit) by a committer of its own,
// newest offset first (one that a newer one overtook is skipped): a
// sequencer batch then waits neither for a fetch nor for a commit round
// trip. A commit that lags at a crash or a rebalance only hands the next
// owner a few more records that were handled, which handle must take
// anyway (at least once).
func (l *Log) consumePartition(ctx context.Context, gen *kafkago.Generation, topic string, partition int, offset int64,
	handle func(ctx context.Context, partition int, recs []chat.Record) error) error {
	var backoff fetchBackoff
	for offset < 0 && ctx.Err() == nil { // no committed offset: the start of what is retained
		first, err := l.offsets(ctx, topic, kafkago.FirstOffset)
		if err == nil {
			offset = first[partition]
			break
		}
		if !backoff.wait(ctx) {
			return nil
		}
	}

	type fetched struct {
		recs []chat.Record
		err  error
	}
	fctx, cancelFetch := context.WithCancel(ctx)
	var fetches sync.WaitGroup
	defer func() {
		cancelFetch()
		fetches.Wait()
	}()
	fetchFrom := func(off int64) <-chan fetched {
		ch := make(chan fetched, 1)
		fetches.Add(1)
		go func() {
			defer fetches.Done()
			recs, err := l.fetch(fctx, topic, partition, off)
			ch <- fetched{recs, err}
		}()
		return ch
	}

	commits := make(chan int64, 1) // the newest offset not committed yet
	commitFailed := make(chan struct{})
	var committer sync.WaitGroup
	committer.Add(1)
	go func() {
		defer committer.Done()
		for next := range commits {
			if err := gen.CommitOffsets(map[string]map[int]int64{topic: {partition: next}}); err != nil {
				// The generation is over (or the coordinator gone):
				// whoever owns the partition next starts from the last
				// commit.
				close(commitFailed)
				for range commits {
				}
				return
			}
		}
	}()
	defer func() {
		close(commits) // the committer commits what is pending, then stops
		committer.Wait()
	}()
	commit := func(next int64) {
		for {
			select {
			case commits <- next:
				return
			default:
				select {
				case <-commits: // overtaken
				default:
				}
			}
		}
	}

	// Handled batches go to the waiter in offset order: it waits for the
	// release of each held one (chat.HoldCommit) before it commits that
	// batch's next offset, so no offset passes a batch not yet released.
	// A failed release stops the commits for good and ends the partition
	// with its error; the waiter still waits for every later hold, so the
	// partition is given up only once all of them are released.
	type handled struct {
		next int64
		hold *chat.CommitHold // nil: not held
	}
	pending := make(chan handled, maxHeldBatches)
	releaseFailed := make(chan struct{})
	var releaseErr error
	var waiter sync.WaitGroup
	waiter.Add(1)
	go func() {
		defer waiter.Done()
		failed := false
		for h := range pending {
			if h.hold != nil {
				if err := <-h.hold.Done(); err != nil && !failed {
					failed = true
					releaseErr = err
					close(releaseFailed)
				}
			}
			if !failed {
				commit(h.next)
			}
		}
	}()
	defer func() {
		close(pending) // the waiter waits for the holds, then stops
		waiter.Wait()
	}()
	stopped := func() error { // the error that ends the partition, if any
		select {
		case <-commitFailed:
			return errStopPartition
		case <-releaseFailed:
			if ctx.Err() != nil {
				return errStopPartition
			}
			return releaseErr
		default:
			return nil
		}
	}

	ahead := fetchFrom(offset)
	for ctx.Err() == nil {
		var f fetched
		select {
		case f = <-ahead:
		case <-ctx.Done():
			return nil
		case <-releaseFailed:
			return stopErr(stopped())
		}
		if f.err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(f.err, kafkago.OffsetOutOfRange) {
				if first, err := l.offsets(ctx, topic, kafkago.FirstOffset); err == nil && offset < first[partition] {
					offset = first[partition]
				}
			}
			if !backoff.wait(ctx) {
				return nil
			}
			ahead = fetchFrom(offset)
			continue
		}
		backoff = 0
		if len(f.recs) == 0 {
			ahead = fetchFrom(offset)
			continue
		}
		next := f.recs[len(f.recs)-1].Offset + 1
		ahead = fetchFrom(next)
		if err := stopped(); err != nil {
			return stopErr(err)
		}
		hold := chat.NewCommitHold()
		if err := handle(chat.WithCommitHold(ctx, hold.Hold), partition, f.recs); err != nil {
			if ctx.Err() != nil {
				// Most likely failed because a rebalance or shutdown
				// cancelled it; the batch stays uncommitted either way.
				return nil
			}
			return err
		}
		h := handled{next: next}
		if hold.Held() {
			h.hold = hold
		}
		// Never dropped, even when ctx is done: what handle took is
		// committed on the way out (the waiter drains pending as the
		// holds are released, so this does not block for long).
		pending <- h
		if err := stopped(); err != nil {
			return stopErr(err)
		}
		offset = next
	}
	return nil
}

// maxHeldBatches bounds the batches of a partition handled but not yet
// committed (held by chat.HoldCommit or waiting for one that is).
const maxHeldBatches = 16

// errStopPartition ends a partition reader without an error: its
// generation cannot commit, or its ctx is done.
var errStopPartition = errors.New("kafka: partition stopped")

func stopErr(err error) error {
	if errors.Is(err, errStopPartition) {
		return nil
	}
	return err
}

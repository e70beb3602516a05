package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/retry"
)

// producerKey names one partition of one topic.
type producerKey struct {
	topic     string
	partition int
}

// produceReq is the part of one Append call that goes to one partition.
type produceReq struct {
	recs  []rawRecord
	bytes int
	done  chan produceResult // buffered: the producer never waits on it
}

// rawRecord is a record's key and value, owned by the log.
type rawRecord struct{ key, value []byte }

type produceResult struct {
	offsets []int64 // of the request's records, in order
	err     error
}

// producer owns one partition's produce requests: one in flight at a time,
// so appends keep their order, and what queues meanwhile (or within
// BatchTimeout) goes out together.
type producer struct {
	key producerKey
	in  chan *produceReq
}

// Append routes recs by key, produces them with acks=all and fills in
// their Partition and Offset. Values are copied before Append returns, so
// the caller may reuse them at once.
func (l *Log) Append(ctx context.Context, topic string, recs ...*chat.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if l.isClosed() {
		return errClosed("kafka: append")
	}
	topic = l.name(topic)
	if err := l.ensureTopic(ctx, topic); err != nil {
		return err
	}
	n := l.cfg.Partitions
	// One copy of every value, in one buffer: the request may outlive a
	// cancelled Append.
	size := 0
	for _, r := range recs {
		size += len(r.Value)
	}
	buf := make([]byte, 0, size)
	parts := map[int]*produceReq{}
	var order []int // partitions in first-seen order
	index := make([]int, len(recs))
	for i, r := range recs {
		p := chat.PartitionOf(r.Key, n)
		req := parts[p]
		if req == nil {
			req = &produceReq{done: make(chan produceResult, 1)}
			parts[p] = req
			order = append(order, p)
		}
		start := len(buf)
		buf = append(buf, r.Value...)
		index[i] = len(req.recs)
		req.recs = append(req.recs, rawRecord{key: []byte(r.Key), value: buf[start:len(buf):len(buf)]})
		req.bytes += len(r.Key) + len(r.Value)
	}
	for _, p := range order {
		pr, err := l.producer(topic, p)
		if err != nil {
			return err
		}
		select {
		case pr.in <- parts[p]:
		case <-ctx.Done():
			return unavailable("kafka: append", ctx.Err())
		case <-l.life.Done():
			return errClosed("kafka: append")
		}
	}
	offsets := map[int][]int64{}
	var firstErr error
	for _, p := range order {
		select {
		case res := <-parts[p].done:
			if res.err != nil && firstErr == nil {
				firstErr = res.err
			}
			offsets[p] = res.offsets
		case <-ctx.Done():
			return unavailable("kafka: append", ctx.Err())
		case <-l.life.Done(): // a producer that stops leaves queued requests unanswered
			return errClosed("kafka: append")
		}
	}
	if firstErr != nil {
		return firstErr
	}
	for i, r := range recs {
		p := chat.PartitionOf(r.Key, n)
		r.Partition = p
		r.Offset = offsets[p][index[i]]
	}
	return nil
}

// producer returns the running producer of one partition, starting it on
// first use.
func (l *Log) producer(topic string, partition int) (*producer, error) {
	key := producerKey{topic, partition}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errClosed("kafka: append")
	}
	if p := l.producers[key]; p != nil {
		return p, nil
	}
	p := &producer{key: key, in: make(chan *produceReq, 256)}
	l.producers[key] = p
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.runProducer(p)
	}()
	return p, nil
}

func (l *Log) runProducer(p *producer) {
	var batch []*produceReq
	for {
		batch = batch[:0]
		select {
		case req := <-p.in:
			batch = append(batch, req)
		case <-l.life.Done():
			return
		}
		count, bytes := len(batch[0].recs), batch[0].bytes
		if count < maxBatchRecords && bytes < maxBatchBytes {
			linger := l.life.Done()
			timer := time.NewTimer(l.cfg.BatchTimeout)
		gather:
			for count < maxBatchRecords && bytes < maxBatchBytes {
				select {
				case req := <-p.in:
					batch = append(batch, req)
					count += len(req.recs)
					bytes += req.bytes
				case <-timer.C:
					break gather
				case <-linger:
					timer.Stop()
					l.fail(batch, errClosed("kafka: append"))
					return
				}
			}
			timer.Stop()
		}
		l.produce(p.key, batch, count)
	}
}

// splitBytes bounds one produce request well below the broker's default
// message.max.bytes (1 MiB), whatever one Append hands over: a sequencer
// batch of big messages must not become a request the broker refuses
// for ever.
const splitBytes = 512 << 10

// produce sends batch in order, in requests of at most splitBytes (one
// record at least), and reports each record's offset. Other writers may
// come between two requests, so offsets are per record.
func (l *Log) produce(key producerKey, batch []*produceReq, count int) {
	recs := make([]rawRecord, 0, count)
	for _, req := range batch {
		recs = append(recs, req.recs...)
	}
	offs := make([]int64, 0, len(recs))
	for start := 0; start < len(recs); {
		end, size := start, 0
		for end < len(recs) && (end == start || size+len(recs[end].key)+len(recs[end].value) <= splitBytes) {
			size += len(recs[end].key) + len(recs[end].value)
			end++
		}
		base, err := l.produceRecords(key, recs[start:end])
		if err != nil {
			l.fail(batch, err) // what was written stays: producing is at least once
			return
		}
		for i := start; i < end; i++ {
			offs = append(offs, base+int64(i-start))
		}
		start = end
	}
	for _, req := range batch {
		req.done <- produceResult{offsets: offs[:len(req.recs):len(req.recs)]}
		offs = offs[len(req.recs):]
	}
}

func (l *Log) fail(batch []*produceReq, err error) {
	for _, req := range batch {
		req.done <- produceResult{err: err}
	}
}

// produceRecords writes recs to one partition, retrying what Kafka calls
// temporary for up to requestTimeout, and returns the first record's offset.
func (l *Log) produceRecords(key producerKey, recs []rawRecord) (int64, error) {
	op := fmt.Sprintf("kafka: append to %s/%d", key.topic, key.partition)
	ctx, cancel := context.WithTimeout(l.life, requestTimeout)
	defer cancel()
	backoff := 10 * time.Millisecond
	for {
		// A RecordReader is consumed by a send: a fresh one per try.
		res, err := l.client.Produce(ctx, &kafkago.ProduceRequest{
			Topic:        key.topic,
			Partition:    key.partition,
			RequiredAcks: kafkago.RequireAll,
			Records:      kafkago.NewRecordReader(kafkaRecords(recs)...),
		})
		if err == nil && res != nil && res.Error != nil {
			err = res.Error
		}
		if err == nil && res != nil && len(res.RecordErrors) > 0 {
			for _, e := range res.RecordErrors {
				err = e
				break
			}
			return 0, &chat.Error{Code: chat.CodeInvalid, Op: op, Err: err}
		}
		if err == nil {
			if res == nil {
				return 0, &chat.Error{Code: chat.CodeInternal, Op: op, Message: "no produce response"}
			}
			return res.BaseOffset, nil
		}
		if l.life.Err() != nil {
			return 0, errClosed(op)
		}
		if errors.Is(err, kafkago.MessageSizeTooLarge) || errors.Is(err, kafkago.RecordListTooLarge) {
			return 0, &chat.Error{Code: chat.CodeTooLarge, Op: op, Err: err}
		}
		if !retriable(err) || !retry.Sleep(ctx, backoff) {
			return 0, unavailable(op, err)
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// kafkaRecords wraps recs for one produce request.
func kafkaRecords(recs []rawRecord) []kafkago.Record {
	out := make([]kafkago.Record, len(recs))
	for i, r := range recs {
		out[i] = kafkago.Record{Key: kafkago.NewBytes(r.key), Value: kafkago.NewBytes(r.value)}
	}
	return out
}

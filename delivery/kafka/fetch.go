package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/retry"
)

// fetch long-polls one partition from offset and returns the records at or
// above it, in offset order (possibly none). Kafka answers with whole
// record batches, which may start below offset; those records are dropped.
func (l *Log) fetch(ctx context.Context, topic string, partition int, offset int64) ([]chat.Record, error) {
	res, err := l.client.Fetch(ctx, &kafkago.FetchRequest{
		Topic:     topic,
		Partition: partition,
		Offset:    offset,
		MinBytes:  1,
		MaxBytes:  fetchMaxBytes,
		MaxWait:   l.cfg.MaxWait,
	})
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, res.Error
	}
	var recs []chat.Record
	for {
		r, err := res.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read records: %w", err)
		}
		if r.Offset < offset {
			continue
		}
		var key, value []byte
		if r.Key != nil {
			if key, err = kafkago.ReadAll(r.Key); err != nil {
				return nil, fmt.Errorf("read key: %w", err)
			}
		}
		if r.Value != nil {
			if value, err = kafkago.ReadAll(r.Value); err != nil {
				return nil, fmt.Errorf("read value: %w", err)
			}
		}
		recs = append(recs, chat.Record{Key: string(key), Value: value, Partition: partition, Offset: r.Offset})
	}
}

// offsets lists, per partition of topic, the first (kafkago.FirstOffset)
// or the next (kafkago.LastOffset) offset.
func (l *Log) offsets(ctx context.Context, topic string, which int64) ([]int64, error) {
	reqs := make([]kafkago.OffsetRequest, l.cfg.Partitions)
	for p := range reqs {
		reqs[p] = kafkago.OffsetRequest{Partition: p, Timestamp: which}
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := l.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, err
	}
	out := make([]int64, l.cfg.Partitions)
	seen := 0
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, po.Error
		}
		if po.Partition < 0 || po.Partition >= len(out) {
			continue
		}
		if which == kafkago.FirstOffset {
			out[po.Partition] = po.FirstOffset
		} else {
			out[po.Partition] = po.LastOffset
		}
		seen++
	}
	if seen != len(out) {
		return nil, fmt.Errorf("list offsets of %s: %d of %d partitions answered", topic, seen, len(out))
	}
	return out, nil
}

// fetchBackoff is the pause after a failed fetch, growing to a second.
type fetchBackoff time.Duration

func (b *fetchBackoff) wait(ctx context.Context) bool {
	if *b == 0 {
		*b = fetchBackoff(50 * time.Millisecond)
	}
	ok := retry.Sleep(ctx, time.Duration(*b))
	*b = min(2**b, fetchBackoff(time.Second))
	return ok
}

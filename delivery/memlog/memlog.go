// Package memlog is the embedded chat.Log: every topic has a fixed number
// of in-process partitions, with consumer groups and broadcast reads, for
// running Parley as one process.
//
// Records live in memory only. What does live on disk, in Config.Dir, is
// one small file per topic holding a reserved offset mark: offsets are
// handed out below the mark, the mark is raised (written and synced before
// any offset above the old mark is used) in blocks of reserveBlock, and
// after a restart every partition of the topic starts at the mark. So an
// offset is never reused and, per partition, offsets never go back, also
// across restarts, which the cursor relies on.
//
// Committed group offsets live in memory only: after a restart the records
// they point into are gone too, and a group starts at the (then empty)
// beginning of the log. What a restart must keep, the Store keeps.
//
// Memory: a partition keeps every record some reader may still need: those
// at or above the lowest committed offset of every group that ever joined
// the topic in this process (with or without live members), and those at or
// above the position of every live subscriber, plus a tail of
// Config.Retain already-read records for groups that join later. Appends
// never wait for readers, so a reader that stops reading (a stuck
// subscriber, or a group whose members are all gone) keeps everything
// appended after its position in memory until it reads on or, for a
// subscriber, until it returns.
//
// Handlers get batches that share memory with the log and with other
// readers: they may keep them but must not modify them.
package memlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"sync"
	"sync/atomic"

	"github.com/parleychat/parley/chat"
)

const (
	// maxBatch bounds the records handed to one handle call.
	maxBatch = 512
	// chunkSize is the number of records in one storage chunk; memory is
	// allocated and freed a chunk at a time.
	chunkSize = 512
	// reserveBlock is how far the on-disk mark is raised at a time.
	reserveBlock = 1 << 20
	// arenaSize is the size of the blocks record values are copied into.
	arenaSize = 16 << 10
	// DefaultRetain is the default of Config.Retain.
	DefaultRetain = 1024
)

// Config configures the embedded log. Partitions and Dir are required.
type Config struct {
	// Dir holds the reserved offset marks, one file per topic.
	Dir string
	// Partitions is the partition count of every topic.
	Partitions int
	// Retain is how many records every partition keeps beyond what all its
	// readers have passed, for groups that join later (rounded up to
	// chunks of 512). Zero means DefaultRetain.
	Retain int
	// Parallel is, by consumer group, how many batches one member of the
	// group hands to its handler at once, each of a different partition
	// (chat.Log allows that; a partition's batches still never overlap). A
	// group not named here gets one batch at a time. A handler whose
	// batches wait on something they could share (the sequencer's synced
	// Store commits) gains from more; one whose batches compete for the
	// same resource (the indexer's writes) does not.
	Parallel map[string]int
}

// Validate reports whether cfg is usable.
func (cfg Config) Validate() error {
	switch {
	case cfg.Dir == "":
		return errors.New("memlog: Dir is required")
	case cfg.Partitions < 1:
		return fmt.Errorf("memlog: Partitions must be at least 1, not %d", cfg.Partitions)
	case cfg.Retain < 0:
		return fmt.Errorf("memlog: Retain must not be negative, not %d", cfg.Retain)
	}
	for g, n := range cfg.Parallel {
		if n < 1 {
			return fmt.Errorf("memlog: Parallel of group %q must be at least 1, not %d", g, n)
		}
	}
	return nil
}

// Log is the embedded chat.Log. It is safe for concurrent use.
type Log struct {
	dir        string
	partitions int
	retain     int64
	parallel   map[string]int // Config.Parallel, copied
	// parallelAll, when above 1, is the Parallel of every group not in
	// parallel (tests run the Log contract with it).
	parallelAll int

	closeOnce sync.Once
	closed    chan struct{}

	mu     sync.Mutex                        // serializes topic creation
	topics atomic.Pointer[map[string]*topic] // copied on write, read without locks
	marks  map[string]int64                  // marks found on disk at Open, by topic; guarded by mu
}

var _ chat.Log = (*Log)(nil)

// Open opens the log whose offset marks live in cfg.Dir, creating the
// folder if needed.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("memlog: open: %w", err)
	}
	marks, err := loadMarks(cfg.Dir)
	if err != nil {
		return nil, err
	}
	retain := cfg.Retain
	if retain == 0 {
		retain = DefaultRetain
	}
	l := &Log{
		dir:        cfg.Dir,
		partitions: cfg.Partitions,
		retain:     int64(retain),
		parallel:   maps.Clone(cfg.Parallel),
		closed:     make(chan struct{}),
		marks:      marks,
	}
	l.topics.Store(&map[string]*topic{})
	return l, nil
}

// Close stops the log: Append and Ping fail with CodeUnavailable from now
// on, and running Consume and Subscribe calls return. Everything the log
// needs after a restart is already on disk, so Close writes nothing.
func (l *Log) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// Partitions is the partition count of every topic.
func (l *Log) Partitions() int { return l.partitions }

// Ping reports whether the log is open.
func (l *Log) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return chat.ContextError("memlog: ping", err)
	}
	if l.isClosed() {
		return l.errClosed("memlog: ping")
	}
	return nil
}

func (l *Log) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

func (l *Log) errClosed(op string) error {
	return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "log is closed"}
}

// topic returns the named topic, creating it on first use.
func (l *Log) topic(name string) (*topic, error) {
	if t, ok := (*l.topics.Load())[name]; ok {
		return t, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.topics.Load()
	if t, ok := old[name]; ok {
		return t, nil
	}
	file, err := markFile(name)
	if err != nil {
		return nil, err
	}
	t := newTopic(l, name, file, l.marks[name])
	topics := make(map[string]*topic, len(old)+1)
	for k, v := range old {
		topics[k] = v
	}
	topics[name] = t
	l.topics.Store(&topics)
	return t, nil
}

// Append writes recs to topic and fills in their Partition and Offset. It
// copies the values, so the caller may reuse them once Append returns. It
// never waits for readers.
func (l *Log) Append(ctx context.Context, topicName string, recs ...*chat.Record) error {
	if err := ctx.Err(); err != nil {
		return chat.ContextError("memlog: append", err)
	}
	if l.isClosed() {
		return l.errClosed("memlog: append")
	}
	if len(recs) == 0 {
		return nil
	}
	t, err := l.topic(topicName)
	if err != nil {
		return err
	}
	for i := range recs {
		recs[i].Partition = chat.PartitionOf(recs[i].Key, l.partitions)
	}
	// Runs of records bound for one partition go in under one lock; order
	// within a partition is the order of recs.
	for i := 0; i < len(recs); {
		p := recs[i].Partition
		j := i + 1
		for j < len(recs) && recs[j].Partition == p {
			j++
		}
		if err := t.parts[p].append(t, p, recs[i:j]); err != nil {
			t.wakeAll()
			return err
		}
		i = j
	}
	t.wakeAll()
	return nil
}

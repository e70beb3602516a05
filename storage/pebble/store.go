// Package pebble is Parley's embedded chat.Store: conversations,
// memberships, the event log, materialized messages, dedup records, heads
// and deployment metadata in one Pebble database (an LSM key-value store)
// in a local folder.
//
// Every Commit is one Pebble batch written with a synced WAL, so it is
// atomic and durable when it returns. Commits are fenced per partition and
// conversation under a lock per name: the stored LastSeq is read and
// checked against the change's PrevSeq under the same lock that covers the
// write, held until the write is durable. Commits of different partitions
// run at once and share WAL syncs.
package pebble

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/internal/guard"
)

// Config configures the store.
type Config struct {
	// Dir is the database folder; Open creates it when missing.
	Dir string
	// Logger receives Pebble's own messages (info at debug level); nil
	// discards them.
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("pebble: config: dir is required")
	}
	return nil
}

// Store is a chat.Store on Pebble. Open it with Open; it is safe for
// concurrent use.
type Store struct {
	db *pebble.DB

	// purgeMu serializes purges of deleted text (flushes and compactions).
	purgeMu sync.Mutex

	// life is held shared by every operation and exclusively by Close, so
	// Close waits for operations in flight and none starts after it (Pebble
	// panics on a closed DB).
	life guard.Guard

	// fence serializes the read-check-write of Commits that touch the same
	// conversation (or the same partition); Commits of other partitions
	// and conversations run concurrently, and share their WAL syncs
	// (Pebble syncs every write queued by then in one fsync).
	// It is held through the WAL sync: Refuse, which takes the
	// partition's lock, must never read a claim that is applied but not
	// yet durable, or a gateway would answer 201 for a message a crash
	// could lose.
	fence fences
	// metaMu makes Meta's set-if-absent atomic.
	metaMu sync.Mutex
	// devMu makes PutDevice's and DeleteDevice's read-then-write atomic.
	devMu sync.Mutex

	// convs keeps decoded conversations for Conversation (see convCache).
	convs convCache
}

var _ chat.Store = (*Store)(nil)

// l0CompactionThreshold is Pebble's L0CompactionThreshold: L0 compacts
// once it has half this many sublevels.
const l0CompactionThreshold = 16

// Open opens (or creates) the database in cfg.Dir.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	return open(ctx, cfg, vfs.Default)
}

// open is Open on the file system fs (tests hold or fail its syncs).
func open(ctx context.Context, cfg Config, fs vfs.FS) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebble: open: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := &pebble.Options{
		// Pinned rather than left to the library's default, which may change.
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{logger.With("component", "pebble")},
		FS:                 noRecycleFS{fs},
		// Listing a user's conversations reads each one's state: the
		// library's 8 MiB block cache let a few thousand of them, spread
		// over the levels, evict each other. The cache fills only as used.
		CacheSize: 64 << 20,
		// Sends spread over many conversations, so every memtable flush
		// overlaps the whole store, and an L0 compaction rewrites all of
		// it (while it is under LBaseMaxBytes, L0 compacts straight into
		// the last level). The library compacts L0 at half this many
		// sublevels: its default of 4 compacted every second flush, every
		// ~3 s at 1,000 sends/s, taking a core for 0.2 s, and the commits
		// inside it waited 10-16 ms. At 16 it compacts every eighth flush;
		// point reads skip the sublevels by their filters.
		L0CompactionThreshold: l0CompactionThreshold,
		L0StopWritesThreshold: 3 * l0CompactionThreshold,
	}
	// Bloom filters (inherited by every level) spare point reads of absent
	// keys, such as a dedup miss, a block read per level.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", cfg.Dir, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database after the operations in flight. Closing twice
// is harmless; every operation after Close fails with CodeUnavailable.
func (s *Store) Close() error {
	return s.life.Close(func() error {
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("pebble: close: %w", err)
		}
		return nil
	})
}

// enter starts an operation: it fails when ctx is done or the store is
// closed; otherwise the caller must call s.leave when done.
func (s *Store) enter(ctx context.Context, op string) error { return s.life.Enter(ctx, op) }

func (s *Store) leave() { s.life.Leave() }

// Ping reports whether the store answers: it is open and can read.
func (s *Store) Ping(ctx context.Context) error {
	const op = "pebble: ping"
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	defer s.leave()
	if _, _, err := getRaw(s.db, metaKey("")); err != nil {
		return classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return nil
}

// Meta returns the value of key, setting it to value first when unset.
func (s *Store) Meta(ctx context.Context, key, value string) (string, error) {
	const op = "pebble: meta"
	if err := s.enter(ctx, op); err != nil {
		return "", err
	}
	defer s.leave()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	k := metaKey(key)
	v, found, err := getRaw(s.db, k)
	if err != nil {
		return "", classify(op, fmt.Errorf("%s: %w", op, err))
	}
	if found {
		return string(v), nil
	}
	if err := s.db.Set(k, []byte(value), pebble.Sync); err != nil {
		return "", classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return value, nil
}

// Heads returns the highest committed position of partitions 0…n-1.
func (s *Store) Heads(ctx context.Context, partitions int) ([]int64, error) {
	const op = "pebble: heads"
	if partitions < 0 {
		return nil, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "negative partition count"}
	}
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	heads := make([]int64, partitions)
	prefix := headPrefix()
	err := scan(s.db, prefix, prefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		p := trailingUint(k)
		if p >= uint64(partitions) {
			return false, nil
		}
		pos, err := decodeUint(v)
		if err != nil {
			return false, fmt.Errorf("partition %d: %w", p, err)
		}
		heads[p] = int64(pos)
		return true, nil
	})
	if err != nil {
		return nil, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return heads, nil
}

// reader is what the DB and an indexed batch share for point reads.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// getRaw returns a copy of the value of key and whether it exists.
func getRaw(r reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

// getJSON decodes the stored form (record.DecodeRow) at key into v and
// reports whether it exists.
func getJSON(r reader, key []byte, v any) (bool, error) {
	b, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = record.DecodeRow(b, v)
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	return err == nil, err
}

// getUint returns the number stored at key.
func getUint(r reader, key []byte) (uint64, bool, error) {
	b, found, err := getRaw(r, key)
	if err != nil || !found {
		return 0, false, err
	}
	v, err := decodeUint(b)
	return v, err == nil, err
}

// iterable is what the DB and an indexed batch share for range reads.
type iterable interface {
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// scan calls fn with each key and value in [lo, hi), in key order or, with
// reverse, backwards, until fn returns false. k and v are valid only
// during the call.
func scan(r iterable, lo, hi []byte, reverse bool, fn func(k, v []byte) (bool, error)) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	step := it.Next
	ok := false
	if reverse {
		step = it.Prev
		ok = it.Last()
	} else {
		ok = it.First()
	}
	for ; ok; ok = step() {
		var v []byte
		if v, err = it.ValueAndErr(); err != nil {
			break
		}
		var more bool
		if more, err = fn(it.Key(), v); err != nil || !more {
			break
		}
	}
	if err == nil {
		err = it.Error()
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

// notFound is the classified error of a missing thing.
func notFound(op, what string) error {
	return &chat.Error{Code: chat.CodeNotFound, Op: op, Message: what + " not found", Err: pebble.ErrNotFound}
}

// pebbleLogger passes Pebble's messages to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

// Fatalf must not return: Pebble calls it on corruption it cannot go on
// from.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic("pebble: fatal: " + msg)
}

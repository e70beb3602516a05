package pebble

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/internal/testutil"
)

// walFS holds the syncs of the WAL's files while its gate is closed, and
// can make them fail; it counts the syncs it let through.
type walFS struct {
	vfs.FS
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	fail    error         // what a sync answers once let through, if set
	waiting atomic.Int32  // syncs held now
	syncs   atomic.Int32  // syncs let through since the gate last closed
}

func (w *walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.Create(name, category)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &walFile{File: f, fs: w}, nil
}

// hold closes the gate: WAL syncs wait from now on.
func (w *walFS) hold() {
	w.mu.Lock()
	w.gate = make(chan struct{})
	w.syncs.Store(0)
	w.mu.Unlock()
}

// release opens the gate; the syncs let through answer fail.
func (w *walFS) release(fail error) {
	w.mu.Lock()
	w.fail = fail
	if w.gate != nil {
		close(w.gate)
		w.gate = nil
	}
	w.mu.Unlock()
}

func (w *walFS) pass() error {
	w.mu.Lock()
	g := w.gate
	w.mu.Unlock()
	if g != nil {
		w.waiting.Add(1)
		<-g
		w.waiting.Add(-1)
	}
	w.syncs.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fail
}

type walFile struct {
	vfs.File
	fs *walFS
}

func (f *walFile) Sync() error {
	if err := f.fs.pass(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *walFile) SyncData() error {
	if err := f.fs.pass(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *walFile) SyncTo(n int64) (bool, error) {
	if err := f.fs.pass(); err != nil {
		return false, err
	}
	return f.File.SyncTo(n)
}

// firstSend is the first message of a new conversation cid, at offset.
func firstSend(cid string, offset int64) chat.Change {
	at := time.Now().UTC()
	pos := chat.Position(offset, 0)
	c := chat.Conversation{ID: cid, Kind: chat.KindGroup, Members: []string{"alice", "bob"}, LastSeq: 1, LastPosition: pos, LastActivity: at}
	m := chat.Message{ID: chat.NewID("msg"), ConversationID: cid, Seq: 1, SenderID: "alice", ClientID: "c-" + cid, Text: "hi", CreatedAt: at, Version: 1}
	m.Normalize()
	mc := m
	return chat.Change{
		Conversation: c,
		Events: []chat.Event{{
			Type: chat.EventMessageCreated, ConversationID: cid, Seq: 1, EventID: chat.NewID("evt"),
			At: at, Actor: "alice", Message: &mc, Position: pos,
		}},
		Messages: []chat.Message{m},
		Dedups:   []chat.Dedup{{ConversationID: cid, SenderID: "alice", ClientID: m.ClientID, MessageID: m.ID}},
	}
}

// oldStripe is the fence stripe (of 64, FNV-1a) a name had before each
// name got a lock of its own; the tests pick conversations that shared
// one, so they fail if unrelated Commits wait for each other again.
func oldStripe(name string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return h % 64
}

// sharedStripe returns n conversation ids other than cid whose old stripe
// was cid's.
func sharedStripe(cid string, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		c := fmt.Sprintf("cnv_other_%d", i)
		if oldStripe(c) == oldStripe(cid) {
			out = append(out, c)
		}
	}
	return out
}

// heldCommits starts a Commit of a first send in partition 0 and waits
// until its WAL sync is held, then one in each of partitions 1 and 2, and
// waits until both are applied (Pebble makes a synced write readable
// before its sync): so they are past their fences and queued for the next
// sync. The Commits' results come on the channel.
func heldCommits(t *testing.T, s *Store, w *walFS) <-chan error {
	t.Helper()
	ctx := context.Background()
	epochs := make([]int64, 3)
	for p := range epochs {
		e, err := s.Own(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		epochs[p] = e
	}
	cids := append([]string{"cnv_first"}, sharedStripe("cnv_first", 2)...)
	errs := make(chan error, len(cids))
	w.hold()
	commit := func(p int) {
		go func() {
			defer func() {
				// Pebble stops on a failed WAL sync (Fatalf, which the
				// store's logger turns into a panic of the caller).
				if r := recover(); r != nil {
					errs <- fmt.Errorf("panic: %v", r)
				}
			}()
			errs <- s.Commit(ctx, p, epochs[p], chat.Position(int64(p+1), 0), []chat.Change{firstSend(cids[p], int64(p+1))})
		}()
	}
	commit(0)
	testutil.Eventually(t, 5*time.Second, func() error {
		if w.waiting.Load() == 0 {
			return errors.New("the first Commit does not wait for its sync")
		}
		return nil
	})
	commit(1)
	commit(2)
	testutil.Eventually(t, 5*time.Second, func() error {
		for _, cid := range cids[1:] {
			if _, err := s.Conversation(ctx, cid); err != nil {
				return fmt.Errorf("%s: %w", cid, err)
			}
		}
		return nil
	})
	select {
	case err := <-errs:
		t.Fatalf("a Commit returned (%v) before its WAL sync", err)
	default:
	}
	return errs
}

// While one partition's Commit waits for its WAL sync, Commits of other
// partitions (whose conversations shared a fence stripe with it before)
// are applied rather than queued behind its lock, none returns before the
// sync that covers it, and the two that came during the first sync share
// the next one: three Commits, two WAL syncs.
func TestCommitsOfOtherPartitionsShareAWALSync(t *testing.T) {
	w := &walFS{FS: vfs.Default}
	s, err := open(context.Background(), Config{Dir: t.TempDir()}, w)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer w.release(nil) // before Close, which waits for the Commits
	errs := heldCommits(t, s, w)
	w.release(nil)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	if n := w.syncs.Load(); n != 2 {
		t.Errorf("%d WAL syncs for three Commits, two of them concurrent; want 2", n)
	}
}

// A WAL sync that fails fails every Commit waiting for it: none of them
// returns as stored. Pebble takes a failed WAL sync as fatal (what its
// memtable holds is no longer known to be on disk), so each one panics
// (pebbleLogger.Fatalf) rather than return, and the process restarts from
// what is durable.
func TestFailedWALSyncFailsEveryCommitWaitingForIt(t *testing.T) {
	w := &walFS{FS: vfs.Default}
	s, err := open(context.Background(), Config{Dir: t.TempDir()}, w)
	if err != nil {
		t.Fatal(err)
	}
	errs := heldCommits(t, s, w)
	w.release(&fs.PathError{Op: "fdatasync", Path: "000002.log", Err: syscall.EIO})
	for range 3 {
		err := <-errs
		if err == nil || !strings.Contains(err.Error(), "input/output error") {
			t.Errorf("Commit after a failed WAL sync: %v, want it failed by the sync's error", err)
		}
	}
	func() {
		defer func() { _ = recover() }() // the WAL is broken: Close may stop too
		_ = s.Close()
	}()
}

// BenchmarkCommitPartitions measures synced Commits of several partitions
// at once, as the embedded sequencer makes them (memlog's Parallel): each
// of 8 goroutines commits batches of 5 sends in 5 conversations of its
// own partition.
func BenchmarkCommitPartitions(b *testing.B) {
	ctx := context.Background()
	s := openAt(b, b.TempDir())
	defer s.Close()
	text := strings.Repeat("x", 100)
	var next atomic.Int32
	b.SetParallelism(max(1, 8/runtimeProcs()))
	b.RunParallel(func(pb *testing.PB) {
		p := int(next.Add(1)) - 1
		epoch, err := s.Own(ctx, p)
		if err != nil {
			b.Error(err)
			return
		}
		convs := make([]chat.Conversation, 5)
		for i := range convs {
			convs[i] = chat.Conversation{ID: fmt.Sprintf("cnv_bench_%02d_%d", p, i), Kind: chat.KindGroup, Members: []string{"alice", "bob"}}
		}
		var offset int64
		for pb.Next() {
			changes, head := benchChanges(len(convs), convs, &offset, text)
			if err := s.Commit(ctx, p, epoch, head, changes); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkCommitWriters measures synced Commits of one send each, made by
// 1, 8 or 64 writers at once, each in its own partition and conversation
// (the embedded sequencer with --sequencer.batches 1, 8 or 64 when every
// partition has a command waiting). One op is one Commit: with the WAL
// syncs of concurrent Commits shared, ns/op falls as writers grow.
func BenchmarkCommitWriters(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			ctx := context.Background()
			s := openAt(b, b.TempDir())
			defer s.Close()
			text := strings.Repeat("x", 100)
			var next atomic.Int32
			b.SetParallelism(max(1, writers/runtimeProcs()))
			b.RunParallel(func(pb *testing.PB) {
				p := int(next.Add(1)) - 1
				epoch, err := s.Own(ctx, p)
				if err != nil {
					b.Error(err)
					return
				}
				convs := []chat.Conversation{{ID: fmt.Sprintf("cnv_bench_%03d", p), Kind: chat.KindGroup, Members: []string{"alice", "bob"}}}
				var offset int64
				for pb.Next() {
					changes, head := benchChanges(1, convs, &offset, text)
					if err := s.Commit(ctx, p, epoch, head, changes); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

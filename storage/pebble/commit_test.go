package pebble

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/internal/testutil"
)

// gatedFS holds the syncs of the WAL's files while closed.
type gatedFS struct {
	vfs.FS
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	waiting atomic.Int32  // syncs held now
}

func (fs *gatedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &gatedFile{File: f, fs: fs}, nil
}

func (fs *gatedFS) close() {
	fs.mu.Lock()
	fs.gate = make(chan struct{})
	fs.mu.Unlock()
}

func (fs *gatedFS) open() {
	fs.mu.Lock()
	if fs.gate != nil {
		close(fs.gate)
		fs.gate = nil
	}
	fs.mu.Unlock()
}

func (fs *gatedFS) pass() {
	fs.mu.Lock()
	g := fs.gate
	fs.mu.Unlock()
	if g != nil {
		fs.waiting.Add(1)
		<-g
		fs.waiting.Add(-1)
	}
}

type gatedFile struct {
	vfs.File
	fs *gatedFS
}

func (f *gatedFile) Sync() error     { f.fs.pass(); return f.File.Sync() }
func (f *gatedFile) SyncData() error { f.fs.pass(); return f.File.SyncData() }
func (f *gatedFile) SyncTo(n int64) (bool, error) {
	f.fs.pass()
	return f.File.SyncTo(n)
}

// sendChange is a first message in a new conversation cid.
func sendChange(cid string, offset int64) chat.Change {
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

// A Commit waiting for its WAL sync does not hold its fence: a Commit
// that shares a stripe with it (here the partition's head) is applied,
// and readable, meanwhile, and both return once the sync is done.
func TestCommitWaitingForItsSyncHoldsNoLock(t *testing.T) {
	ctx := context.Background()
	fs := &gatedFS{FS: vfs.Default}
	s, err := open(ctx, Config{Dir: t.TempDir()}, fs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	epoch, err := s.Own(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	fs.close()
	defer fs.open()
	errs := make(chan error, 2)
	go func() {
		errs <- s.Commit(ctx, 0, epoch, chat.Position(1, 0), []chat.Change{sendChange("cnv_first", 1)})
	}()
	testutil.Eventually(t, 5*time.Second, func() error {
		if fs.waiting.Load() == 0 {
			return fmt.Errorf("the first Commit is not waiting for its sync")
		}
		return nil
	})
	go func() {
		errs <- s.Commit(ctx, 0, epoch, chat.Position(2, 0), []chat.Change{sendChange("cnv_second", 2)})
	}()
	testutil.Eventually(t, 5*time.Second, func() error {
		c, err := s.Conversation(ctx, "cnv_second")
		if err != nil {
			return err
		}
		if c.LastSeq != 1 {
			return fmt.Errorf("second conversation at seq %d", c.LastSeq)
		}
		return nil
	})
	select {
	case err := <-errs:
		t.Fatalf("a Commit returned (%v) before its sync", err)
	default:
	}
	fs.open()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
}

// BenchmarkCommitPartitions measures synced Commits of several partitions
// at once, as the embedded sequencer makes them (memlog's Parallel): each
// of 8 goroutines commits batches of 5 sends in 5 conversations of its
// own partition. Commits that wait for a sync at the same moment share it.
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

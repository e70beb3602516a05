package pebble

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parleychat/parley/chat"
)

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

package sequencer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/storage/pebble"
)

// BenchmarkEmbeddedBurst times the embedded send path behind the gateway:
// 1,000 sends over 1,000 conversations appended to the commands log at
// once, until every one of them is sequenced, stored (synced Pebble
// commits) and on the events log. One op is one such burst. batches is
// how many partitions' batches the embedded log hands out at once
// (memlog.Config.Parallel; `parley serve --sequencer.batches`).
func BenchmarkEmbeddedBurst(b *testing.B) {
	for _, n := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("batches=%d", n), func(b *testing.B) { benchEmbeddedBurst(b, n) })
	}
}

func benchEmbeddedBurst(b *testing.B, batches int) {
	const convs = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, err := memlog.Open(ctx, memlog.Config{Dir: b.TempDir(), Partitions: 64, Parallel: map[string]int{Group: batches}})
	if err != nil {
		b.Fatal(err)
	}
	st, err := pebble.Open(ctx, pebble.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { cancel(); st.Close(); lg.Close() }()
	reg := prometheus.NewRegistry()
	seq := New(lg, st, slog.New(slog.NewTextHandler(io.Discard, nil)), WithRegisterer(reg))
	defer func() {
		if !testing.Verbose() {
			return
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				b.Logf("%s %s: %d, mean %.2f ms", mf.GetName(), m.GetLabel()[0].GetValue(), h.GetSampleCount(), 1000*h.GetSampleSum()/float64(max(1, h.GetSampleCount())))
			}
		}
	}()
	go func() { _ = seq.Run(ctx) }()
	bursts := chattest.WatchBursts(ctx, lg)
	cmds := make([]chat.Command, convs)
	for i := range cmds {
		cmds[i] = create(fmt.Sprintf("c%d", i), "alice")
	}
	bursts.Send(ctx, b, cmds)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range cmds {
			cmds[i] = send(fmt.Sprintf("c%d", i), "alice", "hello", chat.NewID("k"))
		}
		bursts.Send(ctx, b, cmds)
	}
}

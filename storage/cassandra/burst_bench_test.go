package cassandra

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/delivery/sequencer"
)

// BenchmarkSequencedBurst times the distributed send path behind the
// gateways without Kafka: the sequencer on this store, over an embedded
// log of 8 partitions. 1,000 conversations are created, then each op is
// a burst of 1,000 sends (one per conversation, each with a client_id)
// appended to the commands log at once and waited for on the events log.
// "takeover": a second sequencer sequences the sends, as after a
// rebalance or a restart (it did not see the conversations born, so it
// must look their dedup records up). With PARLEY_CASSANDRA_PID set to the
// node's process id, it also reports the node's CPU seconds per 1,000
// sends (utime+stime from /proc, so the node must be local).
func BenchmarkSequencedBurst(b *testing.B) {
	for _, takeover := range []bool{false, true} {
		b.Run(fmt.Sprintf("takeover=%v", takeover), func(b *testing.B) { benchSequencedBurst(b, takeover) })
	}
}

func benchSequencedBurst(b *testing.B, takeover bool) {
	const convs = 1000
	ks := testKeyspace(b)
	st := openTest(b, ks)
	b.Cleanup(func() {
		dropKeyspace(b, st, ks)
		st.Close()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, err := memlog.Open(ctx, memlog.Config{Dir: b.TempDir(), Partitions: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	counted := &readCounter{Store: st}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	bursts := chattest.WatchBursts(ctx, lg)
	run := func() context.CancelFunc {
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = sequencer.New(lg, counted, discard).Run(sctx)
		}()
		return func() { stop(); <-done }
	}
	cmds := make([]chat.Command, convs)
	title := "bench"
	for i := range cmds {
		cmds[i] = chat.Command{Op: chat.OpCreate, ConversationID: fmt.Sprintf("cnv_b%d", i), Actor: "alice", Kind: chat.KindGroup, Title: &title, Members: []string{"bob"}}
	}
	stop := run()
	bursts.Send(ctx, b, cmds)
	sends := func() {
		for i := range cmds {
			cmds[i] = chat.Command{Op: chat.OpSend, ConversationID: fmt.Sprintf("cnv_b%d", i), Actor: "alice", Text: "hello there", ClientID: chat.NewID("k")}
		}
		bursts.Send(ctx, b, cmds)
	}
	sends() // every conversation has a dedup record of alice
	if takeover {
		stop()
		stop = run()
	}
	defer func() { stop() }()
	pid := os.Getenv("PARLEY_CASSANDRA_PID")
	cpu0, reads0 := processCPU(b, pid), counted.n.Load()
	b.ResetTimer()
	for range b.N {
		sends()
	}
	b.StopTimer()
	b.ReportMetric(float64(counted.n.Load()-reads0)/float64(b.N), "store-reads/1000sends")
	if pid != "" {
		b.ReportMetric((processCPU(b, pid)-cpu0)/float64(b.N), "cassandra-cpu-s/1000sends")
	}
}

// readCounter counts the sequencer's reads through the Store port (not
// those a Commit makes inside the store).
type readCounter struct {
	*Store
	n atomic.Int64
}

func (r *readCounter) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	r.n.Add(1)
	return r.Store.Conversation(ctx, id)
}

func (r *readCounter) Members(ctx context.Context, cid, after string, limit int) ([]string, error) {
	r.n.Add(1)
	return r.Store.Members(ctx, cid, after, limit)
}

func (r *readCounter) Membership(ctx context.Context, cid, uid string) (chat.Membership, error) {
	r.n.Add(1)
	return r.Store.Membership(ctx, cid, uid)
}

func (r *readCounter) Message(ctx context.Context, cid, mid string) (chat.Message, error) {
	r.n.Add(1)
	return r.Store.Message(ctx, cid, mid)
}

func (r *readCounter) Dedup(ctx context.Context, cid, sender, client string) (string, error) {
	r.n.Add(1)
	return r.Store.Dedup(ctx, cid, sender, client)
}

func (r *readCounter) Dedups(ctx context.Context, cid, sender string, clients []string) (map[string]string, error) {
	r.n.Add(1)
	return r.Store.Dedups(ctx, cid, sender, clients)
}

// processCPU returns the CPU seconds (user and system) process pid has
// used, 0 when pid is empty.
func processCPU(b *testing.B, pid string) float64 {
	if pid == "" {
		return 0
	}
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		b.Fatalf("PARLEY_CASSANDRA_PID: %v", err)
	}
	// The fields after the command (which may hold spaces) in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ, 100 on Linux
}

func (r *readCounter) SenderDedups(ctx context.Context, cid, sender string, limit int) (map[string]string, bool, error) {
	r.n.Add(1)
	return r.Store.SenderDedups(ctx, cid, sender, limit)
}

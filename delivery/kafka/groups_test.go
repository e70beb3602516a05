package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// TestGroupsReportsMembersPartitionsAndLag: before any consumer, a group
// has no member and lags by every record; while one consumes, it is the
// member holding every partition, and once it has committed, the lag is 0.
func TestGroupsReportsMembersPartitionsAndLag(t *testing.T) {
	cfg := testConfig(t, brokers(t), 3)
	l := open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 12
	for i := 0; i < n; i++ {
		if err := l.Append(ctx, chat.TopicCommands, &chat.Record{Key: fmt.Sprint("conv-", i), Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	total := func(gs []GroupState) (lag int64) {
		for _, p := range gs[0].Lag {
			lag += p.Lag
		}
		return lag
	}
	gs, err := l.Groups(ctx, map[string]string{"sequencer": chat.TopicCommands})
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0].Group != "sequencer" || len(gs[0].Members) != 0 || len(gs[0].Lag) != 3 || total(gs) != n {
		t.Fatalf("before consuming: %+v", gs)
	}
	for _, p := range gs[0].Lag {
		if p.Committed != -1 {
			t.Fatalf("partition %d committed %d before any consumer", p.Partition, p.Committed)
		}
	}

	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- l.Consume(cctx, chat.TopicCommands, "sequencer", func(context.Context, int, []chat.Record) error { return nil })
	}()
	defer func() { stop(); <-done }()
	deadline := time.Now().Add(40 * time.Second)
	for {
		gs, err = l.Groups(ctx, map[string]string{"sequencer": chat.TopicCommands})
		if err == nil && len(gs[0].Members) == 1 && len(gs[0].Members[0].Partitions) == 3 && total(gs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer never showed up with no lag: %+v, %v", gs, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if m := gs[0].Members[0]; m.Host == "" || m.ID == "" {
		t.Errorf("member without id or host: %+v", m)
	}
}

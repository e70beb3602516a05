package push

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// fixedPresence is a Presence that is ready and says everyone in online
// is online.
type fixedPresence struct{ online map[string]bool }

var closedReady = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (fixedPresence) Ready() <-chan struct{}    { return closedReady }
func (f fixedPresence) Online(user string) bool { return f.online[user] }

// BenchmarkHandleBigRoom: the push role's cost per message of a
// 500-member room whose members are all connected (the common case of a
// busy room), from the record to every recipient decided. It runs the
// scheduler and workers too, and waits until nothing is pending.
func BenchmarkHandleBigRoom(b *testing.B) {
	members := make([]string, 500)
	online := map[string]bool{}
	for i := range members {
		members[i] = fmt.Sprintf("user-%03d", i)
		online[members[i]] = true
	}
	p, err := New(Config{Workers: 4, Delay: time.Millisecond, VAPIDPublicKey: ""}, Deps{
		Presence: fixedPresence{online}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		go p.schedule(ctx)
		for range p.cfg.Workers {
			go p.worker(ctx)
		}
		<-ctx.Done()
	}()
	s := chat.Sequenced{Recipients: members, Events: []chat.Event{{Type: chat.EventMessageCreated, ConversationID: "cnv_1", At: time.Now(),
		Message: &chat.Message{ConversationID: "cnv_1", Seq: 1, SenderID: members[0], Text: "hello there"}}}}
	rec, _ := record.EncodeSequenced(&s)
	recs := []chat.Record{{Value: rec}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.handle(ctx, 0, recs); err != nil {
			b.Fatal(err)
		}
	}
	for {
		p.mu.Lock()
		n := len(p.slots)
		p.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
}

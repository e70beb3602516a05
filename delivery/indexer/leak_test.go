package indexer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/indexer"
	"github.com/parleychat/parley/delivery/media"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/delivery/sequencer"
	"github.com/parleychat/parley/internal/testutil"
	"github.com/parleychat/parley/search/bleve"
	"github.com/parleychat/parley/storage/fsblob"
	"github.com/parleychat/parley/storage/pebble"
)

// TestWorkerRolesLeaveNoGoroutine starts the sequencer, indexer and media
// roles on the embedded adapters, has a message go through the sequencer
// into the index, stops the roles and closes the adapters, and finds no
// goroutine left running.
func TestWorkerRolesLeaveNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	lg, err := memlog.Open(ctx, memlog.Config{Dir: filepath.Join(dir, "log"), Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	st, err := pebble.Open(ctx, pebble.Config{Dir: filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := bleve.Open(ctx, bleve.Config{Dir: filepath.Join(dir, "index")})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := fsblob.Open(ctx, fsblob.Config{Dir: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()

	rctx, stop := context.WithCancel(ctx)
	var roles sync.WaitGroup
	for _, run := range []func(context.Context) error{
		sequencer.New(lg, st, logger, sequencer.WithRegisterer(reg)).Run,
		indexer.New(lg, ix, logger, indexer.WithRegisterer(reg)).Run,
		media.New(lg, st, blobs, logger, media.WithRegisterer(reg)).Run,
	} {
		roles.Add(1)
		go func() { defer roles.Done(); _ = run(rctx) }()
	}

	cid := chat.NewID("cnv")
	title := "t"
	now := time.Now().UTC()
	for _, c := range []chat.Command{
		{ID: chat.NewID("cmd"), Op: chat.OpCreate, ConversationID: cid, Actor: "alice", At: now, Kind: "group", Title: &title},
		{ID: chat.NewID("cmd"), Op: chat.OpSend, ConversationID: cid, Actor: "alice", At: now, ClientID: "c1", Text: "pineapple"},
	} {
		b, _ := record.EncodeCommand(&c)
		if err := lg.Append(ctx, chat.TopicCommands, &chat.Record{Key: cid, Value: b}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		hits, _, err := ix.Search(ctx, chat.SearchQuery{Text: "pineapple", ConversationIDs: []string{cid}, Limit: 5})
		if err != nil || len(hits) != 1 {
			return fmt.Errorf("the message never reached the index (hits %v, err %v)", hits, err)
		}
		return nil
	})

	stop()
	roles.Wait()
	for _, c := range []io.Closer{blobs, ix, st, lg} {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
}

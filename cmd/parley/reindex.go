package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/search/bleve"
	"github.com/parleychat/parley/search/elastic"
	"github.com/parleychat/parley/storage/cassandra"
	"github.com/parleychat/parley/storage/pebble"
)

// reindexPage is how many conversations and messages reindex reads at a
// time (and Puts in one batch).
const reindexPage = 200

// reindexStats is what one reindex did.
type reindexStats struct {
	Conversations int // conversations visited
	Indexed       int // messages (re)indexed
	Removed       int // deleted messages removed from the index
}

// reindexCommand is `parley reindex`: it rebuilds or repairs the search
// index from the store, with the engines serve's flags (and environment)
// name: Bleve from Pebble in the data folder, or Elasticsearch from
// Cassandra. Every stored message is put again, as stored now (an edit
// made while the index was down is indexed by its new text), and every
// deleted one is removed, so afterwards the index holds exactly the
// stored, undeleted messages of the conversations visited. It is
// idempotent and may run beside the indexer on real engines (both write
// what the store holds); the embedded engines are a process's own, so
// there it runs while the server is stopped (the data folder's lock says
// so).
func reindexCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("parley reindex", flag.ContinueOnError)
	cfg.registerFlags(fs)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: parley reindex [serve's flags]: rebuild the search index from the store (the engines as serve's flags and PARLEY_ variables name them)")
			return errHelp
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := applyEnv(fs, getenv); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	logger, _, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	embedded := len(cfg.Cassandra.Hosts) == 0 || len(cfg.Elastic.URLs) == 0
	if embedded {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		release, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return fmt.Errorf("%w (the embedded store and index are reindexed with the server stopped)", err)
		}
		defer release()
	}
	store, index, closeAll, err := openStoreAndIndex(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	scanner, ok := store.(chat.ConversationScanner)
	if !ok {
		return fmt.Errorf("the store %T cannot list its conversations", store)
	}
	start := time.Now()
	st, err := reindex(ctx, store, scanner, index, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reindexed %d messages and removed %d deleted ones in %d conversations in %s\n",
		st.Indexed, st.Removed, st.Conversations, time.Since(start).Round(time.Millisecond))
	return nil
}

// openStoreAndIndex opens the two ports reindex needs, as serve would.
func openStoreAndIndex(ctx context.Context, cfg config) (chat.Store, chat.Index, func(), error) {
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	var store interface {
		chat.Store
		chat.ConversationScanner
	}
	var err error
	if len(cfg.Cassandra.Hosts) > 0 {
		store, err = cassandra.Open(octx, cfg.Cassandra)
	} else {
		store, err = pebble.Open(octx, pebble.Config{Dir: filepath.Join(cfg.DataDir, "store")})
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open store: %w", err)
	}
	var index chat.Index
	if len(cfg.Elastic.URLs) > 0 {
		index, err = elastic.Open(octx, cfg.Elastic)
	} else {
		index, err = bleve.Open(octx, bleve.Config{Dir: filepath.Join(cfg.DataDir, "index")})
	}
	if err != nil {
		store.Close()
		return nil, nil, nil, fmt.Errorf("open index: %w", err)
	}
	return store, index, func() { _ = index.Close(); _ = store.Close() }, nil
}

// reindex puts every stored message of every conversation into index
// again and removes every deleted one.
func reindex(ctx context.Context, store chat.Store, scanner chat.ConversationScanner, index chat.Index, logger *slog.Logger) (reindexStats, error) {
	var st reindexStats
	after := ""
	for {
		ids, err := scanner.ConversationIDs(ctx, after, reindexPage)
		if err != nil {
			return st, fmt.Errorf("reindex: list conversations: %w", err)
		}
		if len(ids) == 0 {
			return st, nil
		}
		for _, cid := range ids {
			if err := reindexConversation(ctx, store, index, cid, &st); err != nil {
				return st, err
			}
			st.Conversations++
		}
		after = ids[len(ids)-1]
		logger.Info("reindex progress", "conversations", st.Conversations, "indexed", st.Indexed, "removed", st.Removed)
	}
}

func reindexConversation(ctx context.Context, store chat.Store, index chat.Index, cid string, st *reindexStats) error {
	page := chat.MessagePage{Forward: true, Limit: reindexPage}
	for {
		msgs, more, err := store.Messages(ctx, cid, page)
		if err != nil {
			return fmt.Errorf("reindex: messages of %s: %w", cid, err)
		}
		var live []chat.Message
		for _, m := range msgs {
			if m.Deleted {
				if err := index.Delete(ctx, cid, m.ID); err != nil && !chat.IsNotFound(err) {
					return fmt.Errorf("reindex: remove %s of %s: %w", m.ID, cid, err)
				}
				st.Removed++
				continue
			}
			live = append(live, m)
		}
		if len(live) > 0 {
			if err := index.Put(ctx, live); err != nil {
				return fmt.Errorf("reindex: put %d messages of %s: %w", len(live), cid, err)
			}
			st.Indexed += len(live)
		}
		if !more || len(msgs) == 0 {
			return nil
		}
		page = chat.MessagePage{After: msgs[len(msgs)-1].Seq, Limit: reindexPage}
	}
}

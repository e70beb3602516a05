package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/kafka"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/delivery/sequencer"
	"github.com/parleychat/parley/search/bleve"
	"github.com/parleychat/parley/search/elastic"
	"github.com/parleychat/parley/storage/cassandra"
	"github.com/parleychat/parley/storage/fsblob"
	"github.com/parleychat/parley/storage/minio"
	"github.com/parleychat/parley/storage/pebble"
)

// openTimeout bounds connecting to one real engine at start-up.
const openTimeout = 60 * time.Second

// engines are the four ports as this process runs them: a real engine
// where its address is configured, the embedded twin under --data-dir
// otherwise.
type engines struct {
	log   chat.Log
	store chat.Store
	index chat.Index
	blobs chat.Blobs
	// blobHandler serves the embedded blob folder's signed URLs at
	// fsblob.MountPath; nil when blobs live in S3.
	blobHandler http.Handler
	// names says which engine backs each port, for logs and /readyz.
	names   map[string]string
	closers []func() error
}

func (e *engines) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		_ = e.closers[i]()
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// openEngines opens the four ports. On error everything opened so far is
// closed again.
func openEngines(ctx context.Context, cfg config, logger *slog.Logger) (_ *engines, err error) {
	e := &engines{names: map[string]string{}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	open := func(what string, f func(ctx context.Context) error) error {
		octx, cancel := context.WithTimeout(ctx, openTimeout)
		defer cancel()
		if err := f(octx); err != nil {
			return fmt.Errorf("open %s: %w", what, err)
		}
		logger.Info("opened "+what, "engine", e.names[what])
		return nil
	}

	if err := open("log", func(ctx context.Context) error {
		if len(cfg.Kafka.Brokers) > 0 {
			e.names["log"] = "kafka"
			l, err := kafka.Open(ctx, cfg.Kafka)
			if err != nil {
				return err
			}
			e.log, e.closers = l, append(e.closers, l.Close)
			return nil
		}
		e.names["log"] = "embedded"
		l, err := memlog.Open(ctx, memlog.Config{
			Dir: filepath.Join(cfg.DataDir, "log"), Partitions: cfg.Partitions,
			Parallel: map[string]int{sequencer.Group: cfg.SequencerBatches},
		})
		if err != nil {
			return err
		}
		e.log, e.closers = l, append(e.closers, l.Close)
		return nil
	}); err != nil {
		return nil, err
	}

	if err := open("store", func(ctx context.Context) error {
		if len(cfg.Cassandra.Hosts) > 0 {
			e.names["store"] = "cassandra"
			s, err := cassandra.Open(ctx, cfg.Cassandra)
			if err != nil {
				return err
			}
			e.store, e.closers = s, append(e.closers, s.Close)
			return nil
		}
		e.names["store"] = "embedded"
		s, err := pebble.Open(ctx, pebble.Config{Dir: filepath.Join(cfg.DataDir, "store")})
		if err != nil {
			return err
		}
		e.store, e.closers = s, append(e.closers, s.Close)
		return nil
	}); err != nil {
		return nil, err
	}

	if err := open("index", func(ctx context.Context) error {
		if len(cfg.Elastic.URLs) > 0 {
			e.names["index"] = "elasticsearch"
			ix, err := elastic.Open(ctx, cfg.Elastic)
			if err != nil {
				return err
			}
			e.index, e.closers = ix, append(e.closers, ix.Close)
			return nil
		}
		e.names["index"] = "embedded"
		ix, err := bleve.Open(ctx, bleve.Config{Dir: filepath.Join(cfg.DataDir, "index"), PersistDelay: 250 * time.Millisecond})
		if err != nil {
			return err
		}
		e.index, e.closers = ix, append(e.closers, ix.Close)
		return nil
	}); err != nil {
		return nil, err
	}

	if err := open("blobs", func(ctx context.Context) error {
		if cfg.S3.Endpoint != "" {
			e.names["blobs"] = "s3"
			b, err := minio.Open(ctx, cfg.S3)
			if err != nil {
				return err
			}
			e.blobs, e.closers = b, append(e.closers, b.Close)
			return nil
		}
		e.names["blobs"] = "embedded"
		bcfg := cfg.Blobs
		bcfg.Logger = logger
		b, err := fsblob.Open(ctx, bcfg)
		if err != nil {
			return err
		}
		e.blobs, e.blobHandler, e.closers = b, b.Handler(), append(e.closers, b.Close)
		return nil
	}); err != nil {
		return nil, err
	}
	if e.names["log"] == "kafka" && (e.names["index"] == "embedded" || e.names["blobs"] == "embedded") {
		logger.Warn("the log and store are shared but the search index or attachments are in this node's data folder: run one node only, or set --elasticsearch.urls and --s3.endpoint",
			"index", e.names["index"], "blobs", e.names["blobs"])
	}
	return e, nil
}

// mediaOrigins are the origins browsers upload attachments to and load
// them from, besides the server's own: the public S3 endpoint.
func (c *config) mediaOrigins() []string {
	if c.S3.Endpoint == "" {
		return nil
	}
	public := c.S3.PublicEndpoint
	if public == "" {
		public = c.S3.Endpoint
	}
	u, err := url.Parse(public)
	if err != nil || u.Host == "" {
		return nil
	}
	return []string{u.Scheme + "://" + u.Host}
}

// validateEngines checks the combination of engines and roles: the log and
// the store go together (positions in the store are offsets of the log),
// and a node that runs only some roles shares every engine with the others.
func (c *config) validateEngines() error {
	kafkaOn, cassOn := len(c.Kafka.Brokers) > 0, len(c.Cassandra.Hosts) > 0
	if kafkaOn != cassOn {
		return errors.New("--kafka.brokers and --cassandra.hosts go together: the store keeps positions of the log, so both are real or both embedded")
	}
	if kafkaOn {
		if err := c.Kafka.Validate(); err != nil {
			return err
		}
		if err := c.Cassandra.Validate(); err != nil {
			return err
		}
	}
	if len(c.Elastic.URLs) > 0 {
		if err := c.Elastic.Validate(); err != nil {
			return err
		}
	}
	if c.S3.Endpoint != "" {
		if err := c.S3.Validate(); err != nil {
			return err
		}
	}
	roles, err := c.roles()
	if err != nil {
		return err
	}
	if len(roles) < len(allRoles) && (!kafkaOn || len(c.Elastic.URLs) == 0 || c.S3.Endpoint == "") {
		return fmt.Errorf("--roles %s runs part of Parley: the other roles run in other processes, which share only real engines (set --kafka.brokers, --cassandra.hosts, --elasticsearch.urls and --s3.endpoint)", c.Roles)
	}
	return nil
}

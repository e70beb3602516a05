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
		if cfg.KafkaBrokers != "" {
			e.names["log"] = "kafka"
			l, err := kafka.Open(ctx, cfg.kafkaConfig())
			if err != nil {
				return err
			}
			e.log, e.closers = l, append(e.closers, l.Close)
			return nil
		}
		e.names["log"] = "embedded"
		l, err := memlog.Open(ctx, memlog.Config{Dir: filepath.Join(cfg.DataDir, "log"), Partitions: cfg.Partitions})
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
		if cfg.ElasticsearchURLs != "" {
			e.names["index"] = "elasticsearch"
			ix, err := elastic.Open(ctx, cfg.esConfig())
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
		if cfg.S3Endpoint != "" {
			e.names["blobs"] = "s3"
			b, err := minio.Open(ctx, cfg.s3Config())
			if err != nil {
				return err
			}
			e.blobs, e.closers = b, append(e.closers, b.Close)
			return nil
		}
		e.names["blobs"] = "embedded"
		b, err := fsblob.Open(ctx, fsblob.Config{Dir: filepath.Join(cfg.DataDir, "blobs"), MaxSize: cfg.Gateway.MaxAttachment, Logger: logger})
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

func (c *config) kafkaConfig() kafka.Config {
	return kafka.Config{
		Brokers:           splitList(c.KafkaBrokers),
		Partitions:        c.Partitions,
		ReplicationFactor: c.KafkaReplication,
		BatchTimeout:      c.KafkaBatchTimeout,
		ClientID:          "parley",
		TopicPrefix:       c.KafkaTopicPrefix,
		SessionTimeout:    c.KafkaSession,
	}
}

func (c *config) esConfig() elastic.Config {
	return elastic.Config{
		URLs:        splitList(c.ElasticsearchURLs),
		IndexPrefix: c.ESIndexPrefix,
		Username:    c.ESUsername,
		Password:    c.ESPassword,
	}
}

func (c *config) s3Config() minio.Config {
	return minio.Config{
		Endpoint:       c.S3Endpoint,
		PublicEndpoint: c.S3PublicEndpoint,
		AccessKey:      c.S3AccessKey,
		SecretKey:      c.S3SecretKey,
		Bucket:         c.S3Bucket,
		Region:         c.S3Region,
		MaxSize:        c.Gateway.MaxAttachment,
	}
}

// mediaOrigins are the origins browsers upload attachments to and load
// them from, besides the server's own: the public S3 endpoint.
func (c *config) mediaOrigins() []string {
	if c.S3Endpoint == "" {
		return nil
	}
	public := c.S3PublicEndpoint
	if public == "" {
		public = c.S3Endpoint
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
	kafkaOn, cassOn := c.KafkaBrokers != "", len(c.Cassandra.Hosts) > 0
	if kafkaOn != cassOn {
		return errors.New("--kafka.brokers and --cassandra.hosts go together: the store keeps positions of the log, so both are real or both embedded")
	}
	if kafkaOn {
		for _, b := range splitList(c.KafkaBrokers) {
			if !strings.Contains(b, ":") {
				return fmt.Errorf("--kafka.brokers: %q is not host:port", b)
			}
		}
		if c.KafkaReplication < 1 {
			return errors.New("--kafka.replication-factor must be at least 1")
		}
		if c.KafkaBatchTimeout <= 0 || c.KafkaBatchTimeout > time.Second {
			return errors.New("--kafka.batch-timeout must be within (0, 1s]")
		}
		if err := c.kafkaConfig().Validate(); err != nil {
			return err
		}
		if err := c.Cassandra.Validate(); err != nil {
			return err
		}
	}
	if c.ElasticsearchURLs != "" {
		if err := c.esConfig().Validate(); err != nil {
			return err
		}
	}
	if c.S3Endpoint != "" {
		if err := c.s3Config().Validate(); err != nil {
			return err
		}
	}
	roles, err := c.roles()
	if err != nil {
		return err
	}
	if len(roles) < len(allRoles) && (!kafkaOn || c.ElasticsearchURLs == "" || c.S3Endpoint == "") {
		return fmt.Errorf("--roles %s runs part of Parley: the other roles run in other processes, which share only real engines (set --kafka.brokers, --cassandra.hosts, --elasticsearch.urls and --s3.endpoint)", c.Roles)
	}
	return nil
}

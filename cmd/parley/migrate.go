package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/kafka"
	"github.com/parleychat/parley/search/elastic"
	"github.com/parleychat/parley/storage/cassandra"
	"github.com/parleychat/parley/storage/minio"
)

// migrate is `parley migrate`: with the flags and environment of `parley
// serve`, it prepares each real engine the configuration names and exits:
// the commands and events topics (with --partitions partitions and the
// replication factor), the Cassandra keyspace and tables, the
// Elasticsearch index template, index and alias, and the S3 bucket. Every
// step is what the adapter's Open does at start-up, and is idempotent, so
// migrate may run before every rollout (a Kubernetes Job or init container)
// and serve keeps doing it too; running it first only moves the work, and
// its errors, out of the nodes' start.
//
// In embedded mode there is nothing to prepare ahead: the data folder is
// made by the one process that uses it.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("migrate", args, getenv, environ(), stderr)
	if errors.Is(err, errHelp) {
		return err
	}
	if err != nil {
		return &exitCodeError{code: exitInvalidConfig, err: fmt.Errorf("invalid configuration: %w", err)}
	}
	if cfg.distributed() == "" {
		fmt.Fprintln(stdout, "embedded mode: nothing to migrate (parley serve prepares --data-dir itself)")
		return nil
	}
	step := func(what string, open func(ctx context.Context) (func() error, error), done string) error {
		octx, cancel := context.WithTimeout(ctx, openTimeout)
		defer cancel()
		closeFn, err := open(octx)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", what, err)
		}
		if err := closeFn(); err != nil {
			return fmt.Errorf("migrate %s: close: %w", what, err)
		}
		fmt.Fprintf(stdout, "%-6s %s\n", what+":", done)
		return nil
	}
	if cfg.KafkaBrokers != "" {
		kc := cfg.kafkaConfig()
		topics := fmt.Sprintf("%s%s, %s%s", kc.TopicPrefix, chat.TopicCommands, kc.TopicPrefix, chat.TopicEvents)
		if err := step("log", func(ctx context.Context) (func() error, error) {
			l, err := kafka.Open(ctx, kc)
			if err != nil {
				return nil, err
			}
			return l.Close, nil
		}, fmt.Sprintf("kafka topics %s ready (%d partitions, replication factor %d)", topics, kc.Partitions, kc.ReplicationFactor)); err != nil {
			return err
		}
	}
	if len(cfg.Cassandra.Hosts) > 0 {
		if err := step("store", func(ctx context.Context) (func() error, error) {
			s, err := cassandra.Open(ctx, cfg.Cassandra)
			if err != nil {
				return nil, err
			}
			return s.Close, nil
		}, fmt.Sprintf("cassandra keyspace %s and its tables ready", cfg.Cassandra.Keyspace)); err != nil {
			return err
		}
	}
	if cfg.ElasticsearchURLs != "" {
		ec := cfg.esConfig()
		if err := step("index", func(ctx context.Context) (func() error, error) {
			x, err := elastic.Open(ctx, ec)
			if err != nil {
				return nil, err
			}
			return x.Close, nil
		}, fmt.Sprintf("elasticsearch template, index and alias %smessages ready", ec.IndexPrefix)); err != nil {
			return err
		}
	}
	if cfg.S3Endpoint != "" {
		sc := cfg.s3Config()
		if err := step("blobs", func(ctx context.Context) (func() error, error) {
			b, err := minio.Open(ctx, sc)
			if err != nil {
				return nil, err
			}
			return b.Close, nil
		}, fmt.Sprintf("s3 bucket %s ready", sc.Bucket)); err != nil {
			return err
		}
	}
	return nil
}

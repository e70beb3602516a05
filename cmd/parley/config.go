package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/admin"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/gateway"
	"github.com/parleychat/parley/delivery/indexer"
	"github.com/parleychat/parley/delivery/kafka"
	"github.com/parleychat/parley/delivery/media"
	"github.com/parleychat/parley/delivery/push"
	"github.com/parleychat/parley/delivery/sequencer"
	"github.com/parleychat/parley/search/elastic"
	"github.com/parleychat/parley/storage/cassandra"
	"github.com/parleychat/parley/storage/fsblob"
	"github.com/parleychat/parley/storage/minio"
)

// role is a part of Parley a node can run (--roles).
type role string

// The roles; each worker role is also its consumer group.
const (
	roleGateway   role = "gateway"
	roleSequencer role = sequencer.Group
	roleIndexer   role = indexer.Group
	roleMedia     role = media.Group
	rolePush      role = push.Group
)

// allRoles is every role, in the order help and errors name them.
var allRoles = []role{roleGateway, roleSequencer, roleIndexer, roleMedia, rolePush}

// defaultSequencerBatches is --sequencer.batches's default: four
// partitions' batches at once, whose synced commits share the disk's
// flushes instead of queueing one after another. On the quiet 2-core
// host (2026-12-03, BENCHMARKS.md) the send scenario of 1,000
// conversations at 1,000 sends/s had a send→ack p99 of 6-8 ms against
// 11-14 ms with one at a time after the resume runs (8-9 ms against 4-5
// on a fresh server), and BenchmarkEmbeddedBurst took 44 ms against 71.
// On an earlier, heavily loaded host the same burst took 3-4x as long
// with 4 or 8: the syncs slowed down instead of being shared.
const defaultSequencerBatches = 4

// maxSequencerBatches bounds --sequencer.batches: one goroutine and one
// batch in memory each.
const maxSequencerBatches = 256

// config is everything `parley serve` is told. Each engine's config
// registers its own flags and validates itself; config only composes them,
// and compose fills what one setting decides for several of them.
type config struct {
	Addr       string
	DataDir    string
	Roles      string
	DevAuth    string
	DevAuthAny bool
	Partitions int
	// SequencerBatches is, in embedded mode, how many commands partitions'
	// batches the sequencer handles at once (memlog.Config.Parallel).
	SequencerBatches int
	LogFormat        string
	LogLevel         string
	DebugAddr        string
	// GCMinHeapMiB is the floor under the garbage collector's heap goal
	// (gcfloor), in MiB; 0 leaves Go's own pacing.
	GCMinHeapMiB int

	OtelEndpoint    string
	OtelSampleRatio float64

	Kafka     kafka.Config
	Cassandra cassandra.Config
	Elastic   elastic.Config
	S3        minio.Config
	Blobs     fsblob.Config
	Auth      auth.Config
	Gateway   gateway.Config
	Push      push.Config
	Admin     admin.Config
	Indexer   indexer.Config
}

func (c *config) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "localhost:8080", "address to listen on")
	fs.StringVar(&c.DataDir, "data-dir", "./parley-data", "data folder of embedded mode")
	fs.StringVar(&c.Roles, "roles", "all", "comma-separated roles to run: "+roleList()+", or all")
	fs.StringVar(&c.DevAuth, "dev-auth", "auto", "development sign-in (POST /v1/auth/dev): auto (on when listening on loopback), true or false")
	fs.BoolVar(&c.DevAuthAny, "dev-auth.allow-non-loopback", false, "allow --dev-auth=true on a non-loopback address (never in production)")
	fs.IntVar(&c.Partitions, "partitions", chat.DefaultPartitions, "partition count of the logs (fixed per deployment)")
	fs.IntVar(&c.SequencerBatches, "sequencer.batches", defaultSequencerBatches, "embedded mode: batches of different commands partitions the sequencer handles at once, so that their synced store writes may share one disk flush (1: one at a time)")
	fs.StringVar(&c.LogFormat, "log.format", "auto", "log format: auto (JSON unless stderr is a terminal), json or text")
	fs.StringVar(&c.LogLevel, "log.level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.DebugAddr, "debug.addr", "", "loopback address to serve Go's /debug/pprof profiles and /debug/loglevel (GET, PUT a level to change it at run time) on (off when empty)")
	fs.IntVar(&c.GCMinHeapMiB, "gc.min-heap-mib", defaultGCMinHeapMiB, "MiB of heap the Go garbage collector lets grow before it collects, while the live heap is under half of it, so that a small heap is not collected every few MiB allocated (0: Go's own pacing; a GOGC in the environment turns it off too)")
	fs.StringVar(&c.OtelEndpoint, "otel.endpoint", "", "OTLP/HTTP endpoint to export traces to, e.g. http://otel-collector:4318 (off when empty; OTEL_EXPORTER_OTLP_ENDPOINT is read when this is unset)")
	fs.Float64Var(&c.OtelSampleRatio, "otel.sample-ratio", 1, "share of new traces recorded when tracing is on, 0 to 1 (a traced caller's choice is kept)")
	c.Kafka.RegisterFlags(fs)
	c.Cassandra.RegisterFlags(fs)
	c.Elastic.RegisterFlags(fs)
	c.S3.RegisterFlags(fs)
	c.Blobs.RegisterFlags(fs)
	c.Auth.RegisterFlags(fs)
	c.Gateway.RegisterFlags(fs)
	c.Push.RegisterFlags(fs)
	c.Admin.RegisterFlags(fs)
	c.Indexer.RegisterFlags(fs)
}

// defaultGCMinHeapMiB is --gc.min-heap-mib: an embedded server
// delivering 20,000 events a second holds about 8 MiB of live heap, so
// Go's default pacing collected it three times a second; a 64 MiB goal is
// about GOGC=800 there, which made the send→delivered p99 0.85× as long at
// 20,000 deliveries/s and 0.80× at 100,000/s (BENCHMARKS.md).
const defaultGCMinHeapMiB = 64

// maxGCMinHeapMiB bounds --gc.min-heap-mib at 64 GiB.
const maxGCMinHeapMiB = 64 << 10

// embeddedIndexInterval is --indexer.interval when the index is the
// embedded Bleve one and neither the flag nor its environment twin sets
// it: a quarter of the API's 2 s to searchable, leaving over a second for
// the Put (Bleve persists every 250 ms here). Five times indexer's
// DefaultInterval makes each Bleve write carry five times the messages
// under load, and Bleve's cost per message falls with the batch
// (BenchmarkPutSustained in search/bleve, batches of 20 against 100:
// process CPU 0.65x, bytes allocated 0.68x, GCs 0.5x, fsyncs 0.29x per
// message), which is the garbage collection and disk syncing that stall
// delivery in the same process. Elasticsearch keeps the 100 ms default:
// its refresh (up to 1 s) comes on top of the interval.
const embeddedIndexInterval = 500 * time.Millisecond

// paceEmbeddedIndex sets the indexer's interval to embeddedIndexInterval
// when the index is the embedded one and fs (its environment applied) did
// not set --indexer.interval.
func (c *config) paceEmbeddedIndex(fs *flag.FlagSet) {
	if len(c.Elastic.URLs) > 0 {
		return
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "indexer.interval" })
	if !given {
		c.Indexer.Interval = embeddedIndexInterval
	}
}

// compose fills the engine settings that one flag decides for several
// configs: the partition count (the log's and the deployment's), the blob
// folder (under --data-dir), the attachment limit (the gateway checks it,
// the blob store enforces it), whether dev sign-in is on, and the VAPID
// keys the push role signs with (the gateway's --push.vapid-*).
func (c *config) compose() {
	c.Kafka.Partitions = c.Partitions
	c.Blobs.Dir = filepath.Join(c.DataDir, "blobs")
	c.Blobs.MaxSize = c.Gateway.MaxAttachment
	c.S3.MaxSize = c.Gateway.MaxAttachment
	c.Gateway.DevAuth, _ = c.devAuthOn()
	c.Push.VAPIDPublicKey, c.Push.VAPIDPrivateKey = c.Gateway.Push.VAPIDPublicKey, c.Gateway.Push.VAPIDPrivateKey
	c.Push.AllowLoopback = c.Gateway.Push.AllowLoopback
}

func roleList() string {
	names := make([]string, len(allRoles))
	for i, r := range allRoles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// envName is a flag's environment twin: PARLEY_ + upper case, with dots
// and dashes as underscores.
func envName(flagName string) string {
	return "PARLEY_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(flagName))
}

// applyEnv sets every flag not given on the command line from its
// environment twin.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %v", envName(f.Name), e)
			}
		}
	})
	return err
}

func (c *config) roles() (map[role]bool, error) {
	out := map[role]bool{}
	for _, r := range strings.Split(c.Roles, ",") {
		r = strings.TrimSpace(r)
		switch {
		case r == "all":
			for _, a := range allRoles {
				out[a] = true
			}
		case slices.Contains(allRoles, role(r)):
			out[role(r)] = true
		case r == "":
		default:
			return nil, fmt.Errorf("unknown role %q (want %s or all)", r, roleList())
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--roles names no role")
	}
	return out, nil
}

// loopback reports whether addr listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// devAuthOn decides whether dev sign-in is on, refusing a dangerous setup.
func (c *config) devAuthOn() (bool, error) {
	lb := loopback(c.Addr)
	switch strings.ToLower(c.DevAuth) {
	case "auto", "":
		return lb && c.distributed() == "", nil
	case "false", "0", "off", "no":
		return false, nil
	case "true", "1", "on", "yes":
		if !lb && !c.DevAuthAny {
			return false, fmt.Errorf("refusing dev auth on non-loopback address %s: anyone could sign in as anyone (add --dev-auth.allow-non-loopback to insist)", c.Addr)
		}
		return true, nil
	}
	return false, fmt.Errorf("--dev-auth must be auto, true or false, not %q", c.DevAuth)
}

// distributed names the first real engine configured, "" in embedded mode.
func (c *config) distributed() string {
	switch {
	case len(c.Kafka.Brokers) > 0:
		return "kafka"
	case len(c.Cassandra.Hosts) > 0:
		return "cassandra"
	case len(c.Elastic.URLs) > 0:
		return "elasticsearch"
	case c.S3.Endpoint != "":
		return "s3"
	}
	return ""
}

// validate composes c (compose) and checks it.
func (c *config) validate() error {
	c.compose()
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("--addr %q is not host:port", c.Addr)
	}
	if c.Partitions < 1 || c.Partitions > 4096 {
		return errors.New("--partitions must be from 1 to 4096")
	}
	if c.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if c.OtelSampleRatio < 0 || c.OtelSampleRatio > 1 {
		return errors.New("--otel.sample-ratio must be from 0 to 1")
	}
	if c.OtelEndpoint != "" {
		if u, err := url.Parse(c.OtelEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--otel.endpoint %q is not an http(s) URL", c.OtelEndpoint)
		}
	}
	if _, err := c.roles(); err != nil {
		return err
	}
	if c.DebugAddr != "" && !loopback(c.DebugAddr) {
		return fmt.Errorf("--debug.addr %q must be a loopback host:port: profiles expose the process", c.DebugAddr)
	}
	if _, err := c.devAuthOn(); err != nil {
		return err
	}
	if err := c.validateEngines(); err != nil {
		return err
	}
	if err := c.Gateway.Validate(); err != nil {
		return err
	}
	if c.S3.Endpoint == "" {
		if err := c.Blobs.Validate(); err != nil {
			return err
		}
	}
	if err := c.Push.Validate(); err != nil {
		return err
	}
	if err := c.Indexer.Validate(); err != nil {
		return err
	}
	if c.GCMinHeapMiB < 0 || c.GCMinHeapMiB > maxGCMinHeapMiB {
		return fmt.Errorf("--gc.min-heap-mib must be within [0, %d], not %d", maxGCMinHeapMiB, c.GCMinHeapMiB)
	}
	if c.SequencerBatches < 1 || c.SequencerBatches > maxSequencerBatches {
		return fmt.Errorf("--sequencer.batches must be within [1, %d], not %d", maxSequencerBatches, c.SequencerBatches)
	}
	if err := c.Admin.Validate(); err != nil {
		return err
	}
	switch c.LogFormat {
	case "auto", "json", "text":
	default:
		return errors.New("--log.format must be auto, json or text")
	}
	return nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/admin"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/gateway"
	"github.com/parleychat/parley/delivery/kafka"
	"github.com/parleychat/parley/delivery/push"
	"github.com/parleychat/parley/search/elastic"
	"github.com/parleychat/parley/storage/cassandra"
	"github.com/parleychat/parley/storage/minio"
)

// Roles a node can run.
var allRoles = []string{"gateway", "sequencer", "indexer", "media", "push"}

// config is everything `parley serve` is told.
type config struct {
	Addr       string
	DataDir    string
	Roles      string
	DevAuth    string
	DevAuthAny bool
	Partitions int
	LogFormat  string
	LogLevel   string
	DebugAddr  string

	OtelEndpoint    string
	OtelSampleRatio float64

	KafkaBrokers      string
	KafkaReplication  int
	KafkaBatchTimeout time.Duration
	KafkaTopicPrefix  string
	KafkaSession      time.Duration
	ElasticsearchURLs string
	ESIndexPrefix     string
	ESUsername        string
	ESPassword        string
	S3Endpoint        string
	S3AccessKey       string
	S3SecretKey       string
	S3Bucket          string
	S3PublicEndpoint  string
	S3Region          string

	Cassandra cassandra.Config
	Auth      auth.Config
	Gateway   gateway.Config
	Push      push.Config
	Admin     admin.Config
}

func (c *config) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "localhost:8080", "address to listen on")
	fs.StringVar(&c.DataDir, "data-dir", "./parley-data", "data folder of embedded mode")
	fs.StringVar(&c.Roles, "roles", "all", "comma-separated roles to run: gateway, sequencer, indexer, media, push, or all")
	fs.StringVar(&c.DevAuth, "dev-auth", "auto", "development sign-in (POST /v1/auth/dev): auto (on when listening on loopback), true or false")
	fs.BoolVar(&c.DevAuthAny, "dev-auth.allow-non-loopback", false, "allow --dev-auth=true on a non-loopback address (never in production)")
	fs.IntVar(&c.Partitions, "partitions", chat.DefaultPartitions, "partition count of the logs (fixed per deployment)")
	fs.StringVar(&c.LogFormat, "log.format", "auto", "log format: auto (JSON unless stderr is a terminal), json or text")
	fs.StringVar(&c.LogLevel, "log.level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.DebugAddr, "debug.addr", "", "loopback address to serve Go's /debug/pprof profiles and /debug/loglevel (GET, PUT a level to change it at run time) on (off when empty)")
	fs.StringVar(&c.OtelEndpoint, "otel.endpoint", "", "OTLP/HTTP endpoint to export traces to, e.g. http://otel-collector:4318 (off when empty; OTEL_EXPORTER_OTLP_ENDPOINT is read when this is unset)")
	fs.Float64Var(&c.OtelSampleRatio, "otel.sample-ratio", 1, "share of new traces recorded when tracing is on, 0 to 1 (a traced caller's choice is kept)")
	fs.StringVar(&c.KafkaBrokers, "kafka.brokers", "", "Kafka brokers (host:port, comma-separated); replaces the embedded log")
	fs.IntVar(&c.KafkaReplication, "kafka.replication-factor", kafka.DefaultReplicationFactor, "replication factor of the topics Parley creates")
	fs.DurationVar(&c.KafkaBatchTimeout, "kafka.batch-timeout", kafka.DefaultBatchTimeout, "how long a produce waits for more records to the same partition (at most 1s)")
	fs.StringVar(&c.KafkaTopicPrefix, "kafka.topic-prefix", "", "put before every topic and consumer group name, so that deployments can share a cluster")
	fs.DurationVar(&c.KafkaSession, "kafka.session-timeout", kafka.DefaultSessionTimeout, "consumer group session timeout: how soon the partitions of a dead node move to a live one (at least the broker's group.min.session.timeout.ms, 6s by default)")
	c.Cassandra.RegisterFlags(fs)
	fs.StringVar(&c.ElasticsearchURLs, "elasticsearch.urls", "", "Elasticsearch URLs (comma-separated); replaces the embedded index")
	fs.StringVar(&c.ESIndexPrefix, "elasticsearch.index-prefix", elastic.DefaultIndexPrefix, "put before the index, alias and template names, so that deployments can share a cluster")
	fs.StringVar(&c.ESUsername, "elasticsearch.username", "", "Elasticsearch user (basic auth), if security is on")
	fs.StringVar(&c.ESPassword, "elasticsearch.password", "", "Elasticsearch password")
	fs.StringVar(&c.S3Endpoint, "s3.endpoint", "", "S3/MinIO endpoint URL; replaces the embedded blob folder")
	fs.StringVar(&c.S3AccessKey, "s3.access-key", "", "S3 access key")
	fs.StringVar(&c.S3SecretKey, "s3.secret-key", "", "S3 secret key")
	fs.StringVar(&c.S3Bucket, "s3.bucket", "parley", "S3 bucket, created when missing")
	fs.StringVar(&c.S3PublicEndpoint, "s3.public-endpoint", "", "S3/MinIO endpoint URL as browsers reach it, for attachment URLs (default: --s3.endpoint)")
	fs.StringVar(&c.S3Region, "s3.region", minio.DefaultRegion, "S3 region")
	c.Auth.RegisterFlags(fs)
	c.Gateway.RegisterFlags(fs)
	c.Push.RegisterFlags(fs)
	c.Admin.RegisterFlags(fs)
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

func (c *config) roles() (map[string]bool, error) {
	out := map[string]bool{}
	for _, r := range strings.Split(c.Roles, ",") {
		r = strings.TrimSpace(r)
		switch r {
		case "all":
			for _, a := range allRoles {
				out[a] = true
			}
		case "gateway", "sequencer", "indexer", "media", "push":
			out[r] = true
		case "":
		default:
			return nil, fmt.Errorf("unknown role %q (want gateway, sequencer, indexer, media, push or all)", r)
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
	case c.KafkaBrokers != "":
		return "kafka"
	case len(c.Cassandra.Hosts) > 0:
		return "cassandra"
	case c.ElasticsearchURLs != "":
		return "elasticsearch"
	case c.S3Endpoint != "":
		return "s3"
	}
	return ""
}

func (c *config) validate() error {
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
	if err := c.Push.Validate(); err != nil {
		return err
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

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// exitCodeError is an error that asks main for a particular exit status.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// ExitCode is the status main exits with.
func (e *exitCodeError) ExitCode() int { return e.code }

// exitInvalidConfig is check-config's status for a configuration that
// `parley serve` would refuse (2, like a usage error).
const exitInvalidConfig = 2

// loadConfig parses a command's flags and their environment twins and
// validates the result exactly as `parley serve` does before it opens
// anything, including the checks serve makes once it has a logger (log
// level) and a verifier (token keys). It touches no file and no network.
// environ lists the process's variables: a PARLEY_ variable that names no
// flag is reported on stderr as a warning (serve silently ignores it, so it
// is most likely a typo; it is not an error, because the project's own
// tools, such as deploy/local/services, read PARLEY_ variables of their own).
func loadConfig(name string, args []string, getenv func(string) string, environ []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("parley "+name, flag.ContinueOnError)
	cfg.registerFlags(fs)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "usage: parley %s [the flags of parley serve]\n\nflags:\n", name)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return cfg, errHelp
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, name := range unknownEnv(fs, getenv, environ) {
		fmt.Fprintf(stderr, "warning: %s is set but no flag has that name, so parley serve ignores it (environment twins are PARLEY_ + the flag in upper case, dots and dashes as underscores)\n", name)
	}
	if err := applyEnv(fs, getenv); err != nil {
		return cfg, err
	}
	cfg.paceEmbeddedIndex(fs)
	if err := cfg.validate(); err != nil {
		return cfg, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return cfg, fmt.Errorf("--log.level %q is not a level (want debug, info, warn or error)", cfg.LogLevel)
	}
	devAuth, _ := cfg.devAuthOn()
	if cfg.Auth.Secret == "" && cfg.Auth.PublicKeys == nil && !devAuth {
		return cfg, errors.New("no way to verify tokens: set --auth-secret / PARLEY_AUTH_SECRET or --auth.public-keys (or use dev auth on loopback)")
	}
	if cfg.Auth.Secret != "" || cfg.Auth.PublicKeys != nil {
		if err := cfg.Auth.Validate(); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// unknownEnv lists, sorted, the PARLEY_ variables (set and not empty)
// that are no flag's environment twin.
func unknownEnv(fs *flag.FlagSet, getenv func(string) string, environ []string) []string {
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
	var unknown []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PARLEY_") && !known[k] && getenv(k) != "" {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	return unknown
}

// checkConfig is `parley check-config`: it validates the configuration
// serve would get from the same flags and environment, starts and opens
// nothing, and prints what the node would run. An invalid configuration
// exits with status 2 and one line saying what is wrong; a PARLEY_
// variable no flag has is a warning on stderr.
func checkConfig(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("check-config", args, getenv, environ(), stderr)
	if errors.Is(err, errHelp) {
		return err
	}
	if err != nil {
		return &exitCodeError{code: exitInvalidConfig, err: fmt.Errorf("invalid configuration: %w", err)}
	}
	fmt.Fprintln(stdout, "configuration OK")
	fmt.Fprint(stdout, describeConfig(cfg))
	return nil
}

// describeConfig says, one item a line, what a node with cfg would run.
func describeConfig(cfg config) string {
	roles, _ := cfg.roles()
	var rs []string
	for _, r := range allRoles {
		if roles[r] {
			rs = append(rs, string(r))
		}
	}
	var b strings.Builder
	mode := "embedded (everything under --data-dir " + cfg.DataDir + ")"
	if cfg.distributed() != "" {
		mode = "distributed"
	}
	fmt.Fprintf(&b, "  mode:       %s\n", mode)
	fmt.Fprintf(&b, "  roles:      %s\n", strings.Join(rs, ", "))
	fmt.Fprintf(&b, "  listen:     %s\n", cfg.Addr)
	fmt.Fprintf(&b, "  partitions: %d (fixed for the life of the deployment)\n", cfg.Partitions)
	engine := func(port, real, where string) {
		if real == "" {
			fmt.Fprintf(&b, "  %-11s embedded\n", port+":")
			return
		}
		fmt.Fprintf(&b, "  %-11s %s %s\n", port+":", real, where)
	}
	if len(cfg.Kafka.Brokers) > 0 {
		engine("log", "kafka", strings.Join(cfg.Kafka.Brokers, ",")+" (replication "+fmt.Sprint(cfg.Kafka.ReplicationFactor)+")")
		engine("store", "cassandra", strings.Join(cfg.Cassandra.Hosts, ",")+" (keyspace "+cfg.Cassandra.Keyspace+")")
	} else {
		engine("log", "", "")
		engine("store", "", "")
	}
	if len(cfg.Elastic.URLs) > 0 {
		engine("index", "elasticsearch", strings.Join(cfg.Elastic.URLs, ","))
	} else {
		engine("index", "", "")
	}
	if cfg.S3.Endpoint != "" {
		engine("blobs", "s3", cfg.S3.Endpoint+" (bucket "+cfg.S3.Bucket+")")
	} else {
		engine("blobs", "", "")
	}
	devAuth, _ := cfg.devAuthOn()
	switch {
	case cfg.Auth.PublicKeys != nil:
		fmt.Fprintln(&b, "  tokens:     public keys")
	case cfg.Auth.Secret != "":
		fmt.Fprintln(&b, "  tokens:     shared secret (HS256)")
	case devAuth:
		fmt.Fprintln(&b, "  tokens:     development secret kept in the data folder (dev sign-in on)")
	}
	return b.String()
}

// environ lists the process's environment, for unknownEnv.
var environ = os.Environ

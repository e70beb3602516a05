package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/admin"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/gateway"
	"github.com/parleychat/parley/delivery/indexer"
	"github.com/parleychat/parley/delivery/media"
	"github.com/parleychat/parley/delivery/observe"
	"github.com/parleychat/parley/delivery/presence"
	"github.com/parleychat/parley/delivery/push"
	"github.com/parleychat/parley/delivery/sequencer"
	apiref "github.com/parleychat/parley/docs/api"
	"github.com/parleychat/parley/internal/gcfloor"
	"github.com/parleychat/parley/storage/fsblob"
	"github.com/parleychat/parley/web"
)

var errHelp = errors.New("help requested")

// shutdownGrace bounds a clean shutdown.
const shutdownGrace = 8 * time.Second

// run is the whole program; tests call it too. It returns when ctx is done
// (after a clean shutdown) or on a configuration or start-up error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		cmd, args = "version", args[1:]
	}
	switch cmd {
	case "serve":
	case "version":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help":
		fmt.Fprintln(stdout, "usage: parley [serve] [flags]   (parley serve --help lists the flags)\n       parley version               (version, commit and build date; also --version)\n       parley check-config [flags]  (validate flags and PARLEY_ variables, open nothing; exit 2 when invalid)\n       parley migrate [flags]       (create the topics, schema, index template and bucket, then exit)\n       parley reindex [flags]       (rebuild the search index from the store; serve's flags name the engines)\n       parley probe URL             (exit 0 when URL answers 200: a health check for images without curl)\n       parley push-keys             (print a new VAPID key pair and webhook secret as PARLEY_PUSH_… lines)")
		return nil
	case "probe":
		return probe(ctx, args, stdout)
	case "check-config":
		return checkConfig(args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stdout, stderr)
	case "reindex":
		return reindexCommand(ctx, args, getenv, stdout, stderr)
	case "push-keys":
		return pushKeys(stdout)
	default:
		return fmt.Errorf("unknown command %q (want serve, check-config, migrate, reindex, probe, push-keys, version or help)", cmd)
	}
	var cfg config
	fs := flag.NewFlagSet("parley serve", flag.ContinueOnError)
	cfg.registerFlags(fs)
	usage := func() {
		fs.SetOutput(stderr)
		fmt.Fprintln(stderr, "usage: parley serve [flags]\n\nEvery flag has an environment twin: PARLEY_ + its name in upper case, dots and dashes as underscores (--kafka.brokers -> PARLEY_KAFKA_BROKERS).\n\nflags:")
		fs.PrintDefaults()
	}
	// The flag package prints a parse error before the usage; the error is
	// what a person needs, so the usage goes first and main prints the
	// error last.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		usage()
		if errors.Is(err, flag.ErrHelp) {
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
	cfg.paceEmbeddedIndex(fs)
	if cfg.OtelEndpoint == "" {
		cfg.OtelEndpoint = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	cfg.compose()
	if err := cfg.validate(); err != nil {
		return err
	}
	logger, level, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, logger, level, stdout)
}

// newLogger makes the process's logger: JSON or text on w, at the
// level of --log.level, which level (when not nil) changes at run time
// (PUT /debug/loglevel on --debug.addr). Records logged with a request's
// or a span's context name its request_id (and trace_id, span_id).
func newLogger(cfg config, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, nil, fmt.Errorf("--log.level %q is not a level (want debug, info, warn or error)", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(observe.LogHandler(h)), level, nil
}

func serve(ctx context.Context, cfg config, logger *slog.Logger, level *slog.LevelVar, stdout io.Writer) error {
	started := time.Now()
	if cfg.GCMinHeapMiB > 0 && os.Getenv("GOGC") == "" {
		defer gcfloor.Start(uint64(cfg.GCMinHeapMiB) << 20)()
	}
	recentErrors := admin.NewErrorLog(100) // the admin view's recent warnings and errors
	logger = slog.New(recentErrors.Wrap(logger.Handler()))
	roles, _ := cfg.roles()
	devAuth := cfg.Gateway.DevAuth
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	release, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer release()
	if cfg.Auth.Secret == "" && devAuth {
		secret, err := auth.DevSecret(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.Auth.Secret = secret
	}
	if cfg.Auth.Secret == "" && cfg.Auth.PublicKeys == nil {
		return errors.New("no way to verify tokens: set --auth-secret / PARLEY_AUTH_SECRET or --auth.public-keys (or use dev auth on loopback)")
	}
	if err := cfg.Auth.Validate(); err != nil {
		return err
	}
	verifier, err := auth.Open(cfg.Auth)
	if err != nil {
		return err
	}
	stopTracing, err := startTracing(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stopTracing()

	if cfg.DebugAddr != "" {
		dctx, stopDebug := context.WithCancel(ctx)
		defer stopDebug()
		if err := serveDebug(dctx, cfg.DebugAddr, logger, level); err != nil {
			return fmt.Errorf("--debug.addr: %w", err)
		}
	}
	eng, err := openEngines(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer eng.close()
	deployment, err := deploymentID(ctx, eng.store, cfg.Partitions)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The roles see the ports through observe's decorators: every call is
	// timed and its errors counted, whatever engine is behind it.
	ports := observe.New(reg)
	log, store, index, blobs := ports.Log(eng.log), ports.Store(eng.store), ports.Index(eng.index), ports.Blobs(eng.blobs)
	if c := logCluster(eng.log, nodeID(cfg.Addr)); c != nil {
		observe.RegisterLag(reg, c)
	}
	cfg.Gateway.DevAuth = devAuth

	work, workCtx := errgroup.WithContext(context.Background())
	workCtx, stopWork := context.WithCancel(workCtx)
	defer stopWork()

	if roles[roleSequencer] {
		seq := sequencer.New(log, store, logger, sequencer.WithRegisterer(reg))
		work.Go(func() error { return seq.Run(workCtx) })
	}
	if roles[roleIndexer] {
		ix := indexer.New(log, index, logger, indexer.WithRegisterer(reg), indexer.WithConfig(cfg.Indexer))
		work.Go(func() error { return ix.Run(workCtx) })
	}
	if roles[roleMedia] {
		mw := media.New(log, store, blobs, logger, media.WithRegisterer(reg))
		work.Go(func() error { return mw.Run(workCtx) })
	}
	if roles[rolePush] {
		pcfg := cfg.Push // VAPID keys composed from the gateway's
		view := presence.NewView(chat.NewID("push"), log, pcfg.Settle, logger)
		view.SetHeartbeat(cfg.Gateway.Presence.Heartbeat)
		pusher, err := push.New(pcfg, push.Deps{Log: log, Store: store, Presence: view, Logger: logger, Registerer: reg})
		if err != nil {
			stopWork()
			_ = work.Wait()
			return err
		}
		if pusher.Enabled() {
			work.Go(func() error { return view.Run(workCtx) })
			work.Go(func() error { return pusher.Run(workCtx) })
		} else {
			logger.Info("push role idle: no --push.vapid-public-key/--push.vapid-private-key and no --push.webhook-url")
		}
	}
	checks := map[string]func(context.Context) error{
		"log":   log.Ping,
		"store": store.Ping,
		"index": index.Ping,
		"blobs": blobs.Ping,
	}
	mux := http.NewServeMux()
	var gw *gateway.Gateway
	ready := make(chan struct{})
	if roles[roleGateway] {
		gw = gateway.New(cfg.Gateway, gateway.Deps{
			Log:        log,
			Store:      store,
			Index:      index,
			Blobs:      blobs,
			Verifier:   verifier,
			Logger:     logger,
			Registerer: reg,
			Deployment: deployment,
			Checks:     checks,
			Static:     web.NewHandler(web.Options{MediaOrigins: cfg.mediaOrigins()}),
		})
		work.Go(func() error { return gw.Run(workCtx) })
		if eng.blobHandler != nil {
			mux.Handle(fsblob.MountPath, eng.blobHandler) // signed URLs: no bearer token
		}
		mux.Handle("/", gw.Handler())
		mux.Handle(apiref.MountPath, apiref.Handler())     // the API reference page
		mux.Handle(apiref.MountPath+"/", apiref.Handler()) // and its two source files
		work.Go(func() error {
			select {
			case <-gw.Hub().Ready():
				close(ready)
			case <-workCtx.Done():
			}
			return nil
		})
	} else {
		// A worker node answers probes and scrapes only.
		mux.Handle("/", gateway.OpsHandler(checks, reg))
		close(ready)
	}

	adminView := adminHandler(cfg, eng, verifier, reg, recentErrors, started, logger)
	mux.Handle(admin.MountPath, adminView)
	mux.Handle(admin.MountPath+"/", adminView)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		stopWork()
		_ = work.Wait()
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           withBodyTimeouts(mux),
		ConnContext:       gateway.ConnContext,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()

	select {
	case <-ready:
	case <-ctx.Done():
	case <-workCtx.Done():
	}
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "Parley is serving on %s\n", url)
	logger.Info("serving", "url", url, "roles", cfg.Roles, "dev_auth", devAuth, "partitions", cfg.Partitions, "data_dir", cfg.DataDir,
		"log", eng.names["log"], "store", eng.names["store"], "index", eng.names["index"], "blobs", eng.names["blobs"])

	select {
	case <-ctx.Done():
	case err := <-srvErr:
		stopWork()
		_ = work.Wait()
		return fmt.Errorf("http server: %w", err)
	case <-workCtx.Done():
	}

	// The shutdown order (STYLE.md, ARCHITECTURE.md "Goroutines and
	// shutdown"): refuse new requests and close every realtime connection
	// with 1001; stop accepting and wait for the HTTP handlers; let the
	// sends in flight have their results; then cancel the roles and wait
	// for every goroutine of the work group (the gateway's hub, presence,
	// appender lanes and sessions; the sequencer, indexer and media
	// consumers); only then are the engines closed (deferred), so nothing
	// still running appends to a closed log or writes to a closed store.
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if gw != nil {
		gw.BeginShutdown()
	}
	_ = srv.Shutdown(sctx)
	if gw != nil {
		gw.Drain(sctx)
	}
	stopWork()
	if err := work.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// deploymentID is the deployment's identity in cursors, made once.
func deploymentID(ctx context.Context, store chat.Store, partitions int) (uint32, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	v, err := store.Meta(ctx, "deployment", hex.EncodeToString(b[:]))
	if err != nil {
		return 0, fmt.Errorf("deployment id: %w", err)
	}
	raw, err := hex.DecodeString(v)
	if err != nil || len(raw) != 4 {
		return 0, fmt.Errorf("deployment id %q is corrupt", v)
	}
	p, err := store.Meta(ctx, "partitions", strconv.Itoa(partitions))
	if err != nil {
		return 0, fmt.Errorf("partitions: %w", err)
	}
	if p != strconv.Itoa(partitions) {
		return 0, fmt.Errorf("this deployment has %s partitions; --partitions %d would scatter conversations", p, partitions)
	}
	return binary.BigEndian.Uint32(raw), nil
}

// probe GETs one URL and succeeds only on a 200 within 5 s: the health
// check of container images that have no curl.
func probe(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: parley probe URL")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return fmt.Errorf("probe: %v", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: %s answered %d", args[0], res.StatusCode)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

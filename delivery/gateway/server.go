// Package gateway is Parley's edge, composed of its parts: it wires the
// fan-out hub (delivery/fanout), presence (delivery/presence), command
// submission (delivery/submit), the REST handlers (delivery/rest) and the
// realtime transports (delivery/realtime) into one http.Handler, and owns
// what is around every route (method dispatch, Accept, authentication,
// request ids, panics), readiness, metrics and shutdown.
package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
	"github.com/parleychat/parley/delivery/presence"
	"github.com/parleychat/parley/delivery/realtime"
	"github.com/parleychat/parley/delivery/rest"
	"github.com/parleychat/parley/delivery/submit"
)

// Config holds the gateway's settings.
type Config struct {
	AllowedOrigins  string
	MaxConnsPerUser int
	MaxOpening      int
	SendRate        float64
	SendBurst       int
	QueueSize       int
	MaxBody         int64
	MaxAttachment   int64
	SSEHeartbeat    time.Duration
	PingInterval    time.Duration
	CommandTimeout  time.Duration
	ShedAfter       time.Duration
	DevAuth         bool
	TokenTTL        time.Duration
	Presence        presence.Config
	Push            rest.PushConfig
}

// RegisterFlags registers the gateway's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated extra origins allowed to open WebSockets (host patterns, e.g. app.example.com)")
	fs.IntVar(&c.MaxConnsPerUser, "max-connections-per-user", 20, "realtime connections allowed per user on one gateway")
	fs.IntVar(&c.MaxOpening, "max-opening", 512, "realtime connections opening at once (from the request to ready: upgrade, hello, replay from the store) before more are refused with 503 and Retry-After, so a reconnect storm is shed rather than piled onto the store; 0 means no limit")
	fs.Float64Var(&c.SendRate, "send-rate", 20, "sends per second allowed per user")
	fs.IntVar(&c.SendBurst, "send-burst", 40, "burst of sends allowed per user")
	fs.IntVar(&c.QueueSize, "queue-size", 4096, "events queued per connection before it is closed as too slow (1013)")
	fs.DurationVar(&c.CommandTimeout, "command-timeout", 4*time.Second, "how long a send waits for its sequenced result before 503 with Retry-After (API: never a hang past 5 s); at least 3.5 s are waited, so a 503 send is never applied (the sequencer's 2 s grace and 1 s to settle fit inside)")
	fs.DurationVar(&c.ShedAfter, "command-shed-after", 0, "while a partition's oldest command has waited this long for the sequencer, new sends to its conversations get 503 with Retry-After at once instead of joining the queue; 0 is two thirds of the time the sequencer has to reach a command (2 s with the default command-timeout), a negative value never sheds")
	fs.DurationVar(&c.TokenTTL, "dev-auth.token-ttl", 24*time.Hour, "lifetime of dev sign-in tokens")
	fs.Int64Var(&c.MaxAttachment, "attachments.max-size", 25<<20, "largest attachment in bytes")
	fs.DurationVar(&c.PingInterval, "ws.ping-interval", 25*time.Second, "WebSocket keepalive ping interval; expired tokens are closed with 4401 on this tick")
	fs.DurationVar(&c.SSEHeartbeat, "sse.heartbeat", 15*time.Second, "interval of the comment line that keeps SSE streams open through proxies")
	c.Presence.RegisterFlags(fs)
	c.Push.RegisterFlags(fs)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.MaxConnsPerUser < 1:
		return errors.New("max-connections-per-user must be at least 1")
	case c.MaxOpening < 0:
		return errors.New("max-opening must not be negative (0 means no limit)")
	case c.SendRate <= 0 || c.SendBurst < 1:
		return errors.New("send-rate and send-burst must be positive")
	case c.QueueSize < 16:
		return errors.New("queue-size must be at least 16")
	case c.CommandTimeout <= 0:
		return errors.New("command-timeout must be positive")
	}
	if err := c.Push.Validate(); err != nil {
		return err
	}
	return c.Presence.Validate()
}

func (c *Config) defaults() {
	if c.MaxBody == 0 {
		c.MaxBody = 64 << 10
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.SSEHeartbeat <= 0 {
		c.SSEHeartbeat = 15 * time.Second
	}
	if c.MaxAttachment == 0 {
		c.MaxAttachment = 25 << 20
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 24 * time.Hour
	}
}

// Gateway serves the public API of one node.
type Gateway struct {
	cfg       Config
	hub       *fanout.Hub
	submitter *submit.Submitter
	presence  *presence.Tracker
	api       *rest.API
	realtime  *realtime.Server
	logger    *slog.Logger
	checks    map[string]func(context.Context) error
	static    http.Handler
	metrics   *metrics

	shutdown  chan struct{}
	closeOnce sync.Once
}

// Deps are what a gateway is wired to.
type Deps struct {
	Log        chat.Log
	Store      chat.Store
	Index      chat.Index
	Blobs      chat.Blobs
	Verifier   *auth.Verifier
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Deployment uint32
	GatewayID  string
	// Checks name each dependency /readyz asks.
	Checks map[string]func(context.Context) error
	// Static serves the web client at / (optional).
	Static http.Handler
}

// New returns a gateway; it does no I/O.
func New(cfg Config, d Deps) *Gateway {
	cfg.defaults()
	if d.GatewayID == "" {
		d.GatewayID = chat.NewID("gw")
	}
	g := &Gateway{
		cfg:      cfg,
		logger:   d.Logger.With("component", "gateway"),
		checks:   d.Checks,
		static:   d.Static,
		shutdown: make(chan struct{}),
	}
	g.metrics = newMetrics(d.Registerer)
	g.hub = fanout.NewHub(fanout.Config{ID: d.GatewayID, Log: d.Log, Store: d.Store, Logger: d.Logger, Deployment: d.Deployment, Registerer: g.metrics.registerer})
	g.submitter = submit.New(submit.Config{Gateway: d.GatewayID, Log: d.Log, Store: d.Store, Timeout: cfg.CommandTimeout, ShedAfter: cfg.ShedAfter, Logger: d.Logger, OnAppended: g.metrics.observeAppend})
	g.registerQueues()
	g.presence = presence.New(cfg.Presence, d.GatewayID, d.Log, storeDirectory{d.Store}, g.hub, d.Logger)
	g.api = rest.New(rest.Config{
		SendRate: cfg.SendRate, SendBurst: cfg.SendBurst, MaxBody: cfg.MaxBody, MaxAttachment: cfg.MaxAttachment,
		DevAuth: cfg.DevAuth, TokenTTL: cfg.TokenTTL, Push: cfg.Push,
	}, rest.Deps{
		Store: d.Store, Index: d.Index, Blobs: d.Blobs, Verifier: d.Verifier, Submitter: g.submitter,
		Presence: g.presence, Logger: g.logger, Registerer: g.metrics.registerer,
	})
	g.realtime = realtime.New(realtime.Config{
		AllowedOrigins: cfg.AllowedOrigins, MaxConnsPerUser: cfg.MaxConnsPerUser, MaxOpening: cfg.MaxOpening, QueueSize: cfg.QueueSize,
		MaxBody: cfg.MaxBody, PingInterval: cfg.PingInterval, SSEHeartbeat: cfg.SSEHeartbeat,
	}, realtime.Deps{
		Hub: g.hub, Presence: g.presence, Verifier: d.Verifier, Actions: g.api, Logger: g.logger,
		Registerer: g.metrics.registerer, EventsToSocket: g.metrics.eventsToSocket,
	})
	g.hub.OnResult = g.submitter.Resolve
	g.hub.OnDispatch = func(n int) { g.metrics.deliveries.Add(float64(n)) }
	g.hub.OnRemoved = g.api.ForgetMember
	g.hub.OnRegister, g.hub.OnUnregister = g.presence.Connected, g.presence.Disconnected
	g.hub.OnMembership = g.presence.MembershipChanged
	return g
}

// Hub returns the gateway's fan-out hub.
func (g *Gateway) Hub() *fanout.Hub { return g.hub }

// Run runs the fan-out hub, presence, the command appender lanes and the
// realtime transports (their tickers and every session) until ctx is
// done, each on a goroutine of one errgroup, and returns only when all of
// them have returned: after Run, nothing of the gateway appends to the log
// or reads the store, so the caller may close them. A part that fails
// stops the others; its error is returned.
func (g *Gateway) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return g.hub.Run(ctx) })
	eg.Go(func() error { return g.presence.Run(ctx) })
	eg.Go(func() error { g.submitter.Run(ctx); return nil })
	eg.Go(func() error { g.realtime.Run(ctx); return nil })
	return eg.Wait()
}

// BeginShutdown makes new requests answer 503, tells the other gateways
// that this one's users are leaving it (presence BeginLeave: offline at
// once unless connected elsewhere, rather than after the grace or the
// heartbeat timeout) and closes every realtime connection with 1001
// (going away), so clients resume elsewhere.
func (g *Gateway) BeginShutdown() {
	g.closeOnce.Do(func() { close(g.shutdown) })
	g.presence.BeginLeave()
	g.hub.Each(func(c *fanout.Conn) { c.Close() })
}

// Drain waits until in-flight commands have their results and the
// presence goodbye of BeginShutdown is written, or until ctx ends. Run
// must still be running.
func (g *Gateway) Drain(ctx context.Context) {
	g.submitter.Drain(ctx)
	if err := g.presence.Leave(ctx); err != nil {
		g.logger.Warn("draining: the users' offline presence was not published; the other gateways will time them out", "err", err)
	}
}

func (g *Gateway) shuttingDown() bool {
	select {
	case <-g.shutdown:
		return true
	default:
		return false
	}
}

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler(nil) }

// routeTable returns "METHOD /pattern" for every endpoint Handler
// registers (HEAD, implied by GET, aside), sorted; the API reference
// tests hold docs/api/openapi.yaml to it.
func (g *Gateway) routeTable() []string {
	var out []string
	g.handler(func(pattern string, rt httpx.Route) {
		for m := range rt {
			out = append(out, m+" "+pattern)
		}
	})
	sort.Strings(out)
	return out
}

// handler builds the mux, telling seen (when not nil) each route.
func (g *Gateway) handler(seen func(pattern string, rt httpx.Route)) http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, rt httpx.Route, opts ...httpx.RouteOption) {
		if seen != nil {
			seen(pattern, rt)
		}
		mux.Handle(pattern, g.methods(rt, opts...))
	}
	handle("/healthz", httpx.Route{"GET": g.healthz}, httpx.Public)
	handle("/readyz", httpx.Route{"GET": g.readyz}, httpx.Public)
	handle("/metrics", httpx.Route{"GET": g.metrics.handler().ServeHTTP}, httpx.Public)
	g.api.Routes(handle)
	g.realtime.Routes(handle)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		g.writeCode(w, r, chat.CodeNotFound, "no such endpoint")
	})
	if g.static != nil {
		mux.Handle("/", g.static)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			g.writeCode(w, r, chat.CodeNotFound, "no such page")
		})
	}
	return g.recoverer(mux)
}

// methods dispatches by method, answering 405 with Allow, 406 for an
// Accept that excludes what the route produces, and authenticating.
func (g *Gateway) methods(rt httpx.Route, opts ...httpx.RouteOption) http.Handler {
	has := func(o httpx.RouteOption) bool {
		for _, x := range opts {
			if x == o {
				return true
			}
		}
		return false
	}
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		if rt[m] != nil {
			allow = append(allow, m)
		}
	}
	if rt["GET"] != nil {
		allow = append(allow, "HEAD")
	}
	allowHeader := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		h := rt[method]
		if h == nil {
			w.Header().Set("Allow", allowHeader)
			g.writeCode(w, r, chat.CodeMethodNotAllowed, fmt.Sprintf("method %s is not allowed here", r.Method))
			return
		}
		switch {
		case has(httpx.NoAccept):
		case has(httpx.AcceptSSE):
			if !accepts(r, "text/event-stream") {
				g.writeCode(w, r, chat.CodeNotAcceptable, "this endpoint produces text/event-stream")
				return
			}
		default:
			if !accepts(r, "application/json") {
				g.writeCode(w, r, chat.CodeNotAcceptable, "this endpoint produces application/json")
				return
			}
		}
		if !has(httpx.Public) {
			user, exp, err := g.authenticateOffStack(r, has(httpx.Realtime))
			if err != nil {
				g.writeErr(w, r, err)
				return
			}
			r = httpx.WithUser(r, user, exp)
		}
		if g.shuttingDown() && r.URL.Path != "/healthz" {
			g.writeCode(w, r, chat.CodeUnavailable, "server is shutting down")
			return
		}
		h(w, r)
	})
}

// authenticateOffStack authenticates a realtime request on a goroutine of
// its own: token verification needs a deep stack, which a long-poll that
// then waits would otherwise keep for as long as it waits.
func (g *Gateway) authenticateOffStack(r *http.Request, realtime bool) (chat.User, time.Time, error) {
	if !realtime {
		return g.api.Authenticate(r, false)
	}
	var user chat.User
	var exp time.Time
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		user, exp, err = g.api.Authenticate(r, true)
	}()
	<-done
	return user, exp, err
}

// accepts reports whether the Accept header admits mediaType.
func accepts(r *http.Request, mediaType string) bool {
	header := r.Header.Values("Accept")
	if len(header) == 0 {
		return true
	}
	major := mediaType[:strings.IndexByte(mediaType, '/')]
	for _, h := range header {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				if strings.TrimSpace(part) == "*/*" || strings.TrimSpace(part) == "" {
					return true
				}
				continue
			}
			if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
				continue
			}
			if mt == "*/*" || mt == mediaType || mt == major+"/*" {
				return true
			}
		}
	}
	return false
}

// recoverer gives every request an id and turns a panic into a 500 (a bug,
// logged) instead of a dropped connection.
func (g *Gateway) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = httpx.WithRequestID(r)
		w.Header().Set("X-Request-Id", httpx.RequestID(r))
		start := time.Now()
		defer func() {
			g.logger.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "duration", time.Since(start))
		}()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				g.logger.ErrorContext(r.Context(), "handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
				g.writeCode(w, r, chat.CodeInternal, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (g *Gateway) writeCode(w http.ResponseWriter, r *http.Request, code, msg string) {
	httpx.WriteCode(w, r, code, msg)
}

func (g *Gateway) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	httpx.WriteError(g.logger, w, r, err)
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	failing := failingChecks(r.Context(), g.checks)
	if why := g.hub.NotReady(); why != "" {
		failing["fanout"] = why
	}
	if g.shuttingDown() {
		failing["server"] = "shutting down"
	}
	writeReadiness(w, r, failing)
}

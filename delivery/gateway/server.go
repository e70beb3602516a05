// Package gateway is Parley's edge: the REST API, the three realtime
// transports (WebSocket, SSE, long-polling), authentication, limits, and
// the fan-out hub that delivers sequenced events to local connections.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/presence"
	"github.com/parleychat/parley/delivery/submit"
)

// Config holds the gateway's settings.
type Config struct {
	AllowedOrigins  string
	MaxConnsPerUser int
	SendRate        float64
	SendBurst       int
	QueueSize       int
	MaxBody         int64
	MaxAttachment   int64
	SSEHeartbeat    time.Duration
	PingInterval    time.Duration
	CommandTimeout  time.Duration
	DevAuth         bool
	TokenTTL        time.Duration
	Presence        presence.Config
	Push            PushConfig
}

// RegisterFlags registers the gateway's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated extra origins allowed to open WebSockets (host patterns, e.g. app.example.com)")
	fs.IntVar(&c.MaxConnsPerUser, "max-connections-per-user", 20, "realtime connections allowed per user on one gateway")
	fs.Float64Var(&c.SendRate, "send-rate", 20, "sends per second allowed per user")
	fs.IntVar(&c.SendBurst, "send-burst", 40, "burst of sends allowed per user")
	fs.IntVar(&c.QueueSize, "queue-size", 4096, "events queued per connection before it is closed as too slow (1013)")
	fs.DurationVar(&c.CommandTimeout, "command-timeout", 4*time.Second, "how long a send waits for its sequenced result before 503 with Retry-After (API: never a hang past 5 s); at least 3.5 s are waited, so a 503 send is never applied (the sequencer's 2 s grace and 1 s to settle fit inside)")
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
	cfg        Config
	log        chat.Log
	store      chat.Store
	index      chat.Index
	blobs      chat.Blobs
	verifier   *auth.Verifier
	hub        *hub
	submitter  *submit.Submitter
	logger     *slog.Logger
	deployment uint32
	partitions int
	limiter    *limiter
	typingRate *limiter
	origins    []string
	checks     map[string]func(context.Context) error
	static     http.Handler
	metrics    *metrics
	presence   *presence.Tracker
	members    *memberCache
	claims     claimedNames

	ticketsMu sync.Mutex
	tickets   *auth.Tickets

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

// New returns a gateway.
func New(cfg Config, d Deps) *Gateway {
	cfg.defaults()
	if d.GatewayID == "" {
		d.GatewayID = chat.NewID("gw")
	}
	g := &Gateway{
		cfg:        cfg,
		log:        d.Log,
		store:      d.Store,
		index:      d.Index,
		blobs:      d.Blobs,
		verifier:   d.Verifier,
		logger:     d.Logger.With("component", "gateway"),
		deployment: d.Deployment,
		partitions: d.Log.Partitions(),
		limiter:    newLimiter(cfg.SendRate, cfg.SendBurst),
		typingRate: newLimiter(2, 5),
		checks:     d.Checks,
		static:     d.Static,
		shutdown:   make(chan struct{}),
	}
	for _, o := range strings.Split(cfg.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			g.origins = append(g.origins, o)
		}
	}
	g.metrics = newMetrics(d.Registerer)
	g.hub = &hub{Hub: fanout.NewHub(fanout.Config{ID: d.GatewayID, Log: d.Log, Store: d.Store, Logger: d.Logger, Deployment: d.Deployment}), id: d.GatewayID, log: d.Log}
	g.submitter = submit.New(submit.Config{Gateway: d.GatewayID, Log: d.Log, Store: d.Store, Timeout: cfg.CommandTimeout, Logger: d.Logger, OnAppended: g.metrics.observeAppend})
	g.hub.OnResult = g.submitter.Resolve
	g.hub.OnDispatch = func(n int) { g.metrics.deliveries.Add(float64(n)) }
	g.members = newMemberCache()
	g.hub.OnRemoved = g.members.forget
	g.presence = presence.New(cfg.Presence, d.GatewayID, d.Log, storeDirectory{d.Store}, g.hub, d.Logger)
	g.hub.OnRegister, g.hub.OnUnregister = g.presence.Connected, g.presence.Disconnected
	g.hub.OnMembership = g.presence.MembershipChanged
	return g
}

// Hub returns the gateway's fan-out hub.
func (g *Gateway) Hub() *fanout.Hub { return g.hub.Hub }

// Run runs the fan-out and the WebSocket keepalive until ctx is done.
func (g *Gateway) Run(ctx context.Context) error {
	go g.keepalive(ctx)
	go func() { _ = g.presence.Run(ctx) }()
	go g.submitter.Run(ctx)
	go g.heartbeats(ctx)
	return g.hub.Run(ctx)
}

// keepalive pings every WebSocket and closes those whose token expired,
// from one ticker and a few workers rather than a goroutine per connection.
func (g *Gateway) keepalive(ctx context.Context) {
	tick := time.NewTicker(g.cfg.PingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		work := make(chan func(), 64)
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for f := range work {
					f()
				}
			}()
		}
		g.hub.Each(func(c *fanout.Conn) {
			if c.Keepalive != nil {
				work <- c.Keepalive
			}
		})
		close(work)
		wg.Wait()
	}
}

// BeginShutdown makes new requests answer 503 and closes every realtime
// connection with 1001 (going away), so clients resume elsewhere.
func (g *Gateway) BeginShutdown() {
	g.closeOnce.Do(func() { close(g.shutdown) })
	g.hub.Each(func(c *fanout.Conn) { c.Close() })
}

// Drain waits until in-flight commands have their results, or ctx ends.
func (g *Gateway) Drain(ctx context.Context) {
	g.submitter.Drain(ctx)
}

func (g *Gateway) shuttingDown() bool {
	select {
	case <-g.shutdown:
		return true
	default:
		return false
	}
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyUser
	keyExpiry
)

// expiryOf is when the request's token expires.
func expiryOf(r *http.Request) time.Time {
	t, _ := r.Context().Value(keyExpiry).(time.Time)
	return t
}

func requestID(r *http.Request) string {
	if v, ok := r.Context().Value(keyRequestID).(string); ok {
		return v
	}
	return ""
}

func userOf(r *http.Request) chat.User {
	u, _ := r.Context().Value(keyUser).(chat.User)
	return u
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// route is one path's handlers by method.
type route map[string]http.HandlerFunc

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler(nil) }

// routeTable returns "METHOD /pattern" for every endpoint Handler
// registers (HEAD, implied by GET, aside), sorted; the API reference
// tests hold docs/api/openapi.yaml to it.
func (g *Gateway) routeTable() []string {
	var out []string
	g.handler(func(pattern string, rt route) {
		for m := range rt {
			out = append(out, m+" "+pattern)
		}
	})
	sort.Strings(out)
	return out
}

// handler builds the mux, telling seen (when not nil) each route.
func (g *Gateway) handler(seen func(pattern string, rt route)) http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, rt route, opts ...routeOpt) {
		if seen != nil {
			seen(pattern, rt)
		}
		mux.Handle(pattern, g.methods(rt, opts...))
	}
	handle("/healthz", route{"GET": g.healthz}, public)
	handle("/readyz", route{"GET": g.readyz}, public)
	handle("/metrics", route{"GET": g.metrics.handler().ServeHTTP}, public)
	handle("/v1/auth/dev", route{"POST": g.devSignIn}, public)
	handle("/v1/me", route{"GET": g.me, "PATCH": g.patchMe})
	handle("/v1/users", route{"GET": g.listUsers})
	handle("/v1/users/{uid}", route{"GET": g.getUser})
	handle("/v1/tickets", route{"POST": g.postTicket})
	handle("/v1/conversations", route{"GET": g.listConversations, "POST": g.createConversation})
	handle("/v1/conversations/{cid}", route{"GET": g.getConversation, "PATCH": g.patchConversation})
	handle("/v1/conversations/{cid}/members", route{"GET": g.listMembers})
	handle("/v1/conversations/{cid}/members/{uid}", route{"PUT": g.addMember, "DELETE": g.removeMember})
	handle("/v1/conversations/{cid}/messages", route{"GET": g.listMessages, "POST": g.postMessage})
	handle("/v1/conversations/{cid}/messages/{mid}", route{"GET": g.getMessage, "PATCH": g.editMessage, "DELETE": g.deleteMessage})
	handle("/v1/conversations/{cid}/messages/{mid}/reactions/{emoji}", route{"PUT": g.addReaction, "DELETE": g.removeReaction})
	handle("/v1/conversations/{cid}/events", route{"GET": g.listEvents})
	handle("/v1/conversations/{cid}/read", route{"POST": g.markRead})
	handle("/v1/conversations/{cid}/typing", route{"POST": g.typing})
	handle("/v1/conversations/{cid}/presence", route{"GET": g.getPresence})
	handle("/v1/conversations/{cid}/settings", route{"GET": g.getSettings, "PUT": g.putSettings})
	handle("/v1/devices", route{"GET": g.listDevices})
	handle("/v1/devices/{id}", route{"PUT": g.putDevice, "DELETE": g.deleteDevice})
	handle("/v1/push/vapid-public-key", route{"GET": g.vapidPublicKey})
	handle("/v1/search", route{"GET": g.search})
	handle("/v1/attachments", route{"POST": g.createAttachment})
	handle("/v1/attachments/{id}", route{"GET": g.getAttachment}, noAccept)
	handle("/v1/attachments/{id}/thumbnail", route{"GET": g.getThumbnail}, noAccept)
	handle("/v1/ws", route{"GET": g.serveWS}, realtime, noAccept)
	handle("/v1/events", route{"GET": g.serveSSE}, realtime, acceptSSE)
	handle("/v1/poll", route{"GET": g.servePoll}, realtime)
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

type routeOpt int

const (
	public routeOpt = iota + 1
	realtime
	noAccept
	acceptSSE
)

// methods dispatches by method, answering 405 with Allow, 406 for an
// Accept that excludes what the route produces, and authenticating.
func (g *Gateway) methods(rt route, opts ...routeOpt) http.Handler {
	has := func(o routeOpt) bool {
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
			g.writeCode(w, r, "method_not_allowed", fmt.Sprintf("method %s is not allowed here", r.Method))
			return
		}
		switch {
		case has(noAccept):
		case has(acceptSSE):
			if !accepts(r, "text/event-stream") {
				g.writeCode(w, r, "not_acceptable", "this endpoint produces text/event-stream")
				return
			}
		default:
			if !accepts(r, "application/json") {
				g.writeCode(w, r, "not_acceptable", "this endpoint produces application/json")
				return
			}
		}
		if !has(public) {
			user, exp, err := g.authenticateOffStack(r, has(realtime))
			if err != nil {
				g.writeErr(w, r, err)
				return
			}
			g.recordClaim(r.Context(), user)
			ctx := context.WithValue(r.Context(), keyUser, user)
			r = r.WithContext(context.WithValue(ctx, keyExpiry, exp))
		}
		if g.shuttingDown() && r.URL.Path != "/healthz" {
			g.writeCode(w, r, chat.CodeUnavailable, "server is shutting down")
			return
		}
		h(w, r)
	})
}

func (g *Gateway) authenticate(r *http.Request, allowQuery bool) (chat.User, time.Time, error) {
	if allowQuery && r.Header.Get("Authorization") == "" {
		if t := r.URL.Query().Get("ticket"); t != "" {
			return g.redeemTicket(r, t)
		}
	}
	tok := auth.FromRequest(r, allowQuery)
	if tok == "" {
		return chat.User{}, time.Time{}, chat.Errorf(chat.CodeUnauthorized, "missing bearer token")
	}
	return g.verifier.Verify(tok)
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
		r = r.WithContext(context.WithValue(r.Context(), keyRequestID, newRequestID()))
		w.Header().Set("X-Request-Id", requestID(r))
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				g.logger.Error("handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
				g.writeCode(w, r, chat.CodeInternal, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, errorJSON(chat.CodeInternal, "encoding failed", "")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decodeJSON reads a JSON object body of at most MaxBody bytes into v.
func (g *Gateway) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return &chat.Error{Code: "unsupported_media_type", Message: "request body must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return chat.Errorf(chat.CodeTooLarge, "request body is larger than %d bytes", g.cfg.MaxBody)
		}
		return chat.Errorf(chat.CodeInvalid, "could not read request body")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return chat.Errorf(chat.CodeInvalid, "malformed JSON: %s", jsonErrText(err))
	}
	return nil
}

func jsonErrText(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("field %q has the wrong type", ute.Field)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "invalid body"
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	failing := failingChecks(r.Context(), g.checks)
	if why := g.hub.NotReady(); why != "" {
		failing["fanout"] = why
	}
	if g.shuttingDown() {
		failing["server"] = "shutting down"
	}
	writeReadiness(w, failing)
}

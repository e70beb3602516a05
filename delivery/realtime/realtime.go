// Package realtime holds the gateway's three realtime transports (API
// "Realtime"): WebSocket (/v1/ws, with its frames, token refresh and
// presence.watch), Server-Sent Events (/v1/events) and long-polling
// (/v1/poll). Each opens a fanout.Conn on the gateway's hub, replays from
// the client's cursor and then writes what the hub queues, many events per
// write. An idle WebSocket or SSE stream holds one reader goroutine and
// small buffers; a writer runs only while something waits to be written.
package realtime

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
	"github.com/parleychat/parley/delivery/presence"
)

// Config holds the transports' settings (flags are the gateway's).
type Config struct {
	// AllowedOrigins are extra origins (host patterns) allowed to open
	// WebSockets, comma-separated.
	AllowedOrigins  string
	MaxConnsPerUser int           // realtime connections per user on this gateway
	QueueSize       int           // events queued per connection before 1013
	MaxBody         int64         // largest client frame
	PingInterval    time.Duration // WebSocket keepalive and token-expiry tick
	SSEHeartbeat    time.Duration // SSE comment line interval
	MaxOpening      int           // connections opening at once (request to ready) before 503 + Retry-After; 0: no limit
}

// Actions carry out what a WebSocket's frames ask beyond the connection
// itself; the REST API (delivery/rest) implements them, so a frame and its
// REST twin are checked alike.
type Actions interface {
	// Send checks and submits a send; done is called exactly once, with
	// the message or the error (rate_limited, with its wait in RetryAfter, for a refused rate).
	Send(ctx context.Context, u chat.User, req httpx.SendRequest, done func(*chat.Message, error))
	// Typing tells the conversation's members that u is typing.
	Typing(ctx context.Context, u chat.User, cid string) error
	// Read moves u's read position in cid to seq.
	Read(ctx context.Context, u chat.User, cid string, seq int64) error
}

// Deps are what a Server is wired to.
type Deps struct {
	Hub      *fanout.Hub
	Presence *presence.Tracker
	Verifier *auth.Verifier // checks the tokens of auth frames
	Actions  Actions
	Logger   *slog.Logger
	// Registerer takes the transports' metrics.
	Registerer prometheus.Registerer
	// EventsToSocket observes, per event written, the time from its
	// record's read until it was written to a socket.
	EventsToSocket prometheus.Observer
}

// Server serves the realtime transports of one gateway.
type Server struct {
	cfg      Config
	hub      *fanout.Hub
	presence *presence.Tracker
	verifier *auth.Verifier
	actions  Actions
	logger   *slog.Logger
	origins  []string
	metrics  *metrics
	// polls keeps answered long-polls' registrations for the next poll.
	polls pollKeeper
	// parked counts the long-polls parked (pollpark.go) and waiting.
	parked atomic.Int64
	// opening holds a token per connection opening (nil: no limit).
	opening chan struct{}

	// sessions is the context every session's work derives its own from:
	// the server's life, cancelled when Run stops. stopSessions cancels it.
	sessions     context.Context
	stopSessions context.CancelFunc
	// spawnMu guards stopping; running counts the goroutines spawn
	// started, which Run waits for.
	spawnMu  sync.Mutex
	stopping bool
	running  sync.WaitGroup
	// late holds the goodbyes of connections whose writer would have
	// started once Run was stopping (guarded by spawnMu); lateCh wakes Run
	// to say them.
	late   []func()
	lateCh chan struct{}
}

// New returns a Server; it does no I/O.
func New(cfg Config, d Deps) *Server {
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 25 * time.Second
	}
	if cfg.SSEHeartbeat <= 0 {
		cfg.SSEHeartbeat = 15 * time.Second
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 64 << 10
	}
	sessions, stop := context.WithCancel(context.Background())
	t := &Server{
		sessions:     sessions,
		stopSessions: stop,
		lateCh:       make(chan struct{}, 1),
		cfg:          cfg,
		hub:          d.Hub,
		presence:     d.Presence,
		verifier:     d.Verifier,
		actions:      d.Actions,
		logger:       d.Logger,
		metrics:      newMetrics(d.Registerer, d.EventsToSocket),
	}
	if d.Registerer != nil {
		d.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_longpolls_parked", Help: "Long-polls parked off the HTTP server, waiting in a read of their socket (also counted in parley_connections)."},
			func() float64 { return float64(t.parked.Load()) }))
	}
	if cfg.MaxOpening > 0 {
		t.opening = make(chan struct{}, cfg.MaxOpening)
	}
	for _, o := range strings.Split(cfg.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			t.origins = append(t.origins, o)
		}
	}
	return t
}

// Routes registers the three transports with mux.
func (t *Server) Routes(mux httpx.Mux) {
	mux("/v1/ws", httpx.Route{"GET": t.serveWS}, httpx.Realtime, httpx.NoAccept)
	mux("/v1/events", httpx.Route{"GET": t.serveSSE}, httpx.Realtime, httpx.AcceptSSE)
	mux("/v1/poll", httpx.Route{"GET": t.servePoll}, httpx.Realtime)
}

// Run pings every WebSocket and beats every SSE stream, each from one
// ticker, until ctx is done. It owns every goroutine of the transports:
// once ctx is done it cancels the sessions' context, refuses new sessions
// and returns only when every session's reader and writer has ended.
func (t *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); t.keepalive(ctx) }()
	go func() { defer wg.Done(); t.heartbeats(ctx) }()
	wg.Wait()
	// Every open connection is closed (1001), so its writer closes the
	// socket and the reader, which reads without a context of its own
	// (an idle connection then costs no context registration), returns.
	// Writers started by these closes are counted before spawn refuses.
	t.hub.Each(func(c *fanout.Conn) { c.Close() })
	t.spawnMu.Lock()
	t.stopping = true
	t.spawnMu.Unlock()
	t.stopSessions()
	// Once more, for the connections that registered while the first
	// pass ran: their writers are refused now, so they say their goodbyes
	// through waitSessions. One that registers after this pass finds the
	// sessions' context ended when it opens, and closes itself.
	t.hub.Each(func(c *fanout.Conn) { c.Close() })
	t.waitSessions()
}

// waitSessions waits for every goroutine spawn started. A connection that
// finished opening after the closes above gets no writer (spawnWriter
// hands its goodbye here instead), and its reader ends only once its
// socket closes: the goodbyes are said on the way, each on a goroutine
// this waits for.
func (t *Server) waitSessions() {
	done := make(chan struct{})
	go func() { t.running.Wait(); close(done) }()
	var goodbyes sync.WaitGroup
	defer goodbyes.Wait()
	say := func() {
		t.spawnMu.Lock()
		late := t.late
		t.late = nil
		t.spawnMu.Unlock()
		for _, f := range late {
			goodbyes.Add(1)
			go func() { defer goodbyes.Done(); f() }()
		}
	}
	for {
		select {
		case <-done:
			say() // one handed over just before the last reader ended
			return
		case <-t.lateCh:
			say()
		}
	}
}

// spawnWriter runs a connection's writer like spawn. Once Run is
// stopping no writer starts, so the connection's goodbye (its close
// handshake) is handed to Run: a connection that opened while the server
// stopped is still closed with its close code, never left open.
func (t *Server) spawnWriter(write, goodbye func()) {
	if t.spawn(write) {
		return
	}
	t.spawnMu.Lock()
	t.late = append(t.late, goodbye)
	t.spawnMu.Unlock()
	select {
	case t.lateCh <- struct{}{}:
	default:
	}
}

// spawn runs f on a goroutine Run waits for. Once Run is stopping it runs
// nothing and reports false.
func (t *Server) spawn(f func()) bool {
	t.spawnMu.Lock()
	defer t.spawnMu.Unlock()
	if t.stopping {
		return false
	}
	t.running.Add(1)
	go func() {
		defer t.running.Done()
		f()
	}()
	return true
}

// keepaliveWorkers ping the WebSockets side by side, so that one slow
// client does not hold up the tick for the others.
const keepaliveWorkers = 16

// keepalive pings every WebSocket and closes those whose token expired,
// from one ticker and a fixed pool of workers (started once, not per
// tick) rather than a goroutine per connection.
func (t *Server) keepalive(ctx context.Context) {
	tick := time.NewTicker(t.cfg.PingInterval)
	defer tick.Stop()
	work := make(chan func(), 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(work)
	for range keepaliveWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				f()
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.hub.Each(func(c *fanout.Conn) {
			if c.Keepalive != nil {
				work <- c.Keepalive
			}
		})
	}
}

// newConn returns a connection of transport whose overflows are counted.
func (t *Server) newConn(user, transport string) *fanout.Conn {
	c := fanout.NewConn(user, t.cfg.QueueSize)
	c.Transport = transport
	c.OnOverflow = t.metrics.overflows.Inc
	return c
}

// admit takes one of the MaxOpening slots of connections opening; it
// never waits. ok is false when all are taken (the caller answers 503);
// otherwise release, which may be called more than once, gives the slot
// back once the connection is open or has failed to.
func (t *Server) admit() (release func(), ok bool) {
	if t.opening == nil {
		return func() {}, true
	}
	select {
	case t.opening <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-t.opening }) }, true
	default:
		t.metrics.shed.Inc()
		return nil, false
	}
}

// writeBusy answers a request admit refused.
func (t *Server) writeBusy(w http.ResponseWriter, r *http.Request) {
	t.writeCode(w, r, chat.CodeUnavailable, "too many connections opening at once; retry shortly")
}

func (t *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	httpx.WriteError(t.logger, w, r, err)
}

func (t *Server) writeCode(w http.ResponseWriter, r *http.Request, code, msg string) {
	httpx.WriteCode(w, r, code, msg)
}

// Package rest holds the gateway's REST handlers (API "REST"): sign-in,
// profiles, conversations, members, messages, reactions, reads, typing,
// presence pages, settings, devices, search, attachments and realtime
// tickets. An API validates each request, reads the Store directly and
// submits every change as a command (delivery/submit). It also carries
// out what a WebSocket's frames ask (Send, Typing, Read), so a frame and
// its REST twin are checked alike.
package rest

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/httpx"
	"github.com/parleychat/parley/delivery/presence"
	"github.com/parleychat/parley/delivery/submit"
)

// Config holds the REST settings (flags are the gateway's).
type Config struct {
	SendRate      float64 // sends per second allowed per user
	SendBurst     int     // burst of sends allowed per user
	MaxBody       int64   // largest JSON request body
	MaxAttachment int64   // largest attachment
	DevAuth       bool    // POST /v1/auth/dev signs anyone in
	TokenTTL      time.Duration
	Push          PushConfig
}

// Deps are what an API is wired to.
type Deps struct {
	Store     chat.Store
	Index     chat.Index
	Blobs     chat.Blobs
	Verifier  *auth.Verifier
	Submitter *submit.Submitter
	Presence  *presence.Tracker
	Logger    *slog.Logger
	// Registerer takes parley_sends_total.
	Registerer prometheus.Registerer
}

// API serves the REST endpoints of one gateway.
type API struct {
	cfg        Config
	store      chat.Store
	index      chat.Index
	blobs      chat.Blobs
	verifier   *auth.Verifier
	submitter  *submit.Submitter
	presence   *presence.Tracker
	logger     *slog.Logger
	limiter    *limiter
	typingRate *limiter
	members    *memberCache
	claims     claimedNames
	sends      prometheus.Counter
	metrics    *apiMetrics

	ticketsMu sync.Mutex
	tickets   *auth.Tickets
}

// New returns an API; it does no I/O.
func New(cfg Config, d Deps) *API {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.MaxAttachment == 0 {
		cfg.MaxAttachment = 25 << 20
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 24 * time.Hour
	}
	a := &API{
		cfg:        cfg,
		store:      d.Store,
		index:      d.Index,
		blobs:      d.Blobs,
		verifier:   d.Verifier,
		submitter:  d.Submitter,
		presence:   d.Presence,
		logger:     d.Logger,
		limiter:    newLimiter(cfg.SendRate, cfg.SendBurst),
		typingRate: newLimiter(2, 5),
		members:    newMemberCache(),
		sends:      prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_sends_total", Help: "Messages sent (acknowledged)."}),
	}
	if d.Registerer != nil {
		d.Registerer.MustRegister(a.sends)
	}
	a.metrics = newAPIMetrics(d.Registerer)
	return a
}

// Routes registers every REST endpoint with mux.
func (a *API) Routes(mux httpx.Mux) {
	mux("/v1/auth/dev", httpx.Route{"POST": a.devSignIn}, httpx.Public)
	mux("/v1/me", httpx.Route{"GET": a.me, "PATCH": a.patchMe})
	mux("/v1/users", httpx.Route{"GET": a.listUsers})
	mux("/v1/users/{uid}", httpx.Route{"GET": a.getUser})
	mux("/v1/tickets", httpx.Route{"POST": a.postTicket})
	mux("/v1/conversations", httpx.Route{"GET": a.listConversations, "POST": a.createConversation})
	mux("/v1/conversations/{cid}", httpx.Route{"GET": a.getConversation, "PATCH": a.patchConversation})
	mux("/v1/conversations/{cid}/members", httpx.Route{"GET": a.listMembers})
	mux("/v1/conversations/{cid}/members/{uid}", httpx.Route{"PUT": a.addMember, "DELETE": a.removeMember})
	mux("/v1/conversations/{cid}/messages", httpx.Route{"GET": a.listMessages, "POST": a.postMessage})
	mux("/v1/conversations/{cid}/messages/{mid}", httpx.Route{"GET": a.getMessage, "PATCH": a.editMessage, "DELETE": a.deleteMessage})
	mux("/v1/conversations/{cid}/messages/{mid}/reactions/{emoji}", httpx.Route{"PUT": a.addReaction, "DELETE": a.removeReaction})
	mux("/v1/conversations/{cid}/events", httpx.Route{"GET": a.listEvents})
	mux("/v1/conversations/{cid}/read", httpx.Route{"POST": a.markRead})
	mux("/v1/conversations/{cid}/typing", httpx.Route{"POST": a.typing})
	mux("/v1/conversations/{cid}/presence", httpx.Route{"GET": a.getPresence})
	mux("/v1/conversations/{cid}/settings", httpx.Route{"GET": a.getSettings, "PUT": a.putSettings})
	mux("/v1/devices", httpx.Route{"GET": a.listDevices})
	mux("/v1/devices/{id}", httpx.Route{"PUT": a.putDevice, "DELETE": a.deleteDevice})
	mux("/v1/push/vapid-public-key", httpx.Route{"GET": a.vapidPublicKey})
	mux("/v1/search", httpx.Route{"GET": a.search})
	mux("/v1/attachments", httpx.Route{"POST": a.createAttachment})
	mux("/v1/attachments/{id}", httpx.Route{"GET": a.getAttachment}, httpx.NoAccept)
	mux("/v1/attachments/{id}/thumbnail", httpx.Route{"GET": a.getThumbnail}, httpx.NoAccept)
}

// Authenticate names the caller of r by its bearer token, or (allowQuery:
// realtime requests) by a ticket or token in the query, and records the
// token's name claim. Errors are "unauthorized", or "unavailable" when
// the ticket key cannot be read.
func (a *API) Authenticate(r *http.Request, allowQuery bool) (chat.User, time.Time, error) {
	u, exp, err := a.authenticate(r, allowQuery)
	if err == nil {
		a.recordClaim(r.Context(), u)
	}
	return u, exp, err
}

func (a *API) authenticate(r *http.Request, allowQuery bool) (chat.User, time.Time, error) {
	if allowQuery && r.Header.Get("Authorization") == "" {
		if t := r.URL.Query().Get("ticket"); t != "" {
			return a.redeemTicket(r, t)
		}
	}
	tok := auth.FromRequest(r, allowQuery)
	if tok == "" {
		return chat.User{}, time.Time{}, chat.Errorf(chat.CodeUnauthorized, "missing bearer token")
	}
	return a.verifier.Verify(tok)
}

// Send checks a send (rate, membership, text, attachments) and submits
// it; done is called exactly once, with the message or the error (a
// chat.Error: rate_limited carries its wait in RetryAfter; "unavailable"
// only for a send that will never be applied). A check that fails calls done before Send
// returns, so sends of one caller are submitted in the order they came.
func (a *API) Send(ctx context.Context, u chat.User, req httpx.SendRequest, done func(*chat.Message, error)) {
	start := time.Now()
	ctx, span := startSend(ctx, "ws")
	answer := done
	done = func(m *chat.Message, err error) {
		a.metrics.sent("ws", start, err)
		endSend(span, err)
		answer(m, err)
	}
	cmd, err := a.sendCommand(ctx, u, req)
	if err != nil {
		done(nil, err)
		return
	}
	a.submitter.Submit(ctx, cmd, func(res chat.Result, err error) {
		if err != nil {
			done(nil, err)
			return
		}
		m, err := messageOf(res)
		if err != nil {
			done(nil, err)
			return
		}
		a.sends.Inc()
		done(m, nil)
	})
}

// Typing sends a typing event from u to the members of conversation cid.
func (a *API) Typing(ctx context.Context, u chat.User, cid string) error {
	return a.sendTyping(ctx, u, cid)
}

// Read moves u's read position in conversation cid to seq.
func (a *API) Read(ctx context.Context, u chat.User, cid string, seq int64) error {
	return a.read(ctx, u, cid, seq)
}

// ForgetMember drops a cached membership when the fan-out sees it end
// (fanout.Hub.OnRemoved).
func (a *API) ForgetMember(cid, uid string) { a.members.forget(cid, uid) }

// writeErr answers err in the contract's error shape.
func (a *API) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	httpx.WriteError(a.logger, w, r, err)
}

func (a *API) writeCode(w http.ResponseWriter, r *http.Request, code, msg string) {
	httpx.WriteCode(w, r, code, msg)
}

// decodeJSON reads a JSON object body of at most MaxBody bytes into v.
func (a *API) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return httpx.DecodeJSON(w, r, a.cfg.MaxBody, v)
}

package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/httpx"
)

// ticketKeyMeta names the Store metadata that holds the ticket key of a
// deployment whose tokens are verified by public keys only (no HS256
// secret to derive it from): set-if-absent, so every gateway gets one key.
const ticketKeyMeta = "realtime_ticket_key"

// ticketIssuer returns the deployment's Tickets, made on first use.
func (a *API) ticketIssuer(ctx context.Context) (*auth.Tickets, error) {
	a.ticketsMu.Lock()
	defer a.ticketsMu.Unlock()
	if a.tickets != nil {
		return a.tickets, nil
	}
	key := a.verifier.TicketKey()
	if key == nil {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		v, err := a.store.Meta(ctx, ticketKeyMeta, hex.EncodeToString(b[:]))
		if err != nil {
			return nil, unavailable(err)
		}
		if key, err = hex.DecodeString(v); err != nil {
			return nil, err
		}
	}
	t, err := auth.NewTickets(key)
	if err != nil {
		return nil, err
	}
	a.tickets = t
	return t, nil
}

// postTicket issues a single-use realtime ticket for the caller (API
// "Authentication"). The ticket is never logged.
func (a *API) postTicket(w http.ResponseWriter, r *http.Request) {
	t, err := a.ticketIssuer(r.Context())
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	ticket, exp, err := t.Issue(httpx.User(r), httpx.Expiry(r))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]string{"ticket": ticket, "expires_at": exp.UTC().Format(time.RFC3339Nano)})
}

// redeemTicket authenticates a realtime request by its ticket query
// parameter.
func (a *API) redeemTicket(r *http.Request, ticket string) (chat.User, time.Time, error) {
	t, err := a.ticketIssuer(r.Context())
	if err != nil {
		return chat.User{}, time.Time{}, err
	}
	return t.Redeem(ticket)
}

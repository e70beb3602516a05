package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/auth"
)

// ticketKeyMeta names the Store metadata that holds the ticket key of a
// deployment whose tokens are verified by public keys only (no HS256
// secret to derive it from): set-if-absent, so every gateway gets one key.
const ticketKeyMeta = "realtime_ticket_key"

// ticketIssuer returns the deployment's Tickets, made on first use.
func (g *Gateway) ticketIssuer(ctx context.Context) (*auth.Tickets, error) {
	g.ticketsMu.Lock()
	defer g.ticketsMu.Unlock()
	if g.tickets != nil {
		return g.tickets, nil
	}
	key := g.verifier.TicketKey()
	if key == nil {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		v, err := g.store.Meta(ctx, ticketKeyMeta, hex.EncodeToString(b[:]))
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
	g.tickets = t
	return t, nil
}

// postTicket issues a single-use realtime ticket for the caller (API
// "Authentication"). The ticket is never logged.
func (g *Gateway) postTicket(w http.ResponseWriter, r *http.Request) {
	t, err := g.ticketIssuer(r.Context())
	if err != nil {
		g.writeErr(w, r, err)
		return
	}
	ticket, exp, err := t.Issue(userOf(r), expiryOf(r))
	if err != nil {
		g.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"ticket": ticket, "expires_at": exp.UTC().Format(time.RFC3339Nano)})
}

// redeemTicket authenticates a realtime request by its ticket query
// parameter.
func (g *Gateway) redeemTicket(r *http.Request, ticket string) (chat.User, time.Time, error) {
	t, err := g.ticketIssuer(r.Context())
	if err != nil {
		return chat.User{}, time.Time{}, err
	}
	return t.Redeem(ticket)
}

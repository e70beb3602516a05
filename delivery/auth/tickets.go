package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
)

// TicketTTL is how long a realtime ticket stays valid (API: 60 s).
const TicketTTL = 60 * time.Second

// ticketPrefix names the ticket format, so a later one can be told apart.
const ticketPrefix = "pt1."

// maxTicketLen refuses absurd tickets before any decoding work.
const maxTicketLen = 1 << 10

// Tickets issues and redeems the single-use tickets that the realtime
// endpoints accept in place of a bearer token in the URL.
//
// A ticket is self-contained and signed: "pt1." + base64url(JSON of the
// user, its name, the ticket's expiry, the expiry of the token it was
// issued for and a random nonce) + "." + base64url(HMAC-SHA256 of that
// with the key). Any gateway holding the same key accepts it, so tickets
// work across the gateways of a deployment without a shared store.
//
// Single use is enforced per process: a Tickets remembers the nonces it
// redeemed until they expire, so a ticket is accepted at most once by each
// gateway process, and at most within its 60 s. Safe for concurrent use.
type Tickets struct {
	key []byte
	now func() time.Time

	mu        sync.Mutex
	used      map[string]time.Time // nonce -> ticket expiry
	lastSweep time.Time
}

// ticketBody is the signed part of a ticket. Keep it compatible across
// the gateways of a deployment.
type ticketBody struct {
	User     string `json:"u"`
	Name     string `json:"n"`
	Expires  int64  `json:"e"` // ticket expiry, unix milliseconds
	TokenExp int64  `json:"t"` // expiry of the issuing token, unix seconds (0: none)
	Nonce    string `json:"r"`
}

// NewTickets returns Tickets signing with key (at least 32 bytes).
func NewTickets(key []byte) (*Tickets, error) {
	if len(key) < 32 {
		return nil, errors.New("auth: tickets: key shorter than 32 bytes")
	}
	return &Tickets{key: key, now: time.Now, used: map[string]time.Time{}}, nil
}

// TicketKey derives the key that signs realtime tickets from the HS256
// secret, so the gateways of a deployment share it without another
// setting. It returns nil when no secret is configured.
func (v *Verifier) TicketKey() []byte {
	if v.secret == nil {
		return nil
	}
	m := hmac.New(sha256.New, v.secret)
	m.Write([]byte("parley realtime tickets v1"))
	return m.Sum(nil)
}

// Issue returns a ticket for user, valid TicketTTL, and its expiry.
// tokenExp is the expiry of the token that asked for it: a connection
// opened with the ticket ends with the token, as if the token were used.
func (t *Tickets) Issue(user chat.User, tokenExp time.Time) (string, time.Time, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", time.Time{}, err
	}
	exp := t.now().Add(TicketTTL)
	b := ticketBody{User: user.ID, Name: user.Name, Expires: exp.UnixMilli(), Nonce: hex.EncodeToString(nonce[:])}
	if !tokenExp.IsZero() {
		b.TokenExp = tokenExp.Unix()
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return "", time.Time{}, err
	}
	payload := base64.RawURLEncoding.EncodeToString(raw)
	return ticketPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(t.sign(payload)), exp, nil
}

func (t *Tickets) sign(payload string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(ticketPrefix + payload))
	return m.Sum(nil)
}

// Redeem checks ticket and uses it up, returning its user and the expiry
// of the token it was issued for. An unknown, forged, expired or already
// used ticket is a *chat.Error with code unauthorized whose message never
// contains the ticket.
func (t *Tickets) Redeem(ticket string) (chat.User, time.Time, error) {
	fail := func(msg string) (chat.User, time.Time, error) {
		return chat.User{}, time.Time{}, &chat.Error{Code: chat.CodeUnauthorized, Op: "auth: ticket", Message: msg}
	}
	if len(ticket) > maxTicketLen || !strings.HasPrefix(ticket, ticketPrefix) {
		return fail("invalid ticket")
	}
	payload, sig, ok := strings.Cut(ticket[len(ticketPrefix):], ".")
	if !ok {
		return fail("invalid ticket")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, t.sign(payload)) {
		return fail("invalid ticket")
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	var b ticketBody
	if err != nil || json.Unmarshal(raw, &b) != nil || !ValidUserID(b.User) || b.Nonce == "" {
		return fail("invalid ticket")
	}
	now := t.now()
	exp := time.UnixMilli(b.Expires)
	if !now.Before(exp) {
		return fail("ticket expired")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastSweep) > 10*time.Second {
		for n, e := range t.used {
			if !now.Before(e) {
				delete(t.used, n)
			}
		}
		t.lastSweep = now
	}
	if _, dup := t.used[b.Nonce]; dup {
		return fail("ticket already used")
	}
	t.used[b.Nonce] = exp
	name := b.Name
	if name == "" {
		name = b.User
	}
	var tokenExp time.Time
	if b.TokenExp > 0 {
		tokenExp = time.Unix(b.TokenExp, 0)
	}
	return chat.User{ID: b.User, Name: name}, tokenExp, nil
}

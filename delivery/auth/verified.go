package auth

import (
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
)

// maxVerified bounds the tokens a Verifier remembers; a few hundred bytes
// each, so about 3 MB when full.
const maxVerified = 8192

// verifiedTokens remembers the tokens Verify accepted, with their user and
// expiry, so that a client sending the same token with every request (a
// long-poll sends one per answer, thousands a second across a room) has
// its signature checked and its claims decoded once, not per request.
//
// A remembered token answers exactly as verifying it again would: the
// keys, issuer and audience are fixed at Open, and time only ends a
// token's validity (its nbf and iat were passed already), so a hit is
// valid until exp plus Leeway, and then it is forgotten and verified
// again, which refuses it. Only accepted tokens are kept: a refused or
// forged token is never remembered and costs a full verification each
// time, and a token is found only by its exact text.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[string]verifiedToken
}

type verifiedToken struct {
	user chat.User
	exp  time.Time
}

// get returns token's user and expiry if it was accepted and is still
// valid at now.
func (c *verifiedTokens) get(token string, now time.Time) (chat.User, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[token]
	if !ok {
		return chat.User{}, time.Time{}, false
	}
	if !now.Before(e.exp.Add(Leeway)) {
		delete(c.m, token)
		return chat.User{}, time.Time{}, false
	}
	return e.user, e.exp, true
}

// put remembers an accepted token. When full it first forgets the expired
// ones, then, if none were, an eighth of the rest (the map's order is
// random, so no pattern of requests can pin a token in or out).
func (c *verifiedTokens) put(token string, user chat.User, exp, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]verifiedToken)
	}
	if len(c.m) >= maxVerified {
		for k, e := range c.m {
			if !now.Before(e.exp.Add(Leeway)) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < maxVerified-maxVerified/8 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[token] = verifiedToken{user: user, exp: exp}
}

package auth

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
)

// maxVerified bounds the tokens a Verifier remembers: about 150 bytes
// each (a digest, a user and three times), so about 1.2 MB when full.
const maxVerified = 8192

// verifiedTokens remembers the tokens Verify accepted, with their user and
// the window in which they are valid, so that a client sending the same
// token with every request (a long-poll sends one per answer, thousands a
// second across a room) has its signature checked and its claims decoded
// once, not per request.
//
// A remembered token answers exactly as verifying it again would: the
// keys, issuer and audience are fixed at Open, and its validity is a
// window of time, [max(nbf, iat) − Leeway, exp + Leeway), as the parser
// checks it. Outside that window (after exp, or before nbf when the clock
// was stepped back) it is forgotten and verified again. Only accepted
// tokens are kept, by the SHA-256 of their text: a refused or forged token
// is never remembered and costs a full verification each time, and no
// bearer token is held in memory.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	user  chat.User
	exp   time.Time // as the token says, for Verify's answer
	from  time.Time // valid from: max(nbf, iat) − Leeway (zero: no bound)
	until time.Time // valid until: exp + Leeway
}

func (e verifiedToken) validAt(now time.Time) bool {
	return now.Before(e.until) && !now.Before(e.from)
}

// get returns token's user and expiry if it was accepted and is valid at
// now.
func (c *verifiedTokens) get(token string, now time.Time) (chat.User, time.Time, bool) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return chat.User{}, time.Time{}, false
	}
	if !e.validAt(now) {
		delete(c.m, key)
		return chat.User{}, time.Time{}, false
	}
	return e.user, e.exp, true
}

// put remembers an accepted token, valid from notBefore (the later of its
// nbf and iat; zero if it has neither) until exp. When full it first
// forgets the expired ones, then, if that freed too little, some of the
// rest (the map's order is random, so no pattern of requests can pin a
// token in or out).
func (c *verifiedTokens) put(token string, user chat.User, notBefore, exp, now time.Time) {
	e := verifiedToken{user: user, exp: exp, until: exp.Add(Leeway)}
	if !notBefore.IsZero() {
		e.from = notBefore.Add(-Leeway)
	}
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[sha256.Size]byte]verifiedToken)
	}
	if len(c.m) >= maxVerified {
		for k, old := range c.m {
			if !now.Before(old.until) {
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
	c.m[key] = e
}

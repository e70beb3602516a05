package gateway

import (
	"sync"
	"time"
)

// memberTTL is how long the gateway trusts that a user it saw as a member
// still is one, when no member.removed event said otherwise.
const memberTTL = 30 * time.Second

// maxCachedMembers bounds the cache; a full cache is emptied and refills.
const maxCachedMembers = 200_000

// memberCache remembers recent "uid is a member of cid" answers, so that a
// send does not read the store each time (on a networked store that read
// was a round trip in every send's path). It is only a fast path: the
// sequencer checks membership again on the state it applies the command
// to, so a stale entry (a removal this gateway has not heard of yet) makes
// a refused send, never an accepted one. The hub drops an entry as soon as
// the member.removed event goes by.
type memberCache struct {
	mu      sync.Mutex
	entries map[memberKey]time.Time // -> valid until
	now     func() time.Time
}

type memberKey struct{ cid, uid string }

func newMemberCache() *memberCache {
	return &memberCache{entries: map[memberKey]time.Time{}, now: time.Now}
}

func (m *memberCache) has(cid, uid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.entries[memberKey{cid, uid}]
	if ok && m.now().After(until) {
		delete(m.entries, memberKey{cid, uid})
		return false
	}
	return ok
}

func (m *memberCache) add(cid, uid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) >= maxCachedMembers {
		clear(m.entries)
	}
	m.entries[memberKey{cid, uid}] = m.now().Add(memberTTL)
}

func (m *memberCache) forget(cid, uid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, memberKey{cid, uid})
}

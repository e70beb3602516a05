package rest

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
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

// listMembers pages a conversation's members in user-id order:
// GET /v1/conversations/{cid}/members?after=UID&limit=N (1–500, default
// 100) → {"members":[…],"next_after":"uid"|null}. next_after is null on
// the last page, so a client never asks for an empty one. Any size of
// conversation costs one read of the caller's membership, one of the
// conversation's state and one slice of its member rows.
func (a *API) listMembers(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	q := r.URL.Query()
	limit, err := httpx.IntParam(q, "limit", 100, 1, 500)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	after := q.Get("after")
	if after != "" && !chat.ValidUserID(after) {
		a.writeCode(w, r, chat.CodeInvalid, "after must be a user id")
		return
	}
	c, err := a.member(r.Context(), r.PathValue("cid"), u.ID)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	var page []string
	if c.MemberCount == 0 && len(c.Members) > 0 {
		// Stored before member rows existed: its state lists them all.
		page = legacyMembersPage(c.Members, after, int(limit)+1)
	} else if page, err = a.store.Members(r.Context(), c.ID, after, int(limit)+1); err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	var next *string
	if len(page) > int(limit) {
		page = page[:limit]
		next = &page[limit-1]
	}
	if page == nil {
		page = []string{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"members": page, "next_after": next})
}

// legacyMembersPage pages a member list held in a conversation's state.
func legacyMembersPage(members []string, after string, limit int) []string {
	sorted := slices.Sorted(slices.Values(members))
	i, _ := slices.BinarySearch(sorted, after)
	if i < len(sorted) && sorted[i] == after {
		i++
	}
	return sorted[i:min(len(sorted), i+limit)]
}

// conversationMembers returns every member of c: its list when its state
// holds one, otherwise (a conversation of more than chat.MaxListedMembers)
// its member rows, page by page.
func (a *API) conversationMembers(ctx context.Context, c *chat.Conversation) ([]string, error) {
	if c.Members != nil || c.MemberCount == 0 {
		return c.Members, nil
	}
	const page = 1000
	all := make([]string, 0, c.MemberCount)
	for after := ""; ; {
		ms, err := a.store.Members(ctx, c.ID, after, page)
		if err != nil {
			return nil, unavailable(err)
		}
		all = append(all, ms...)
		if len(ms) < page {
			return all, nil
		}
		after = ms[len(ms)-1]
	}
}

package rest

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
)

// maxProfileName bounds a name set with PATCH /v1/me, in characters.
const maxProfileName = 64

// maxContacts bounds how many people a directory search or a user.updated
// fan-out considers: the members of the caller's conversations, read in
// order until this many are found.
const maxContacts = 20000

// claimedNames remembers, per process, which (user, name) claims of tokens
// and dev sign-ins are already in the Store, so recording the name of the
// token costs a Store write only when a user shows up with a new name, not
// on every request. It holds one short entry per user seen.
type claimedNames struct{ m sync.Map } // user id -> name

// recordClaim stores u's name as its claimed name unless this process did
// already. A token without a name claim carries the user id as its name
// (auth.Verify) and is not recorded. A failed write is logged, not
// returned: the request goes on with the token's name.
func (a *API) recordClaim(ctx context.Context, u chat.User) {
	if u.Name == "" || u.Name == u.ID {
		return
	}
	if prev, ok := a.claims.m.Load(u.ID); ok && prev.(string) == u.Name {
		return
	}
	if err := a.store.SetUserName(ctx, u.ID, u.Name, true); err != nil {
		a.logger.WarnContext(ctx, "recording a token's name", "user", u.ID, "err", err)
		return
	}
	a.claims.m.Store(u.ID, u.Name)
}

// profiles returns the profile of each id, in the order of ids: the stored
// one, or the id as the name for a user who never signed in.
func (a *API) profiles(ctx context.Context, ids []string) ([]chat.User, error) {
	found, err := a.store.Users(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]chat.User, len(ids))
	for i, id := range ids {
		p, ok := found[id]
		if !ok {
			p = chat.User{ID: id, Name: id}
		}
		out[i] = p
	}
	return out, nil
}

// getMe answers the caller's stored profile, or the token's name before
// any is stored.
func (a *API) me(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	found, err := a.store.Users(r.Context(), []string{u.ID})
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	if p, ok := found[u.ID]; ok {
		u = p
	}
	httpx.WriteJSON(w, http.StatusOK, u)
}

// patchMe sets the caller's name and tells the people who share a
// conversation with it, and its own connections, with user.updated.
func (a *API) patchMe(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	var req struct {
		Name *string `json:"name"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if req.Name == nil {
		a.writeCode(w, r, chat.CodeInvalid, "name is required")
		return
	}
	name := strings.TrimSpace(*req.Name)
	if n := utf8.RuneCountInString(name); n < 1 || n > maxProfileName || !utf8.ValidString(name) {
		a.writeCode(w, r, chat.CodeInvalid, "name must be 1-64 characters after trimming")
		return
	}
	if err := a.store.SetUserName(r.Context(), u.ID, name, false); err != nil {
		a.writeErr(w, r, err)
		return
	}
	p := chat.User{ID: u.ID, Name: name}
	if to, err := a.contacts(r.Context(), u.ID); err != nil {
		// The name is stored; those connected learn it on their next read.
		a.logger.WarnContext(r.Context(), "listing whom to tell of a name change", "user", u.ID, "err", err)
	} else {
		a.presence.Broadcast(to, chat.Ephemeral{Type: chat.EventUserUpdated, User: &p})
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

// contacts returns uid and the people who share an active conversation
// with it, sorted and without duplicates, at most maxContacts of them.
func (a *API) contacts(ctx context.Context, uid string) ([]string, error) {
	ms, err := a.store.Memberships(ctx, uid)
	if err != nil {
		return nil, err
	}
	seen := map[string]struct{}{uid: {}}
	for _, m := range ms {
		if !m.Active || len(seen) >= maxContacts {
			continue
		}
		c, err := a.store.Conversation(ctx, m.ConversationID)
		if chat.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		members, err := a.conversationMembers(ctx, &c)
		if err != nil {
			return nil, err
		}
		for _, id := range members {
			if len(seen) >= maxContacts {
				break
			}
			seen[id] = struct{}{}
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

// sharesConversation reports whether users x and y are active members of one
// conversation, from the two users' membership rows.
func (a *API) sharesConversation(ctx context.Context, x, y string) (bool, error) {
	ma, err := a.store.Memberships(ctx, x)
	if err != nil {
		return false, err
	}
	mine := make(map[string]bool, len(ma))
	for _, m := range ma {
		if m.Active {
			mine[m.ConversationID] = true
		}
	}
	if len(mine) == 0 {
		return false, nil
	}
	mb, err := a.store.Memberships(ctx, y)
	if err != nil {
		return false, err
	}
	for _, m := range mb {
		if m.Active && mine[m.ConversationID] {
			return true, nil
		}
	}
	return false, nil
}

// getUser answers a profile to the user itself and to those who share a
// conversation with it; 404 to everyone else, so a stranger cannot learn
// whether the user exists.
func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	uid := r.PathValue("uid")
	if !chat.ValidUserID(uid) {
		a.writeCode(w, r, chat.CodeNotFound, "user not found")
		return
	}
	if uid != u.ID {
		ok, err := a.sharesConversation(r.Context(), u.ID, uid)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		if !ok {
			a.writeCode(w, r, chat.CodeNotFound, "user not found")
			return
		}
	}
	ps, err := a.profiles(r.Context(), []string{uid})
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	p := ps[0]
	if uid == u.ID && p.Name == uid && u.Name != "" {
		p = u // no stored profile yet: the token's name
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

// listUsers is the directory search: the profiles among the caller and
// the people sharing a conversation with it whose id or name starts with
// q, ignoring case, in user-id order.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	q := r.URL.Query()
	limit, err := httpx.IntParam(q, "limit", 20, 1, 50)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	prefix := strings.ToLower(strings.TrimSpace(q.Get("q")))
	if utf8.RuneCountInString(prefix) > maxProfileName || !utf8.ValidString(prefix) {
		a.writeCode(w, r, chat.CodeInvalid, "q must be at most 64 characters")
		return
	}
	ids, err := a.contacts(r.Context(), u.ID)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	ps, err := a.profiles(r.Context(), ids)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := []chat.User{}
	for _, p := range ps {
		if p.ID == u.ID && p.Name == p.ID && u.Name != "" {
			p = u
		}
		if strings.HasPrefix(strings.ToLower(p.ID), prefix) || strings.HasPrefix(strings.ToLower(p.Name), prefix) {
			out = append(out, p)
			if len(out) == int(limit) {
				break
			}
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"users": out})
}
